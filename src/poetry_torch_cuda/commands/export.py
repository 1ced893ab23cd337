"""``poetry torch-cuda export --variant V``: a hash-pinned install list for Docker and CI.

Poetry's packages from poetry.lock, selected as ``poetry install`` selects them
(the ``extra`` part of a marker decided here, never written), the torch family
replaced by the variant's build from torch-cuda.lock. pylock.toml reads each
file's URL from the index's page, as Poetry does. No credential is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from typing import ClassVar
from urllib.parse import urlsplit

from cleo.helpers import option
from poetry.console.commands.group_command import GroupCommand
from poetry.core.version.helpers import format_python_constraint

from poetry_torch_cuda.commands.base import ReportsErrors
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.client import variant_authenticator
from poetry_torch_cuda.install.request import poetry_links
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.service import configured
from poetry_torch_cuda.lockfile.service import entry_for
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project import locked
from poetry_torch_cuda.project.protection import protected_names
from poetry_torch_cuda.project.selection import selection_from
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.project.variants import variant_argument
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable

    from cleo.io.inputs.option import Option
    from packaging.utils import NormalizedName
    from poetry.core.packages.package import Package
    from poetry.poetry import Poetry

    from poetry_torch_cuda.lockfile.model import VariantLock

FORMATS = ("requirements.txt", "pylock.toml")
PYPI_SIMPLE = "https://pypi.org/simple"


@dataclass(frozen=True)
class ExportedPackage:
    """One package of the export: from an ``index``, or at ``url`` (an archive)."""

    name: str
    version: str
    markers: str
    index: str | None
    #: ``(file name, url or None: to be read from the index page, sha256)``
    files: tuple[tuple[str, str | None, str], ...]
    url: str | None = None
    #: poetry.lock's package, whose source lists the files without a URL here.
    locked: Package | None = None


class ExportCommand(ReportsErrors, GroupCommand):
    """Export the project's locked packages with the variant's locked build."""

    name = "torch-cuda export"
    description = (
        "Export a hash-pinned requirements.txt or pylock.toml with the variant's "
        "build, from poetry.lock and torch-cuda.lock."
    )
    options: ClassVar[list[Option]] = [
        option(
            "variant", None, "The locked variant to export (e.g. cu129).", flag=False
        ),
        option(
            "format",
            "f",
            f"The format: {' or '.join(FORMATS)}.",
            flag=False,
            default="requirements.txt",
        ),
        option("output", "o", "Write to this file instead of stdout.", flag=False),
        *selection_options(),
    ]
    help = (
        "Writes what a clean environment needs to reproduce this project with the "
        "variant's build: Poetry's locked packages (poetry.lock, with hashes and "
        "markers) and the variant's build and CUDA wheels (torch-cuda.lock). "
        "<c1>pip install --require-hashes -r requirements.txt</> (or, pip >= 26.1, "
        "<c1>pip install -r pylock.toml</>) installs it, e.g. in a Dockerfile. "
        "Reads the two locks (pylock.toml: and the index pages, for the file URLs); "
        "never writes a credential."
    )

    def work(self) -> int:
        """Write the export to stdout or ``--output``."""
        config = configured(self.poetry.pyproject.data)
        fmt = self.option("format")
        if fmt not in FORMATS:
            raise TorchCudaError(
                f"--format must be {' or '.join(FORMATS)}, got {fmt!r}."
            )
        variant = variant_argument(self.option("variant") or config.variant.name)
        if variant.kind == "auto":
            raise TorchCudaError(
                "--variant must name a build (e.g. cu129): an image is built for one."
            )
        entry, reasons = entry_for(self.poetry, config, variant)
        if entry is None:
            raise TorchCudaError(
                f"{LOCK_NAME} has no {variant}; add it to lock-variants and run "
                "`poetry torch-cuda lock` (export reads the locks, not the index)."
            )
        if reasons:
            raise TorchCudaError(
                f"{LOCK_NAME} does not match this project ({reasons[0]}); run "
                "`poetry torch-cuda lock` first."
            )
        selection = selection_from(self)
        packages = select(
            self.poetry, config.package_names, entry, selection.groups, selection.extras
        )
        # Indexes that requests get credentials for, by the one rule every request
        # follows (Poetry's, by host): named in a comment, never written.
        secret = variant_authenticator(
            config, variant, self.poetry.config
        ).sends_credentials
        if fmt == "pylock.toml":
            python = format_python_constraint(self.poetry.package.python_constraint)
            text = pylock_toml(
                variant.name, packages, python, secret, partial(_file_urls, self.poetry)
            )
        else:
            text = requirements_txt(variant.name, packages, secret)
        output = self.option("output")
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.line_error(
                f"{PREFIX}: wrote {output} ({variant}, {len(packages)} packages)"
            )
        else:
            self.io.write(text)
        return 0


def _file_urls(poetry: Poetry, package: ExportedPackage) -> dict[str, str]:
    """The URLs of ``package``'s files, as its source lists them for ``poetry install``."""
    assert package.locked is not None  # no URL: a file of poetry.lock's
    try:
        links = poetry_links(poetry, package.locked)
    except TorchCudaError as error:
        raise TorchCudaError(
            f"pylock.toml needs its files' URLs: {error} Or export requirements.txt, "
            "which needs no URL."
        ) from None
    urls = {
        link.filename: without_credentials(link.url_without_fragment) for link in links
    }
    for filename, _, _ in package.files:
        if filename not in urls:
            raise TorchCudaError(
                f"pylock.toml needs the URL of {filename}, and {package.index}/"
                f"{package.name}/ does not list it (any more). Run `poetry lock` to "
                "lock what the index has."
            )
    return urls


def select(
    poetry: Poetry,
    names: Iterable[NormalizedName],
    entry: VariantLock,
    groups: Iterable[str],
    extras: Iterable[str],
) -> list[ExportedPackage]:
    """Poetry's packages for ``groups`` and ``extras``, the family of the configured
    ``names`` from ``entry``.

    Raises:
        TorchCudaError: a package cannot be hash-checked (a directory or git
            dependency).
    """
    from poetry.core.version.markers import parse_marker

    names = frozenset(names)
    family = protected_names(names, [locked.locked_graph(poetry)])
    exported, roots = [], {}
    for package, marker in locked.selected_packages(poetry, groups, extras):
        if package.name not in family:
            exported.append(_poetry_package(package, str(marker)))
        elif package.name in names:
            roots[package.name] = marker
    chosen = [(p.name, p.version) for p in entry.packages if p.name in roots]
    for one in entry.closure(chosen, None):  # every environment's
        markers = parse_marker(one.markers).without_extras()
        if one.name in roots:
            markers = markers.intersect(roots[one.name])
        files = tuple((f.filename, f.url, f.sha256) for f in entry.files(one))
        shown = "" if markers.is_any() else str(markers)
        exported.append(
            ExportedPackage(one.name, one.version, shown, entry.index_url, files)
        )
    return exported


def _poetry_package(package: Package, marker: str) -> ExportedPackage:
    kind, url = package.source_type, package.source_url
    files = tuple(
        (str(f["file"]), None, str(f["hash"]).partition(":")[2])
        for f in package.files
        if str(f.get("hash", "")).startswith("sha256:")
    )
    if kind in ("directory", "git"):
        what = "directory" if kind == "directory" else "git checkout"
        raise TorchCudaError(
            f"cannot export {package.name} ({kind} dependency {url}): pip checks "
            f"every file's sha256 and a {what} has none. Depend on a built wheel "
            "or a published version of it, or install it after the export."
        )
    if kind in ("url", "file"):
        return ExportedPackage(
            package.name, package.version.text, marker, None, files, str(url)
        )
    index = without_credentials(str(url or PYPI_SIMPLE)).rstrip("/")
    return ExportedPackage(
        package.name, package.version.text, marker, index, files, locked=package
    )


def requirements_txt(
    variant: str, packages: Iterable[ExportedPackage], secret: Callable[[str], bool]
) -> str:
    """A requirements file for ``pip install --require-hashes -r``."""
    packages = sorted(packages, key=lambda p: (p.name, p.version))
    indexes, hosts, comments = _header(packages, secret)
    lines = [
        f"# Exported by poetry-torch-cuda from poetry.lock and {LOCK_NAME} for {variant}.",
        "# Install with: pip install --require-hashes -r <this file>",
        *comments,
        f"--index-url {indexes[0]}",
        *(f"--extra-index-url {url}" for url in indexes[1:]),
        *(f"--trusted-host {host}" for host in hosts),
        "",
    ]
    for package in packages:
        url = package.url and without_credentials(package.url)
        what = f"=={package.version}" if url is None else f" @ {url}"
        marker = f" ; {package.markers}" if package.markers else ""
        hashes = sorted({sha for _, _, sha in package.files})
        hashed = "".join(f" \\\n    --hash=sha256:{s}" for s in hashes)
        lines.append(package.name + what + marker + hashed)
    return "\n".join(lines) + "\n"


def pylock_toml(
    variant: str,
    packages: Iterable[ExportedPackage],
    requires_python: str,
    secret: Callable[[str], bool],
    file_urls: Callable[[ExportedPackage], dict[str, str]],
) -> str:
    """A PEP 751 ``pylock.toml``; ``file_urls(package)`` finds the URLs of the files of
    a package of poetry.lock's.

    Raises:
        TorchCudaError: a file's URL cannot be had (``file_urls`` says why).
    """
    import tomlkit

    packages = sorted(packages, key=lambda p: (p.name, p.version))
    _, hosts, comments = _header(packages, secret)
    trusted = "".join(f" --trusted-host {h}" for h in hosts)
    document = tomlkit.document()
    for line in (
        f"Exported by poetry-torch-cuda from poetry.lock and {LOCK_NAME} for {variant}.",
        f"Install with: pip install{trusted} -r pylock.toml (pip >= 26.1).",
        *(c.removeprefix("# ") for c in comments),
    ):
        document.add(tomlkit.comment(line))
    document["lock-version"] = "1.0"
    document["requires-python"] = requires_python
    document["created-by"] = "poetry-torch-cuda"
    entries = tomlkit.aot()
    for package in packages:
        table = tomlkit.table()
        table["name"] = package.name
        table["version"] = package.version
        if package.markers:
            table["marker"] = package.markers
        if package.url is not None:
            (_, _, sha256), *_ = package.files or (("", None, ""),)
            archive = tomlkit.inline_table()
            bare = without_credentials(package.url)
            archive["url" if "://" in bare else "path"] = bare
            archive["hashes"] = {"sha256": sha256}
            table["archive"] = archive
        else:
            assert package.index is not None  # no url: from an index
            table["index"] = package.index
            wheels = tomlkit.array().multiline(True)
            urls = {} if package.locked is None else file_urls(package)
            for filename, url, sha256 in sorted(package.files):
                item = tomlkit.inline_table()
                item["name"] = filename
                item["url"] = url or urls[filename]
                item["hashes"] = {"sha256": sha256}
                if filename.endswith(".whl"):
                    wheels.append(item)
                else:
                    table["sdist"] = item
            if wheels:
                table["wheels"] = wheels
        entries.append(table)
    document["packages"] = entries
    return tomlkit.dumps(document)


def _header(
    packages: Iterable[ExportedPackage], secret: Callable[[str], bool]
) -> tuple[list[str], list[str], list[str]]:
    """The indexes (PyPI first), the hosts of plain-http ones (pip ignores them
    without ``--trusted-host``) and the comments naming those ``secret`` says
    requests get credentials for, and the archives whose URL has them."""
    packages = list(packages)
    found = {p.index for p in packages if p.index is not None}
    indexes = sorted(found, key=lambda url: (url != PYPI_SIMPLE, url)) or [PYPI_SIMPLE]
    hosts = sorted({urlsplit(u).netloc for u in indexes if u.startswith("http://")})
    comments = [
        f"# {url} needs credentials, which are not written here: give pip the URL "
        "with them in PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, or put them in ~/.netrc."
        for url in indexes
        if secret(url)
    ] + [
        f"# {without_credentials(p.url)} needs credentials, which are not written "
        "here: put them in ~/.netrc."
        for p in packages
        if p.url and (without_credentials(p.url) != p.url or secret(p.url))
    ]
    return indexes, hosts, comments

"""``poetry torch-cuda export --variant V``: a hash-pinned install list for Docker and CI
(what it holds: ``ExportCommand.help``). Poetry's packages are selected as ``poetry
install`` selects them, the ``extra`` part of a marker decided here, never written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import ClassVar
from typing import Optional
from urllib.parse import urlsplit

from cleo.helpers import option
from packaging.utils import canonicalize_name
from poetry.console.commands.group_command import GroupCommand
from poetry.core.packages.utils.utils import path_to_url
from poetry.core.version.helpers import format_python_constraint
from poetry.core.version.markers import parse_marker
from poetry.core.version.markers import union

from poetry_torch_cuda import tempfiles
from poetry_torch_cuda.commands.base import ReportsErrors
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.client import project_client
from poetry_torch_cuda.index.client import variant_authenticator
from poetry_torch_cuda.install.download import mirrored
from poetry_torch_cuda.install.request import poetry_links
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.service import STALE
from poetry_torch_cuda.lockfile.service import built_for
from poetry_torch_cuda.lockfile.service import entry_for
from poetry_torch_cuda.lockfile.service import locked_variants
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project import locked
from poetry_torch_cuda.project.config import require_config
from poetry_torch_cuda.project.protection import dependency_closure
from poetry_torch_cuda.project.protection import protected_names
from poetry_torch_cuda.project.selection import selection_from
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.project.variants import public_version
from poetry_torch_cuda.project.variants import variant_argument
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Sequence

    from cleo.io.inputs.option import Option
    from packaging.requirements import Requirement
    from poetry.core.packages.package import Package
    from poetry.core.version.markers import BaseMarker
    from poetry.poetry import Poetry

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.lockfile.model import VariantLock
    from poetry_torch_cuda.project.variants import Variant

FORMATS = ("requirements.txt", "pylock.toml")
#: ``(file name, url or None: not read from the index page, sha256, size or None)``
Files = tuple[tuple[str, Optional[str], str, Optional[int]], ...]
PYPI_SIMPLE = "https://pypi.org/simple"
PYLOCK = r"pylock(\.[^.]+)?\.toml"


@dataclass(frozen=True)
class ExportedPackage:
    """One package of the export: from an ``index``, or at ``url`` (an archive)."""

    name: str
    version: str
    markers: str
    index: str | None
    files: Files
    url: str | None = None


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
        config = require_config(self.poetry.pyproject.data, overrides=())
        fmt, output = self.option("format"), self.option("output")
        if fmt not in FORMATS:
            raise TorchCudaError(
                f"--format must be {' or '.join(FORMATS)}, got {fmt!r}."
            )
        pylock = fmt == "pylock.toml"  # PEP 751's names: pip reads no other as one
        if pylock and output and not re.fullmatch(PYLOCK, Path(output).name):
            raise TorchCudaError(
                f"-o {output}: pip installs a pylock.toml file only by the name "
                "pylock.toml or pylock.<name>.toml (PEP 751)."
            )
        # The variant and index an install here takes (POETRY_TORCH_CUDA_* included).
        here = require_config(self.poetry.pyproject.data)
        variant = variant_argument(self.option("variant") or here.variant.name)
        if variant.kind == "auto":
            raise TorchCudaError(
                "--variant must name a build (e.g. cu129): an image is built for one."
            )
        lock, reasons, _ = entry_for(self.poetry, variant)
        entry = lock.variant(variant.name) if lock else None
        if entry is None and variant.name not in locked_variants(config, lock):
            raise TorchCudaError(
                f"{LOCK_NAME} has no {variant}; add it to lock-variants and run "
                "`poetry torch-cuda lock` (export reads the locks, not the index)."
            )
        if reasons or entry is None:
            raise TorchCudaError(STALE.format("; ".join(reasons)))
        # Indexes that requests get credentials for, by the one rule every request
        # follows (Poetry's, by host): named in a comment, never written.
        auth = variant_authenticator(here, variant, self.poetry.config)
        pages = project_client(self.poetry, refresh=True, auth=auth)
        mirror = here.mirror(variant)
        packages = self.select(config.packages, entry, pylock, mirror, pages)
        if pylock:
            python = format_python_constraint(self.poetry.package.python_constraint)
            text = pylock_toml(variant.name, packages, python, auth.sends_credentials)
        else:
            text = requirements_txt(variant.name, packages, auth.sends_credentials)
        if output:
            try:
                tempfiles.write_text(Path(output), text)
            except OSError as error:
                raise TorchCudaError(
                    f"could not write {output} ({error.strerror or error}); nothing "
                    "was written. Name a file you can write with -o."
                ) from None
            count = f"{len(packages)} package{'' if len(packages) == 1 else 's'}"
            self.line_error(f"{PREFIX}: wrote {output} ({variant}, {count})")
        else:
            self.io.write(text)
        return 0

    def select(
        self,
        packages: Sequence[Requirement],
        entry: VariantLock,
        urls: bool,
        mirror: str | None,
        pages: IndexClient,
    ) -> list[ExportedPackage]:
        """Poetry's packages for the options' groups and extras (``urls``: with their
        files' URLs), the family of ``packages`` from ``entry`` (on ``pages`` of a
        ``mirror``) but where an entry's marker or the variant's platforms exclude it."""
        poetry, selection = self.poetry, selection_from(self)
        index = without_credentials(mirror or entry.index_url).rstrip("/")
        ranged = {canonicalize_name(r.name) for r in packages if r.specifier}
        variant = variant_argument(entry.name)
        entries = {
            canonicalize_name(r.name): parse_marker(str(r.marker or ""))
            for r in packages
        }
        direct = (d.name for d in poetry.package.all_requires)
        graph = locked.locked_graph(poetry)
        family = protected_names(entries, [graph], direct)
        outside = {name: needs for name, needs in graph.items() if name not in entries}
        reach = {n: dependency_closure(graph.get(n, ()), outside) for n in entries}
        exported, roots = [], {}
        selected = locked.selected_packages(poetry, selection.groups, selection.extras)
        built = built_for(selected, variant)  # a Mac's pin: PyPI's
        for package, marker in selected:
            if package.name in entries:
                if (package, marker) in built:
                    key = (package.name, public_version(package.version.text))
                    roots[key] = _built(variant, marker)
                    ours = _built(variant, entries[package.name], marker)
                    marker = marker.intersect(ours.invert())
            elif package.name in family:  # Poetry's where what needs it is Poetry's
                needs = [
                    _built(variant, m, marker).invert()
                    for n, m in entries.items()
                    if package.name in reach[n]
                ]
                marker = marker.intersect(union(*needs))
            if not marker.is_empty():
                exported.append(_poetry_package(poetry, package, str(marker), urls))
        # A root at each selected version, under its marker; what they need, under theirs.
        needed = union(*roots.values())
        keys = {p: (p.name, public_version(p.version)) for p in entry.packages}
        chosen = [(p.name, p.version) for p, key in keys.items() if key in roots]
        held = {p.name for p, _ in selected}  # else by a range alone: as installs do
        alone = [(name, None) for name in ranged - held if roots]
        poetrys = {p.name for p in exported} - family  # its own cudnn: Poetry's
        lookup = mirror if urls else None  # pylock.toml: where the mirror lists each
        for one in entry.closure([*chosen, *alone], None):  # every environment's
            markers = parse_marker(one.markers).intersect(roots.get(keys[one], needed))
            if markers.is_empty() or one.name in poetrys:
                continue
            found = [(f, mirrored(pages, lookup, f)) for f in entry.files(one)]
            files = tuple(
                (f.filename, without_credentials(u), f.sha256, f.size) for f, u in found
            )
            shown = "" if markers.is_any() else str(markers)
            exported.append(ExportedPackage(one.name, one.version, shown, index, files))
        return sorted(exported, key=lambda p: (p.name, p.version))


def _built(variant: Variant, marker: BaseMarker, *beside: BaseMarker) -> BaseMarker:
    """``marker`` where ``variant`` has builds, in the words of it and what it is used
    ``beside``: ``sys_platform``'s if one speaks of it (``sys_platform == "linux"``
    needs no more, and gets none), else PyTorch's."""
    words = any(not m.only("sys_platform").is_any() for m in (marker, *beside))
    name = "sys_platform" if words else "platform_system"
    return marker.intersect(parse_marker(variant.built(name)))


def _poetry_package(
    poetry: Poetry, package: Package, marker: str, urls: bool
) -> ExportedPackage:
    kind, url = package.source_type, package.source_url
    files: Files = tuple(
        (str(f["file"]), None, str(f["hash"]).partition(":")[2], None)
        for f in package.files
        if str(f.get("hash", "")).startswith("sha256:")
    )
    if kind in ("directory", "git"):
        what = "directory" if kind == "directory" else "git checkout"
        raise TorchCudaError(
            f"cannot export {package.name} ({kind} dependency {mask_url(str(url))}): "
            f"pip checks every file's sha256 and a {what} has none. Depend on a built "
            "wheel or a published version of it, or install it after the export."
        )
    if kind in ("url", "file"):
        return ExportedPackage(
            package.name, package.version.text, marker, None, files, str(url)
        )
    index = without_credentials(str(url or PYPI_SIMPLE)).rstrip("/")
    if urls:  # as the package's source lists them for `poetry install`
        try:
            links = poetry_links(poetry, package)
        except TorchCudaError as error:
            raise TorchCudaError(
                f"pylock.toml needs its files' URLs: {error} Or export "
                "requirements.txt, which needs no URL."
            ) from None
        found = {x.filename: without_credentials(x.url_without_fragment) for x in links}
        sizes = {x.filename: getattr(x, "size", None) for x in links}  # core >= 2.3
        for name in (f for f, *_ in files if f not in found):
            raise TorchCudaError(
                f"pylock.toml needs the URL of {name}, and {index}/{package.name}/ "
                "does not list it (any more). Run `poetry lock` to lock what the "
                "index has."
            )
        files = tuple((f, found[f], sha, sizes[f]) for f, _, sha, _ in files)
    return ExportedPackage(package.name, package.version.text, marker, index, files)


def requirements_txt(
    variant: str, packages: list[ExportedPackage], secret: Callable[[str], bool]
) -> str:
    """A requirements file for ``pip install --require-hashes -r``."""
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
        if url and "://" not in url:  # a file dependency's path: pip wants a URL
            url = path_to_url(url)
        what = f"=={package.version}" if url is None else f" @ {url}"
        marker = f" ; {package.markers}" if package.markers else ""
        hashes = sorted({sha for _, _, sha, _ in package.files})
        hashed = "".join(f" \\\n    --hash=sha256:{s}" for s in hashes)
        lines.append(package.name + what + marker + hashed)
    return "\n".join(lines) + "\n"


def pylock_toml(
    variant: str,
    packages: list[ExportedPackage],
    requires_python: str,
    secret: Callable[[str], bool],
) -> str:
    """A PEP 751 ``pylock.toml`` of ``packages`` with their files' URLs."""
    import tomlkit

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
        table.update({"name": package.name, "version": package.version})
        if package.markers:
            table["marker"] = package.markers
        if package.url is not None:
            (_, _, sha256, _), *_ = package.files or (("", None, "", None),)
            bare = without_credentials(package.url)
            archive = tomlkit.inline_table()
            archive.update({"url" if "://" in bare else "path": bare})
            archive["hashes"] = {"sha256": sha256}
            table["archive"] = archive
        else:
            assert package.index is not None  # no url: from an index
            table["index"] = package.index
            wheels = tomlkit.array().multiline(True)
            for filename, url, sha256, size in sorted(package.files):
                item = tomlkit.inline_table()
                item.update(name=filename, url=url)
                if size is not None:  # as a page or torch-cuda.lock gave it
                    item["size"] = size
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
    packages: list[ExportedPackage], secret: Callable[[str], bool]
) -> tuple[list[str], list[str], list[str]]:
    """The indexes (PyPI first), the hosts of plain-http ones (pip ignores them
    without ``--trusted-host``) and the comments naming those ``secret`` says
    requests get credentials for, and the archives whose URL has them."""
    found = {p.index for p in packages if p.index is not None}
    indexes = sorted(found, key=lambda url: (url != PYPI_SIMPLE, url)) or [PYPI_SIMPLE]
    hosts = sorted({urlsplit(u).netloc for u in indexes if u.startswith("http://")})
    # ~/.netrc only: the file's own --index-url replaces pip's index URLs, those of
    # PIP_INDEX_URL / PIP_EXTRA_INDEX_URL and their credentials included.
    named = [url for url in indexes if secret(url)] + [
        without_credentials(p.url)
        for p in packages
        if p.url and (without_credentials(p.url) != p.url or secret(p.url))
    ]
    comments = [
        f"# {url} needs credentials, which are not written here: put them in ~/.netrc."
        for url in named
    ]
    return indexes, hosts, comments

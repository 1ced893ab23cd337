"""Export a complete, hash-pinned install list for one variant, from the two locks.

Poetry's packages come from poetry.lock, selected by groups and extras exactly
as ``poetry install`` selects them (the ``extra`` part of a marker is decided
here, never written); the torch family among them is replaced by the
variant's build and its CUDA wheels from torch-cuda.lock.
``pip install --require-hashes -r requirements.txt`` needs no network to be
written; ``pylock.toml`` (pip >= 26.1) needs every file's URL, read from the
index's page (cached). No credential is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.project import locked
from poetry_torch_cuda.project.protection import protected_names
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable

    from packaging.utils import NormalizedName
    from poetry.poetry import Poetry

    from poetry_torch_cuda.lockfile.model import VariantLock

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


def select(
    poetry: Poetry,
    configured: Iterable[NormalizedName],
    entry: VariantLock,
    groups: Iterable[str],
    extras: Iterable[str],
) -> list[ExportedPackage]:
    """Poetry's packages for ``groups`` and ``extras``, the family from ``entry``.

    Raises:
        TorchCudaError: a package cannot be hash-checked (a directory or git
            dependency).
    """
    from poetry.core.version.markers import parse_marker

    family = protected_names(configured, [locked.locked_graph(poetry)])
    chosen = locked.selected_packages(poetry, groups, extras)
    exported, roots = [], {}
    for package, marker in chosen:
        if package.name not in family:
            exported.append(_poetry_package(package, str(marker)))
        elif package.name in set(configured):
            roots[package.name] = str(marker)
    included: dict[tuple[str, str], ExportedPackage] = {}
    stack = [(p, roots[p.name]) for p in entry.packages if p.name in roots]
    while stack:
        one, wanted = stack.pop()
        if (one.name, one.version) in included:
            continue
        markers = parse_marker(one.markers).without_extras()
        if wanted:
            markers = markers.intersect(parse_marker(wanted))
        included[(one.name, one.version)] = ExportedPackage(
            one.name,
            one.version,
            "" if markers.is_any() else str(markers),
            entry.index_url,
            tuple((f.filename, f.url, f.sha256) for f in entry.files(one)),
        )
        for dependency in one.dependencies:
            found = entry.package(dependency.name, dependency.version)
            if found is not None:
                stack.append((found, ""))
    return exported + list(included.values())


def _poetry_package(package: object, marker: str) -> ExportedPackage:
    from poetry.core.packages.package import Package

    assert isinstance(package, Package)
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
    return ExportedPackage(package.name, package.version.text, marker, index, files)


def requirements_txt(
    variant: str, packages: Iterable[ExportedPackage], secret: Iterable[str]
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
        what = (
            f"{package.name}=={package.version}"
            if package.url is None
            else f"{package.name} @ {package.url}"
        )
        marker = f" ; {package.markers}" if package.markers else ""
        hashes = sorted({sha for _, _, sha in package.files})
        lines.append(
            what + marker + "".join(f" \\\n    --hash=sha256:{s}" for s in hashes)
        )
    return "\n".join(lines) + "\n"


def pylock_toml(
    variant: str,
    packages: Iterable[ExportedPackage],
    requires_python: str,
    secret: Iterable[str],
    file_url: Callable[[str, str, str], str],
) -> str:
    """A PEP 751 ``pylock.toml``; ``file_url(index, name, file)`` finds a file's URL.

    Raises:
        TorchCudaError: a file's URL cannot be had (``file_url`` says why).
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
            archive["url" if "://" in package.url else "path"] = package.url
            archive["hashes"] = {"sha256": sha256}
            table["archive"] = archive
            entries.append(table)
            continue
        assert package.index is not None
        table["index"] = package.index
        wheels = tomlkit.array()
        for filename, url, sha256 in sorted(package.files):
            item = tomlkit.inline_table()
            item["name"] = filename
            item["url"] = url or file_url(package.index, package.name, filename)
            item["hashes"] = {"sha256": sha256}
            if filename.endswith(".whl"):
                wheels.append(item)
            else:
                table["sdist"] = item
        if wheels:
            table["wheels"] = wheels.multiline(True)
        entries.append(table)
    document["packages"] = entries
    return tomlkit.dumps(document)


def _header(
    packages: Iterable[ExportedPackage], secret: Iterable[str]
) -> tuple[list[str], list[str], list[str]]:
    """The indexes (PyPI first), the hosts of plain-http ones (pip ignores them
    without ``--trusted-host``) and the comments naming those with credentials."""
    found = {p.index for p in packages if p.index is not None}
    indexes = sorted(found, key=lambda url: (url != PYPI_SIMPLE, url)) or [PYPI_SIMPLE]
    hosts = sorted({urlsplit(u).netloc for u in indexes if u.startswith("http://")})
    secret = set(secret)
    comments = [
        f"# {url} needs credentials, which are not written here: give pip the URL "
        "with them in PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, or put them in ~/.netrc."
        for url in indexes
        if url in secret
    ]
    return indexes, hosts, comments

"""Export a complete, hash-pinned install list for one variant, from the two locks only.

Poetry's packages come from poetry.lock (with its hashes and markers, the
torch family left out); the variant's build and its CUDA wheels from
torch-cuda.lock. Both formats install with pip on a machine without a GPU:
``pip install --require-hashes -r requirements.txt`` and (pip >= 26.1)
``pip install -r pylock.toml``. No index is asked and no credential is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import quote

from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name

from poetry_torch_cuda.index.urls import without_credentials
from poetry_torch_cuda.install.protection import protected_names
from poetry_torch_cuda.lockfile.model import LOCK_NAME


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from poetry_torch_cuda.lockfile.model import VariantLock

PYPI_SIMPLE = "https://pypi.org/simple"
#: PyPI serves every file under this scheme too; poetry.lock records no URLs.
PYPI_FILES = "https://files.pythonhosted.org/packages/{tag}/{first}/{name}/{file}"


@dataclass(frozen=True)
class ExportedPackage:
    """One line of the export: a package, its markers, files (name, url, sha256)."""

    name: str
    version: str
    markers: str
    index: str
    files: tuple[tuple[str, str | None, str], ...]


@dataclass(frozen=True)
class Selection:
    """The groups and extras to export."""

    groups: frozenset[str]
    extras: frozenset[str]


def poetry_packages(
    lock_data: Mapping[str, Any],
    configured: Iterable[NormalizedName],
    selection: Selection,
) -> list[ExportedPackage]:
    """poetry.lock's packages for ``selection``, the torch family left out."""
    from poetry.core.version.markers import parse_marker

    packages = list(lock_data.get("package", []))
    graph = {
        canonicalize_name(str(p["name"])): [
            canonicalize_name(d) for d in (p.get("dependencies") or {})
        ]
        for p in packages
    }
    protected = protected_names(configured, [graph])
    exported = []
    for package in packages:
        name = canonicalize_name(str(package["name"]))
        if name in protected:
            continue
        groups = set(package.get("groups", ["main"]))
        chosen = sorted(groups & selection.groups)
        if not chosen:
            continue
        markers = package.get("markers", "")
        marker = parse_marker("<empty>")
        for group in chosen:
            value = markers.get(group, "") if isinstance(markers, dict) else markers
            marker = marker.union(parse_marker(str(value)))
        extra_part = marker.only("extra")
        if not extra_part.is_any() and not any(
            extra_part.validate({"extra": extra}) for extra in selection.extras
        ):
            continue
        marker = marker.without_extras()
        source = package.get("source") or {}
        index = str(source.get("url") or PYPI_SIMPLE)
        files = tuple(
            (
                str(entry["file"]),
                _file_url(name, str(entry["file"]), source),
                str(entry["hash"]).partition(":")[2],
            )
            for entry in package.get("files", [])
            if str(entry.get("hash", "")).startswith("sha256:")
        )
        exported.append(
            ExportedPackage(
                name, str(package["version"]), str(marker), _bare(index), files
            )
        )
    return exported


def variant_packages(
    lock: VariantLock, roots: Iterable[NormalizedName]
) -> list[ExportedPackage]:
    """The locked build of the variant: ``roots`` and everything they may need."""
    wanted = set(roots)
    included: dict[tuple[str, str], ExportedPackage] = {}
    stack = [p for p in lock.packages if p.name in wanted]
    while stack:
        package = stack.pop()
        key = (package.name, package.version)
        if key in included:
            continue
        included[key] = ExportedPackage(
            package.name,
            package.version,
            package.markers,
            lock.index_url,
            tuple((f.filename, f.url, f.sha256) for f in lock.files(package)),
        )
        for dependency in package.dependencies:
            found = lock.package(dependency.name, dependency.version)
            if found is not None:
                stack.append(found)
    return list(included.values())


def requirements_txt(
    variant: str, packages: Iterable[ExportedPackage], needs_credentials: Iterable[str]
) -> str:
    """A requirements file for ``pip install --require-hashes -r``."""
    packages = sorted(packages, key=lambda p: (p.name, p.version))
    indexes = _indexes(packages)
    lines = [
        (
            f"# Exported by poetry-torch-cuda from poetry.lock and {LOCK_NAME} "
            f"for variant {variant}."
        ),
        "# Install with: pip install --require-hashes -r <this file>",
    ]
    lines += _credential_comments(indexes, needs_credentials)
    lines.append(f"--index-url {indexes[0]}")
    lines += [f"--extra-index-url {url}" for url in indexes[1:]]
    lines.append("")
    for package in packages:
        marker = f" ; {package.markers}" if package.markers else ""
        hashes = sorted({sha for _, _, sha in package.files})
        lines.append(
            f"{package.name}=={package.version}{marker}"
            + "".join(f" \\\n    --hash=sha256:{sha}" for sha in hashes)
        )
    return "\n".join(lines) + "\n"


def pylock_toml(
    variant: str,
    packages: Iterable[ExportedPackage],
    requires_python: str,
    needs_credentials: Iterable[str],
) -> str:
    """A PEP 751 ``pylock.toml``: every package with its files' URLs and sha256."""
    import tomlkit

    packages = sorted(packages, key=lambda p: (p.name, p.version))
    document = tomlkit.document()
    for line in (
        (
            f"Exported by poetry-torch-cuda from poetry.lock and {LOCK_NAME} for "
            f"variant {variant}."
        ),
        "Install with: pip install -r pylock.toml (pip >= 26.1).",
        *(
            c.removeprefix("# ")
            for c in _credential_comments(_indexes(packages), needs_credentials)
        ),
    ):
        document.add(tomlkit.comment(line))
    document["lock-version"] = "1.0"
    if requires_python:
        document["requires-python"] = requires_python
    document["created-by"] = "poetry-torch-cuda"
    entries = tomlkit.aot()
    for package in packages:
        table = tomlkit.table()
        table["name"] = package.name
        table["version"] = package.version
        if package.markers:
            table["marker"] = package.markers
        table["index"] = package.index
        wheels = tomlkit.array()
        for filename, url, sha256 in sorted(package.files):
            item = tomlkit.inline_table()
            item["name"] = filename
            if url is not None:
                item["url"] = url
            hashes = tomlkit.inline_table()
            hashes["sha256"] = sha256
            item["hashes"] = hashes
            wheels.append(item)
        table["wheels"] = wheels.multiline(True)
        entries.append(table)
    document["packages"] = entries
    return tomlkit.dumps(document)


def _indexes(packages: Iterable[ExportedPackage]) -> list[str]:
    found = sorted(
        {p.index for p in packages}, key=lambda url: (url != PYPI_SIMPLE, url)
    )
    return found or [PYPI_SIMPLE]


def _credential_comments(
    indexes: Iterable[str], needs_credentials: Iterable[str]
) -> list[str]:
    secret = set(needs_credentials)
    return [
        f"# {url} needs credentials, which are not written here: give pip the URL "
        "with them in PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, or put them in ~/.netrc."
        for url in indexes
        if url in secret
    ]


def _bare(url: str) -> str:
    return without_credentials(url).rstrip("/")


def _file_url(name: str, filename: str, source: Mapping[str, Any]) -> str | None:
    """Where the file is, without asking: beside the project page, or PyPI's scheme."""
    url = source.get("url")
    if source.get("type") == "legacy" and url:
        return f"{_bare(str(url))}/{name}/{quote(filename)}"
    if source:
        return None
    tag = filename[:-4].split("-")[-3] if filename.endswith(".whl") else "source"
    return PYPI_FILES.format(tag=tag, first=name[0], name=name, file=quote(filename))

"""torch-cuda.lock's format (per variant, the builds, their dependencies and files),
its one reader (:func:`read_lock`: a conflict anywhere is an error everywhere) and
its writer (:func:`write_lock`: atomic, same inputs same bytes)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urljoin

from packaging.markers import Marker
from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name

from poetry_torch_cuda import tempfiles
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.project.variants import version_key


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Poetry depends on tomli below 3.11
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from pathlib import Path

    from poetry.poetry import Poetry

#: The name of the file, beside poetry.lock.
LOCK_NAME = "torch-cuda.lock"
#: The format of the file; a reader refuses a newer major version.
LOCK_VERSION = "1.0"


@dataclass(frozen=True)
class LockedFile:
    """One file of a locked build: an absolute URL without credentials, its sha256."""

    name: NormalizedName
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None = None
    #: The lock that holds the sha256 (poetry.lock's files, for what the family needs).
    lock: str = LOCK_NAME


@dataclass(frozen=True, order=True)
class LockedDependency:
    """An edge of the locked graph: ``name==version`` when ``markers`` hold."""

    name: NormalizedName
    version: str
    markers: str = ""


@dataclass(frozen=True)
class LockedPackage:
    """One package of a variant's build; :meth:`VariantLock.files` resolves its URLs."""

    name: NormalizedName
    version: str
    markers: str = ""
    dependencies: tuple[LockedDependency, ...] = ()
    #: ``(file name, url as written (relative to the index where possible), sha256, size)``
    files: tuple[tuple[str, str, str, int | None], ...] = ()


@dataclass(frozen=True)
class VariantLock:
    """The locked build of one variant from one index."""

    name: str
    index_url: str
    packages: tuple[LockedPackage, ...] = ()

    def package(self, name: str, version: str | None = None) -> LockedPackage | None:
        """The package ``name`` (at ``version`` if given; else the newest)."""
        wanted = canonicalize_name(name)
        found = [p for p in self.packages if p.name == wanted]
        if version is not None:
            found = [p for p in found if version_key(p.version) == version_key(version)]
        return max(found, key=lambda p: version_key(p.version), default=None)

    def closure(
        self,
        roots: Iterable[tuple[str, str | None]],
        marker_env: Mapping[str, Any] | None,
    ) -> list[LockedPackage]:
        """``roots`` and their dependencies in ``marker_env`` (``None``: any); a KeyError
        names one not locked."""
        environment = {**(marker_env or {}), "extra": ""}
        chosen: dict[tuple[str, str], LockedPackage] = {}
        stack: list[tuple[str, str | None]] = list(roots)
        while stack:
            name, version = stack.pop()
            package = self.package(name, version)
            if package is None:
                raise KeyError(f"{name} {version or ''}".strip())
            key = (package.name, package.version)
            if key in chosen:
                continue
            chosen[key] = package
            stack += [
                (d.name, d.version)
                for d in package.dependencies
                if marker_env is None
                or not d.markers
                or Marker(d.markers).evaluate(environment)
            ]
        return sorted(chosen.values(), key=lambda p: (p.name, version_key(p.version)))

    def files(self, package: LockedPackage) -> list[LockedFile]:
        """``package``'s files with absolute URLs."""
        base = self.index_url.rstrip("/") + "/"
        return [
            LockedFile(
                package.name, package.version, file, urljoin(base, url), sha, size
            )
            for file, url, sha, size in package.files
        ]


@dataclass(frozen=True)
class LockInputs:
    """What the lock was derived from, all known offline; equal inputs: a fresh lock."""

    content_hash: str
    locked: tuple[tuple[NormalizedName, tuple[str, ...]], ...]
    packages: tuple[str, ...]
    lock_variants: tuple[str, ...]


@dataclass(frozen=True)
class TorchCudaLock:
    """The whole file: its inputs and one entry per locked variant."""

    inputs: LockInputs
    variants: tuple[VariantLock, ...] = ()

    def variant(self, name: str) -> VariantLock | None:
        """The entry for ``name``, if locked."""
        return next((v for v in self.variants if v.name == name), None)


class LockFileError(TorchCudaError):
    """torch-cuda.lock cannot be read; the message says how to get a good one."""


def read_lock(path: Path) -> TorchCudaLock | None:
    """The whole lock in ``path`` (``None``: no such file); a :class:`LockFileError`
    if it is not a torch-cuda.lock this version can read (a merge conflict included),
    naming the table or value that is not."""
    try:  # a BOM (Notepad's UTF-8) is no part of the text
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise LockFileError(
            f"{LOCK_NAME} is not UTF-8 text (saved in another encoding?); {_again(path)}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise LockFileError(
            f"{LOCK_NAME} is not valid TOML ({error}; a merge conflict?); {_again(path)}"
        ) from None
    part = "the file"  # what is read: a refusal names it
    try:
        metadata = data["metadata"]

        def value(key: str) -> Any:
            nonlocal part
            part = "[metadata]"  # a key missing: its table
            found = metadata[key]
            part = f"[metadata] {key}"  # a bad value: its key
            return found

        version = str(value("lock-version"))  # first: a newer plugin's may differ after
        newer = int(version.split(".")[0]) - int(LOCK_VERSION.split(".")[0])
        if newer < 0:  # no plugin wrote it (nor a major that is no number)
            raise ValueError(version)
        if newer:
            raise LockFileError(
                f"{LOCK_NAME} has lock-version {version}; this poetry-torch-cuda "
                f"reads {LOCK_VERSION}. Upgrade the plugin, or {_again(path)}"
            )
        inputs = LockInputs(
            str(value("content-hash")),
            tuple(
                (canonicalize_name(n), _strings(v))
                for n, v in sorted(value("locked").items())
            ),
            _strings(value("packages")),
            _strings(value("lock-variants")),
        )
        variants: list[VariantLock] = []
        for entry in data.get("variant", []):
            part = "[[variant]]"  # its name missing: the table
            part = f"[[variant]] {entry['name']}"
            variants.append(_variant(entry))
            if variants[-1].name in {v.name for v in variants[:-1]}:
                part += " (twice)"  # a merge kept both sides
                raise ValueError(part)
    except KeyError as error:
        raise _unreadable(path, f"{part} has no {error.args[0]}") from None
    except (TypeError, ValueError, AttributeError):
        raise _unreadable(path, f"{part} is not as this plugin writes it") from None
    return TorchCudaLock(inputs, tuple(variants))


def _unreadable(path: Path, why: str) -> LockFileError:
    return LockFileError(
        f"{path.name} is not a torch-cuda.lock this plugin can read ({why}); "
        + _again(path)
    )


def lock_path(poetry: Poetry) -> Path:
    """torch-cuda.lock, beside poetry.lock; one there that cannot be read (its
    permissions, a folder in its place) is refused: a :class:`LockFileError`."""
    path = poetry.locker.lock.parent / LOCK_NAME
    try:
        path.open("rb").close()
    except FileNotFoundError:
        pass
    except OSError as error:
        raise LockFileError(
            f"{LOCK_NAME} cannot be read ({error.strerror}): {path}. Make it a file "
            "you can read (its permissions, or remove what is in its place and run "
            "`poetry torch-cuda lock`), then run the command again."
        ) from None
    return path


def _again(path: Path) -> str:
    # Re-locking compares the index with the hashes the damaged file still holds;
    # with none left, it refuses without --accept-drift.
    if recorded_hashes(path):
        return "run `poetry torch-cuda lock` to write it again."
    return (
        f"restore it (`git checkout -- {LOCK_NAME}`), or write it again trusting "
        "the index as it is now: `poetry torch-cuda lock --accept-drift`."
    )


def _variant(entry: dict[str, Any]) -> VariantLock:
    packages = [
        LockedPackage(
            *_named(p),
            tuple(LockedDependency(*_named(d)) for d in p["dependencies"]),
            tuple(map(_file, p["files"])),
        )
        for p in entry["package"]
    ]
    keys = [(p.name, p.version) for p in packages]
    names = [f[0] for p in packages for f in p.files]
    if len(set(keys)) < len(keys) or len(set(names)) < len(names):
        raise ValueError("a package or a file twice")
    name = str(entry["name"])
    if parse_variant(name).kind == "auto":  # auto names no build
        raise ValueError(name)
    return VariantLock(name, str(entry["index-url"]), tuple(packages))


def _file(item: dict[str, Any]) -> tuple[str, str, str, int | None]:
    algorithm, _, digest = str(item["hash"]).partition(":")
    if algorithm != "sha256" or not _SHA256.fullmatch(digest):
        raise ValueError(item["hash"])
    size = item.get("size")
    if size is not None and (type(size) is not int or size < 0):
        raise ValueError(size)
    return str(item["file"]), str(item["url"]), digest.lower(), size


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):  # a string is no list: not its letters
        raise TypeError(value)
    return tuple(str(item) for item in value)


def _named(item: dict[str, Any]) -> tuple[NormalizedName, str, str]:
    markers = item.get("markers", "")
    if markers:  # closure and export evaluate it
        Marker(str(markers))  # InvalidMarker is a ValueError
    return canonicalize_name(item["name"]), str(item["version"]), str(markers)


_SHA256 = re.compile("[0-9a-fA-F]{64}")
_FILE_LINE = re.compile(r'file = "([^"]+)".*hash = "sha256:([0-9a-fA-F]+)"')


def recorded_hashes(path: Path) -> dict[tuple[str, str], set[str]]:
    """``(variant, file name) -> sha256s`` in ``path`` read line by line: a damaged
    file's too (both sides of a conflict count)."""
    found: dict[tuple[str, str], set[str]] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return found
    variant, expect_name = "", False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped == "[[variant]]":
            expect_name = True
        elif expect_name and stripped.startswith("name ="):
            variant, expect_name = stripped.partition("=")[2].strip().strip('"'), False
        elif match := _FILE_LINE.search(line):
            found.setdefault((variant, match[1]), set()).add(match[2].lower())
    return found


HEADER = """\
# torch-cuda.lock: the PyTorch builds poetry-torch-cuda installs, with the sha256
# of every file. @generated by poetry-torch-cuda; do not edit it by hand.
# Commit it beside poetry.lock. `poetry torch-cuda lock` rewrites it,
# `poetry torch-cuda lock --check` tells whether it matches poetry.lock.
"""


def write_lock(path: Path, lock: TorchCudaLock) -> bool:
    """Write ``lock`` to ``path``, sorted and atomically; whether the file changed."""
    import tomlkit

    def inline(rows: Iterable[dict[str, Any]]) -> Any:
        array = tomlkit.array()
        for row in rows:  # one line a row; an empty value is left out
            item = tomlkit.inline_table()
            item.update({k: v for k, v in row.items() if v not in ("", None)})
            array.append(item)
        return array.multiline(bool(array))

    inputs = lock.inputs
    document = tomlkit.document()
    document["metadata"] = {
        "lock-version": LOCK_VERSION,
        "content-hash": inputs.content_hash,
        "packages": list(inputs.packages),
        "lock-variants": list(inputs.lock_variants),
        "locked": {name: list(versions) for name, versions in inputs.locked},
    }
    document["variant"] = [
        {
            "name": variant.name,
            "index-url": variant.index_url,
            "package": [
                {
                    **_fields(p),
                    "dependencies": inline(map(_fields, sorted(p.dependencies))),
                    "files": inline(
                        {"file": f, "url": u, "hash": f"sha256:{sha}", "size": size}
                        for f, u, sha, size in sorted(p.files)
                    ),
                }
                for p in sorted(variant.packages, key=lambda p: (p.name, p.version))
            ],
        }
        for variant in sorted(lock.variants, key=lambda v: v.name)
    ]
    return tempfiles.write_text(path, HEADER + "\n" + tomlkit.dumps(document))


def _fields(item: LockedPackage | LockedDependency) -> dict[str, str]:
    named = {"name": item.name, "version": item.version, "markers": item.markers}
    return {key: value for key, value in named.items() if value}

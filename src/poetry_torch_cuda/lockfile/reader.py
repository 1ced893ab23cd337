"""Read torch-cuda.lock: its inputs fast (no-op installs), the whole file on demand.

A no-op ``poetry install`` only needs the ``[metadata]`` table at the top of
the file, so :func:`read_inputs` parses the text up to the first
``[[variant]]`` and nothing more.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.model import LOCK_VERSION
from poetry_torch_cuda.lockfile.model import LockedDependency
from poetry_torch_cuda.lockfile.model import LockedPackage
from poetry_torch_cuda.lockfile.model import LockInputs
from poetry_torch_cuda.lockfile.model import TorchCudaLock
from poetry_torch_cuda.lockfile.model import VariantLock


if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Poetry depends on tomli below 3.11
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

if TYPE_CHECKING:
    from pathlib import Path

_VARIANTS = "\n[[variant]]"


class LockFileError(TorchCudaError):
    """torch-cuda.lock cannot be read; the message says how to get a good one."""


def _read(path: Path, *, head_only: bool) -> dict[str, Any] | None:
    """The parsed file (only its head, before the first ``[[variant]]``, when
    ``head_only``); ``None`` when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise LockFileError(f"cannot read {LOCK_NAME}: {error.strerror}") from None
    if head_only:
        text, _, _ = text.partition(_VARIANTS)
    return _parse(text)


def read_inputs(path: Path) -> LockInputs | None:
    """The inputs recorded in ``path`` (``None``: no such file).

    Raises:
        LockFileError: the file is not a torch-cuda.lock this version can read.
    """
    data = _read(path, head_only=True)
    return None if data is None else _inputs(data, path)


def read_lock(path: Path) -> TorchCudaLock | None:
    """The whole lock in ``path`` (``None``: no such file); raises like :func:`read_inputs`."""
    data = _read(path, head_only=False)
    if data is None:
        return None
    inputs = _inputs(data, path)
    try:
        variants = tuple(_variant(entry) for entry in data.get("variant", []))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _broken(path) from None
    return TorchCudaLock(inputs, variants)


def _parse(text: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as error:
        raise LockFileError(
            f"{LOCK_NAME} is not valid TOML ({error}); run `poetry torch-cuda lock` "
            "to write it again (a merge conflict? take either side first)."
        ) from None


def _inputs(data: dict[str, Any], path: Path) -> LockInputs:
    metadata = data.get("metadata")
    try:
        assert isinstance(metadata, dict)
        version = str(metadata["lock-version"])
        if version.split(".")[0] != LOCK_VERSION.split(".")[0]:
            raise LockFileError(
                f"{LOCK_NAME} has lock-version {version}; this poetry-torch-cuda "
                f"reads {LOCK_VERSION}. Upgrade the plugin, or run "
                "`poetry torch-cuda lock` to write it again."
            )
        return LockInputs(
            content_hash=str(metadata["content-hash"]),
            locked=tuple(
                (canonicalize_name(name), tuple(str(v) for v in versions))
                for name, versions in sorted(metadata["locked"].items())
            ),
            packages=tuple(str(p) for p in metadata["packages"]),
            lock_variants=tuple(str(v) for v in metadata["lock-variants"]),
            indexes=tuple(
                (str(name), str(url))
                for name, url in sorted(metadata["indexes"].items())
            ),
        )
    except (AssertionError, KeyError, TypeError, AttributeError):
        raise _broken(path) from None


def _variant(entry: dict[str, Any]) -> VariantLock:
    packages = []
    for package in entry.get("package", []):
        files = []
        for item in package.get("files", []):
            algorithm, _, digest = str(item["hash"]).partition(":")
            if algorithm != "sha256" or not digest:
                raise ValueError(item["hash"])
            size = item.get("size")
            files.append(
                (
                    str(item["file"]),
                    str(item["url"]),
                    digest,
                    None if size is None else int(size),
                )
            )
        packages.append(
            LockedPackage(
                canonicalize_name(package["name"]),
                str(package["version"]),
                str(package.get("markers", "")),
                tuple(
                    LockedDependency(
                        canonicalize_name(d["name"]),
                        str(d["version"]),
                        str(d.get("markers", "")),
                    )
                    for d in package.get("dependencies", [])
                ),
                tuple(files),
            )
        )
    return VariantLock(str(entry["name"]), str(entry["index-url"]), tuple(packages))


def _broken(path: Path) -> LockFileError:
    return LockFileError(
        f"{path.name} is not a torch-cuda.lock this plugin can read; run "
        "`poetry torch-cuda lock` to write it again."
    )

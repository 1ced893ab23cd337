"""What torch-cuda.lock is derived from, read offline, and whether a lock still matches.

The index URL per variant is the configured one (``index-url`` or the named
source's URL), without credentials. ``POETRY_TORCH_CUDA_INDEX_URL`` is a
per-run mirror: the locked files are fetched from it and checked by hash, so
it does not make the lock stale; ``POETRY_TORCH_CUDA_VARIANT`` picks the
variant to install, not the variants to lock.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.index.urls import without_credentials
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.model import LockInputs
from poetry_torch_cuda.project.config import ENV_INDEX_URL
from poetry_torch_cuda.project.config import ENV_VARIANT
from poetry_torch_cuda.project.config import load_config


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from pathlib import Path

    from poetry.packages.locker import Locker
    from poetry.poetry import Poetry

    from poetry_torch_cuda.project.config import TorchCudaConfig

#: ``lock-variants`` recorded when ``auto`` chose the set.
AUTO = "auto"


def lock_path(poetry: Poetry) -> Path:
    """torch-cuda.lock, beside poetry.lock."""
    return poetry.locker.lock.parent / LOCK_NAME


def configured(pyproject: Mapping[str, Any]) -> TorchCudaConfig | None:
    """The configuration without the per-run environment overrides."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in (ENV_VARIANT, ENV_INDEX_URL)
    }
    return load_config(pyproject, environ)


def lock_variant_names(
    config: TorchCudaConfig, table: Mapping[str, Any]
) -> tuple[str, ...]:
    """``lock-variants`` as written, else the configured variant (``auto`` for auto)."""
    value = table.get("lock-variants")
    if isinstance(value, list) and value:
        return tuple(sorted({str(v) for v in value}))
    return (config.variant.name,)


def locked_versions(
    locker: Locker, names: Iterable[str]
) -> tuple[tuple[Any, tuple[str, ...]], ...]:
    """Every version poetry.lock locks for each of ``names`` (sorted)."""
    wanted = {canonicalize_name(name) for name in names}
    found: dict[Any, set[str]] = {}
    if locker.is_locked():
        for package in locker.lock_data.get("package", []):
            name = canonicalize_name(str(package.get("name", "")))
            if name in wanted:
                found.setdefault(name, set()).add(str(package.get("version")))
    return tuple((name, tuple(sorted(found[name]))) for name in sorted(found))


def content_hash(locker: Locker) -> str:
    """poetry.lock's ``content-hash`` ("" without a lock)."""
    if not locker.is_locked():
        return ""
    metadata = locker.lock_data.get("metadata", {})
    return str(metadata.get("content-hash", ""))


def current_inputs(
    poetry: Poetry,
    config: TorchCudaConfig,
    lock_variants: Iterable[str],
    variants: Iterable[str] = (),
) -> LockInputs:
    """The inputs a lock made now would record; ``variants`` get their index URL."""
    return LockInputs(
        content_hash=content_hash(poetry.locker),
        locked=locked_versions(poetry.locker, config.package_names),
        packages=tuple(str(requirement) for requirement in config.packages),
        lock_variants=tuple(lock_variants),
        indexes=index_urls(config, variants),
    )


def index_urls(
    config: TorchCudaConfig, variants: Iterable[str]
) -> tuple[tuple[str, str], ...]:
    """``(variant, index URL without credentials)``, sorted."""
    from poetry_torch_cuda.project.variants import parse_variant

    return tuple(
        sorted(
            (name, without_credentials(config.index_url(parse_variant(name))))
            for name in set(variants)
        )
    )


def differences(
    recorded: LockInputs, current: LockInputs, *, variant: str | None = None
) -> list[str]:
    """Why a lock with ``recorded`` inputs does not fit ``current`` (empty: it does).

    With ``variant`` only that variant's index is compared, and ``lock-variants``
    is not (an install needs that variant, not the whole set).
    """
    reasons = []
    if recorded.content_hash != current.content_hash:
        reasons.append("poetry.lock changed since it was written (content-hash)")
    if recorded.locked != current.locked:
        reasons.append(
            f"poetry.lock locks {_versions(current.locked)}, {LOCK_NAME} was made "
            f"for {_versions(recorded.locked)}"
        )
    if recorded.packages != current.packages:
        reasons.append(
            f"packages is now {list(current.packages)}, {LOCK_NAME} was made for "
            f"{list(recorded.packages)}"
        )
    if variant is None and recorded.lock_variants != current.lock_variants:
        reasons.append(
            f"lock-variants is now {list(current.lock_variants)}, {LOCK_NAME} was "
            f"made for {list(recorded.lock_variants)}"
        )
    have = recorded.index_by_variant
    for name, url in current.indexes:
        if variant is not None and name != variant:
            continue
        if name not in have:
            reasons.append(f"{name} is not locked")
        elif have[name] != url:
            reasons.append(
                f"{name}'s index is now {url}, it was locked from {have[name]}"
            )
    return reasons


def _versions(locked: Iterable[tuple[Any, tuple[str, ...]]]) -> str:
    return (
        ", ".join(f"{name} {' / '.join(versions)}" for name, versions in locked)
        or "nothing"
    )

"""Keep torch-cuda.lock in step with poetry.lock: lock, check, and hand an install its files.

A lock's inputs (:class:`LockInputs`) are known offline; the per-run overrides
(``POETRY_TORCH_CUDA_INDEX_URL``, ``_VARIANT``) never make a lock stale.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from typing import Any

from cleo.io.outputs.output import Verbosity
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.lockfile.builder import LockError
from poetry_torch_cuda.lockfile.builder import MissingBuildError
from poetry_torch_cuda.lockfile.builder import Root
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.model import LockFileError
from poetry_torch_cuda.lockfile.model import LockInputs
from poetry_torch_cuda.lockfile.model import TorchCudaLock
from poetry_torch_cuda.lockfile.model import read_lock
from poetry_torch_cuda.lockfile.model import recorded_hashes
from poetry_torch_cuda.lockfile.model import write_lock
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project import locked
from poetry_torch_cuda.project.config import ENV_INDEX_URL
from poetry_torch_cuda.project.config import ENV_VARIANT
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.project.variants import public_version
from poetry_torch_cuda.urls import mask_url
from poetry_torch_cuda.urls import without_credentials


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping
    from pathlib import Path

    from cleo.io.io import IO
    from poetry.poetry import Poetry

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.lockfile.model import VariantLock
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant

#: ``lock-variants`` recorded when ``auto`` chose the set.
AUTO = "auto"
FIX = f"Run `poetry torch-cuda lock` and commit {LOCK_NAME}."


def lock_path(poetry: Poetry) -> Path:
    """torch-cuda.lock, beside poetry.lock."""
    return poetry.locker.lock.parent / LOCK_NAME


def configured(pyproject: Mapping[str, Any], environ: Any = None) -> TorchCudaConfig:
    """The configuration without the per-run environment overrides (``environ``
    given: with them)."""
    if environ is None:
        environ = {
            k: v for k, v in os.environ.items() if k not in (ENV_VARIANT, ENV_INDEX_URL)
        }
    config = load_config(pyproject, environ)
    if config is None:
        raise TorchCudaError("This project has no [tool.poetry-torch-cuda] table.")
    return config


def lock_spec(config: TorchCudaConfig) -> tuple[str, ...]:
    """``lock-variants`` and the configured variant (``auto`` stands for its choices)."""
    return tuple(sorted({*config.lock_variants, config.variant.name}))


def current_inputs(
    poetry: Poetry, config: TorchCudaConfig, variants: Iterable[str] = ()
) -> LockInputs:
    """The inputs a lock made now would record; ``variants`` get their index URL."""
    return LockInputs(
        content_hash=locked.content_hash(poetry),
        locked=locked.locked_versions(poetry, config.package_names),
        packages=tuple(str(requirement) for requirement in config.packages),
        lock_variants=lock_spec(config),
        indexes=tuple(
            sorted(
                (name, without_credentials(config.index_url(parse_variant(name))))
                for name in set(variants)
            )
        ),
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
            f"the variants to lock are now {list(current.lock_variants)}, "
            f"{LOCK_NAME} was made for {list(recorded.lock_variants)}"
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


def _versions(found: Iterable[tuple[Any, tuple[str, ...]]]) -> str:
    return ", ".join(f"{n} {' / '.join(v)}" for n, v in found) or "nothing"


def check_lock(poetry: Poetry) -> list[str]:
    """Offline: why an install would not install exactly what torch-cuda.lock says
    (empty: it would). The whole file is read, every entry checked."""
    config = configured(poetry.pyproject.data)
    if not poetry.locker.is_locked():
        return ["poetry.lock does not exist; run `poetry lock`"]
    try:
        lock = read_lock(lock_path(poetry))
    except LockFileError as error:
        return [str(error).rstrip(".")]
    if lock is None:
        return [f"{LOCK_NAME} does not exist"]
    names = {n for n in lock_spec(config) if n != AUTO}
    if AUTO in lock_spec(config):
        names |= set(lock.inputs.index_by_variant)
    reasons = differences(lock.inputs, current_inputs(poetry, config, names))
    indexes = lock.inputs.index_by_variant
    for entry in lock.variants:
        if indexes.get(entry.name) != entry.index_url:
            reasons.append(f"{entry.name}'s entry is not the one its metadata names")
        missing = [
            f"{root.name} {root.version}"
            for root in roots_for(poetry, config, parse_variant(entry.name))
            if root.version is not None
            and entry.package(root.name, root.version) is None
        ] + [
            f"{d.name} {d.version}"
            for p in entry.packages
            for d in p.dependencies
            if entry.package(d.name, d.version) is None
        ]
        if missing:
            reasons.append(f"{entry.name} lacks {', '.join(sorted(set(missing)))}")
    for name in (names & set(indexes)) - {entry.name for entry in lock.variants}:
        reasons.append(f"{name} has no entry")
    reasons += _mirror_urls(lock, _fetching(poetry), config)
    return list(dict.fromkeys(reasons))


def lock_project(
    poetry: Poetry,
    io: IO,
    *,
    config: TorchCudaConfig | None = None,
    refresh: bool = False,
    reuse: bool = False,
    extra: Iterable[Variant] = (),
    accept_drift: bool = False,
) -> TorchCudaLock | None:
    """Lock every wanted variant (and ``extra``) and write torch-cuda.lock.

    ``reuse`` keeps the entries that still match without asking the index.
    Returns ``None`` when there was nothing to lock.

    Raises:
        DriftError: a locked file now has another sha256 on the index (unless
            ``accept_drift``), also when the previous file is damaged.
        LockError: a variant could not be locked.
    """
    config = config or configured(poetry.pyproject.data)
    from poetry_torch_cuda.index.client import project_client

    # The fetching URL differs from the configured one at most by credentials
    # (POETRY_TORCH_CUDA_INDEX_URL may carry them); the lock records neither.
    fetch = _fetching(poetry)
    template = without_credentials(fetch.index_url_template)
    if template != without_credentials(config.index_url_template):
        raise LockError(
            f"{LOCK_NAME} is never written through the per-run mirror "
            f"{ENV_INDEX_URL} ({mask_url(template)}): it records the configured "
            f"index, {mask_url(config.index_url_template)}. Unset {ENV_INDEX_URL} "
            "to lock, or make the mirror the index-url in pyproject.toml."
        )
    client = project_client(poetry, refresh=refresh)
    spec = lock_spec(config)
    names = {name for name in spec if name != AUTO} | {v.name for v in extra}
    optional: set[str] = set()
    if AUTO in spec:
        optional = set(_auto_variants(poetry, config, client)) - names
        names |= optional
    path = lock_path(poetry)
    previous, hashes = _previous(path, accept_drift)
    current = current_inputs(poetry, config, names)
    from poetry.core.constraints.version import parse_constraint

    from poetry_torch_cuda.lockfile.builder import VariantLocker

    python = poetry.package.python_constraint
    locker = VariantLocker(
        client,
        config.package_names,
        lambda version: python.allows_any(parse_constraint(f"~{version}")),
        client.cache_dir.parent / "metadata",
    )
    variants = []
    for name in sorted(names):
        kept = previous.variant(name) if reuse and previous else None
        if (
            kept
            and previous
            and not differences(previous.inputs, current, variant=name)
        ):
            variants.append(kept)
            continue
        variant = parse_variant(name)
        try:
            variants.append(
                locker.lock(
                    variant,
                    fetch.index_url(variant),
                    roots_for(poetry, config, variant),
                    {f: s for (v, f), s in hashes.items() if v == name},
                )
            )
        except MissingBuildError:
            if name not in optional:  # auto's candidates: only what the index has
                raise
    if not variants:
        return None
    lock = TorchCudaLock(
        current_inputs(poetry, config, [v.name for v in variants]), tuple(variants)
    )
    for name in client.skipped():
        io.write_line(
            f"{PREFIX}: skipped {name}: PEP 825 wheel variants are not supported yet",
            verbosity=Verbosity.VERBOSE,
        )
    if write_lock(path, lock):
        summary = "; ".join(
            f"{v.name}: {len(v.packages)} packages, "
            f"{sum(len(p.files) for p in v.packages)} files"
            for v in lock.variants
        )
        io.write_line(f"{PREFIX}: wrote {LOCK_NAME} ({summary})")
    else:
        # Asked for explicitly (refresh): say so; after `poetry lock`: only at -v.
        io.write_line(
            f"{PREFIX}: {LOCK_NAME} is up to date",
            verbosity=Verbosity.NORMAL if refresh else Verbosity.VERBOSE,
        )
    return lock


def _previous(
    path: Path, accept_drift: bool
) -> tuple[TorchCudaLock | None, Mapping[tuple[str, str], set[str]]]:
    """The previous lock (``None``: absent or unreadable) and the hashes it
    records, recovered line by line from a damaged file (a merge conflict)."""
    if accept_drift:
        return None, {}
    try:
        return read_lock(path), recorded_hashes(path) or {}
    except LockFileError:
        hashes = recorded_hashes(path)
        if not hashes:
            raise LockError(
                f"{LOCK_NAME} cannot be read and no locked file could be recovered "
                "from it, so the index's hashes cannot be compared with it. Restore "
                f"it (`git checkout -- {LOCK_NAME}`), or re-lock deliberately, "
                "trusting the index as it is now: `poetry torch-cuda lock "
                "--accept-drift`."
            ) from None
        return None, hashes


def entry_for(
    poetry: Poetry, config: TorchCudaConfig, variant: Variant
) -> tuple[VariantLock | None, list[str]]:
    """``variant``'s entry of torch-cuda.lock and why it does not fit (empty: it does)."""
    lock = read_lock(lock_path(poetry))
    if lock is None:
        return None, [f"{LOCK_NAME} does not exist"]
    found = lock.variant(variant.name)
    current = current_inputs(poetry, config, [variant.name])
    reasons = differences(lock.inputs, current, variant=variant.name)
    return found, reasons or ([] if found else [f"{variant} is not locked"])


def variant_lock(poetry: Poetry, variant: Variant, io: IO) -> VariantLock:
    """The locked build of ``variant`` for an install: a fresh entry costs one
    read and no request; a missing or stale one is locked now (as Poetry locks
    a missing poetry.lock), keeping the entries still fresh.

    Raises:
        LockError: the variant could not be locked.
    """
    found, reasons = entry_for(poetry, configured(poetry.pyproject.data), variant)
    if found is not None and not reasons:
        return found
    io.write_line(f"{PREFIX}: locking <c2>{variant}</> first ({reasons[0]})")
    try:
        # An install asks the index afresh: it is about to download from it anyway.
        made = lock_project(poetry, io, refresh=True, reuse=True, extra=[variant])
    except LockError as error:
        if error.status is None:
            raise
        from poetry_torch_cuda.index.credentials import index_access
        from poetry_torch_cuda.index.quick import http_failure

        access = index_access(_fetching(poetry), variant, poetry.config)
        cause, advice = http_failure(error.status, "torch", access)
        raise LockError(
            f"could not lock {variant} from {access.shown}: {cause}\n{advice}"
        ) from None
    entry = made.variant(variant.name) if made else None
    assert entry is not None  # lock_project raised instead
    return entry


def roots_for(poetry: Poetry, config: TorchCudaConfig, variant: Variant) -> list[Root]:
    """The configured packages at every version poetry.lock locks (with ``variant``'s
    label), each under its markers; a package not locked, at its specifier."""
    from poetry.core.version.markers import parse_marker

    by_name: dict[str, list[Any]] = {}
    for package, marker in locked.selected_packages(poetry):
        by_name.setdefault(package.name, []).append((package, marker))
    roots = []
    for requirement in config.packages:
        name = canonicalize_name(requirement.name)
        wanted = parse_marker(str(requirement.marker or ""))
        extras = frozenset(requirement.extras)
        found = by_name.get(name, [])
        if not found and requirement.specifier:
            roots.append(Root(name, None, requirement.specifier, extras, str(wanted)))
        for package, marker in found:
            public = public_version(package.version.text)
            if public is None:
                continue
            version = f"{public}+{variant.local_label}"
            markers = str(wanted.intersect(marker))
            roots.append(Root(name, version, SpecifierSet(), extras, markers))
    return roots


def _auto_variants(
    poetry: Poetry, config: TorchCudaConfig, client: IndexClient
) -> list[str]:
    """Every variant ``auto`` may choose whose index has all the locked builds."""
    from poetry_torch_cuda.index.client import ProjectFiles
    from poetry_torch_cuda.lockfile.builder import wheel_version
    from poetry_torch_cuda.machine import tables

    candidates = [
        parse_variant(name)
        for name in (*tables.CUDA_VARIANTS, *tables.ROCM_VARIANTS, "cpu")
    ]
    wanted = {
        variant.name: [
            (_fetching(poetry).index_url(variant), root)
            for root in roots_for(poetry, config, variant)
        ]
        for variant in candidates
    }
    pages = client.projects(
        sorted({(url, root.name) for pairs in wanted.values() for url, root in pairs})
    )

    def offers(page: object, version: str | None) -> bool:
        if not isinstance(page, ProjectFiles):
            return False
        if version is None:
            return bool(page.files)
        return any(wheel_version(name) == Version(version) for name in page.files)

    return [
        name
        for name, pairs in wanted.items()
        if pairs and all(offers(pages[(u, r.name)], r.version) for u, r in pairs)
    ]


def _mirror_urls(
    lock: TorchCudaLock, fetching: TorchCudaConfig, config: TorchCudaConfig
) -> list[str]:
    """Files the lock takes from this run's mirror (``POETRY_TORCH_CUDA_INDEX_URL``)."""
    from urllib.parse import urlsplit

    found = []
    for entry in lock.variants:
        variant = parse_variant(entry.name)
        mirror = urlsplit(without_credentials(fetching.index_url(variant))).netloc
        if mirror == urlsplit(config.index_url(variant)).netloc:
            continue
        found += [
            f"{entry.name}: {file.filename} is locked at the per-run mirror "
            f"{mask_url(file.url)}; re-lock without POETRY_TORCH_CUDA_INDEX_URL"
            for package in entry.packages
            for file in entry.files(package)
            if urlsplit(file.url).netloc == mirror
        ]
    return found


def _fetching(poetry: Poetry) -> TorchCudaConfig:
    """The configuration with this run's overrides: where files are fetched from."""
    return configured(poetry.pyproject.data, os.environ)


def settle(poetry: Poetry, io: IO, pyproject: Mapping[str, Any] | None = None) -> None:
    """Make torch-cuda.lock what ``poetry torch-cuda lock`` would write: after
    Poetry rewrote poetry.lock, or (``pyproject``) after ``switch`` recorded a
    variant, keeping the entries still fresh. A failure to lock is a warning
    (``lock --check`` names what is left to do), except a changed hash of a
    locked file after ``poetry lock``.

    Raises:
        DriftError: a locked file now has another sha256 on the index.
    """
    from poetry_torch_cuda.lockfile.builder import DriftError
    from poetry_torch_cuda.output import esc

    if not poetry.locker.is_locked():
        return
    try:
        if pyproject is None:
            lock_project(poetry, io)
        else:
            lock_project(poetry, io, config=configured(pyproject), reuse=True)
    except TorchCudaError as error:
        if pyproject is None and (
            isinstance(error, DriftError) or not isinstance(error, LockError)
        ):
            raise
        io.write_error_line(
            f"<warning>{PREFIX}: could not update {LOCK_NAME}: {esc(error)} {FIX}</>"
        )

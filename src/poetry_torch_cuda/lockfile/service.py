"""Keep torch-cuda.lock in step with poetry.lock: lock, check, and hand an install its files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from cleo.io.outputs.output import Verbosity
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.lockfile.builder import LockError
from poetry_torch_cuda.lockfile.builder import Root
from poetry_torch_cuda.lockfile.builder import VariantLocker
from poetry_torch_cuda.lockfile.inputs import AUTO
from poetry_torch_cuda.lockfile.inputs import configured
from poetry_torch_cuda.lockfile.inputs import current_inputs
from poetry_torch_cuda.lockfile.inputs import differences
from poetry_torch_cuda.lockfile.inputs import lock_path
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.model import TorchCudaLock
from poetry_torch_cuda.lockfile.reader import read_inputs
from poetry_torch_cuda.lockfile.reader import read_lock
from poetry_torch_cuda.lockfile.writer import write_lock
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from cleo.io.io import IO
    from poetry.poetry import Poetry

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.lockfile.model import LockInputs
    from poetry_torch_cuda.lockfile.model import VariantLock
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant


@dataclass(frozen=True)
class LockCheck:
    """The outcome of ``lock --check``: fresh when ``reasons`` is empty."""

    reasons: tuple[str, ...]

    @property
    def fresh(self) -> bool:
        """Whether torch-cuda.lock matches poetry.lock and the configuration."""
        return not self.reasons


def lock_spec(config: TorchCudaConfig) -> tuple[str, ...]:
    """``lock-variants``, else the configured variant (``("auto",)`` for auto)."""
    return config.lock_variants or (config.variant.name,)


def check_lock(poetry: Poetry) -> LockCheck:
    """Offline: does torch-cuda.lock match poetry.lock, the config and ``lock-variants``?"""
    config = _configured(poetry)
    if not poetry.locker.is_locked():
        return LockCheck(("poetry.lock does not exist; run `poetry lock`",))
    recorded = read_inputs(lock_path(poetry))
    if recorded is None:
        return LockCheck((f"{LOCK_NAME} does not exist",))
    spec = lock_spec(config)
    names = [name for name in spec if name != AUTO]
    if AUTO in spec:
        names += [name for name, _ in recorded.indexes]
    current = current_inputs(poetry, config, spec, names)
    mirrored = mirror_urls(lock_path(poetry), _fetching(poetry), config)
    return LockCheck((*differences(recorded, current), *mirrored))


def lock_project(
    poetry: Poetry,
    io: IO,
    *,
    refresh: bool = False,
    extra: Iterable[Variant] = (),
    quiet_missing: bool = False,
) -> TorchCudaLock | None:
    """Lock every wanted variant (and ``extra``) again and write torch-cuda.lock.

    With ``quiet_missing`` a configured variant that lacks the locked build is
    left out without a word (``poetry lock`` warns about it already).
    Returns ``None`` when there was nothing to lock.

    Raises:
        DriftError: a locked file now has another sha256 on the index.
        LockError: a variant could not be locked.
    """
    from poetry_torch_cuda.lockfile.builder import MissingBuildError

    config = _configured(poetry)
    fetch = _fetching(poetry)
    client = _client(poetry, refresh)
    spec = lock_spec(config)
    names = [name for name in spec if name != AUTO]
    optional: set[str] = set()
    if AUTO in spec:
        optional = set(_auto_variants(poetry, config, fetch, client)) - set(names)
        names += sorted(optional)
    names += [variant.name for variant in extra]
    names = sorted(set(names))
    path = lock_path(poetry)
    previous = _read_previous(path)
    locker = _locker(poetry, client)
    variants = []
    for name in names:
        variant = parse_variant(name)
        try:
            variants.append(
                locker.lock(
                    variant,
                    fetch.index_url(variant),
                    config.index_url(variant),
                    roots_for(poetry, config, variant),
                    previous.variant(name) if previous is not None else None,
                )
            )
        except MissingBuildError:
            # auto's candidates are only those the index fully offers
            if not quiet_missing and name not in optional:
                raise
    if not variants:
        return None
    lock = TorchCudaLock(
        current_inputs(poetry, config, spec, [v.name for v in variants]),
        tuple(variants),
    )
    for name in client.skipped():
        io.write_line(
            f"{PREFIX}: skipped {name}: PEP 825 wheel variants are not supported yet",
            verbosity=Verbosity.VERBOSE,
        )
    if write_lock(path, lock):
        io.write_line(f"{PREFIX}: wrote {LOCK_NAME} ({_summary(lock.variants)})")
    else:
        # Asked for explicitly (refresh): say so; after `poetry lock`: only at -v.
        io.write_line(
            f"{PREFIX}: {LOCK_NAME} is up to date",
            verbosity=Verbosity.NORMAL if refresh else Verbosity.VERBOSE,
        )
    return lock


def variant_lock(poetry: Poetry, variant: Variant, io: IO) -> VariantLock:
    """The locked build of ``variant`` for an install; lock it first when needed.

    A fresh entry costs one read of the file and no request. A missing or stale
    one is locked now (like Poetry locking when poetry.lock is missing), and
    the command says so.

    Raises:
        LockError: the variant could not be locked.
    """
    config = _configured(poetry)
    path = lock_path(poetry)
    spec = lock_spec(config)
    recorded = read_inputs(path)
    current = current_inputs(poetry, config, spec, [variant.name])
    reasons = (
        [f"{LOCK_NAME} does not exist"]
        if recorded is None
        else differences(recorded, current, variant=variant.name)
    )
    if not reasons:
        lock = read_lock(path)
        found = None if lock is None else lock.variant(variant.name)
        if found is not None:
            return found
        reasons = [f"{variant} is not locked"]
    io.write_line(f"{PREFIX}: locking <c2>{variant}</> first ({reasons[0]})")
    try:
        return _lock_first(poetry, config, variant, recorded, current, io)
    except LockError as error:
        if error.status is None:
            raise
        from poetry_torch_cuda.index.credentials import index_access
        from poetry_torch_cuda.install.diagnosis import refused

        access = index_access(_fetching(poetry), variant, poetry.config)
        cause, advice = refused(access, "torch", error.status)
        raise LockError(
            f"could not lock {variant} from {access.shown}: {cause}\n{advice}"
        ) from None


def _lock_first(
    poetry: Poetry,
    config: TorchCudaConfig,
    variant: Variant,
    recorded: LockInputs | None,
    current: LockInputs,
    io: IO,
) -> VariantLock:
    global_stale = recorded is None or bool(differences(recorded, current, variant=""))
    # An install asks the index afresh: it is about to download from it anyway.
    if global_stale:
        lock = lock_project(poetry, io, refresh=True, extra=[variant])
    else:
        lock = _add_variant(poetry, config, variant, io)
    found = None if lock is None else lock.variant(variant.name)
    if found is None:  # pragma: no cover - lock_project raised instead
        raise TorchCudaError(f"{variant} could not be locked.")
    return found


def roots_for(poetry: Poetry, config: TorchCudaConfig, variant: Variant) -> list[Root]:
    """The configured packages at poetry.lock's versions (with ``variant``'s label)."""
    from poetry.core.version.markers import parse_marker

    by_name: dict[str, list[dict[str, Any]]] = {}
    for package in poetry.locker.lock_data.get("package", []):
        by_name.setdefault(canonicalize_name(str(package.get("name"))), []).append(
            package
        )
    roots = []
    for requirement in config.packages:
        name = canonicalize_name(requirement.name)
        marker = parse_marker(str(requirement.marker or ""))
        extras = frozenset(requirement.extras)
        locked = by_name.get(name, [])
        if not locked and requirement.specifier:
            roots.append(Root(name, None, requirement.specifier, extras, str(marker)))
        for package in locked:
            try:
                public = Version(str(package["version"])).public
            except InvalidVersion:
                continue
            markers = package.get("markers", "")
            if isinstance(markers, dict):
                lock_marker = parse_marker("<empty>") if not markers else None
                for value in markers.values():
                    one = parse_marker(str(value))
                    lock_marker = one if lock_marker is None else lock_marker.union(one)
            else:
                lock_marker = parse_marker(str(markers))
            assert lock_marker is not None
            roots.append(
                Root(
                    name,
                    f"{public}+{variant.local_label}",
                    SpecifierSet(),
                    extras,
                    str(marker.intersect(lock_marker)),
                )
            )
    return roots


def _add_variant(
    poetry: Poetry, config: TorchCudaConfig, variant: Variant, io: IO
) -> TorchCudaLock:
    path = lock_path(poetry)
    previous = _read_previous(path)
    assert previous is not None
    client = _client(poetry, True)
    entry = _locker(poetry, client).lock(
        variant,
        _fetching(poetry).index_url(variant),
        config.index_url(variant),
        roots_for(poetry, config, variant),
        previous.variant(variant.name),
    )
    variants = [v for v in previous.variants if v.name != variant.name] + [entry]
    lock = TorchCudaLock(
        current_inputs(
            poetry, config, previous.inputs.lock_variants, [v.name for v in variants]
        ),
        tuple(variants),
    )
    write_lock(path, lock)
    io.write_line(f"{PREFIX}: added {variant} to {LOCK_NAME} ({_summary([entry])})")
    return lock


def _read_previous(path: Any) -> TorchCudaLock | None:
    from poetry_torch_cuda.lockfile.reader import LockFileError

    try:
        return read_lock(path)
    except LockFileError:
        return None  # written anew; nothing to compare hashes with


def _auto_variants(
    poetry: Poetry, config: TorchCudaConfig, fetch: TorchCudaConfig, client: IndexClient
) -> list[str]:
    """Every variant ``auto`` may choose whose index has all the locked builds."""
    from poetry_torch_cuda.machine import tables

    candidates = [
        parse_variant(name)
        for name in (*tables.CUDA_VARIANTS, *tables.ROCM_VARIANTS, "cpu")
    ]
    wanted = {
        variant.name: [
            (fetch.index_url(variant), root)
            for root in roots_for(poetry, config, variant)
        ]
        for variant in candidates
    }
    pages = client.projects(
        sorted({(url, root.name) for pairs in wanted.values() for url, root in pairs})
    )
    chosen = []
    for name, pairs in wanted.items():
        if pairs and all(
            _offers(pages[(url, root.name)], root.version) for url, root in pairs
        ):
            chosen.append(name)
    return chosen


def _offers(page: object, version: str | None) -> bool:
    from poetry_torch_cuda.index.client import ProjectFiles
    from poetry_torch_cuda.lockfile.builder import wheel_version

    if not isinstance(page, ProjectFiles):
        return False
    if version is None:
        return bool(page.files)
    wanted = Version(version)
    return any(wheel_version(name) == wanted for name in page.files)


def mirror_urls(
    path: Path, fetching: TorchCudaConfig, config: TorchCudaConfig
) -> list[str]:
    """Files the lock takes from this run's mirror (``POETRY_TORCH_CUDA_INDEX_URL``)."""
    from urllib.parse import urlsplit

    from poetry_torch_cuda.index.urls import mask_url
    from poetry_torch_cuda.index.urls import without_credentials

    try:
        lock = read_lock(path)
    except TorchCudaError:
        return []
    found = []
    for entry in lock.variants if lock is not None else ():
        variant = parse_variant(entry.name)
        mirror = urlsplit(without_credentials(fetching.index_url(variant))).netloc
        if mirror == urlsplit(config.index_url(variant)).netloc:
            continue
        for package in entry.packages:
            for file in entry.files(package):
                if urlsplit(file.url).netloc == mirror:
                    found.append(
                        f"{entry.name}: {file.filename} is locked at the per-run mirror "
                        f"{mask_url(file.url)}; re-lock without POETRY_TORCH_CUDA_INDEX_URL"
                    )
    return found


def _configured(poetry: Poetry) -> TorchCudaConfig:
    config = configured(poetry.pyproject.data)
    if config is None:
        raise TorchCudaError("This project has no [tool.poetry-torch-cuda] table.")
    return config


def _fetching(poetry: Poetry) -> TorchCudaConfig:
    """The configuration with this run's overrides: where files are fetched from."""
    from poetry_torch_cuda.project.config import load_config

    config = load_config(poetry.pyproject.data)
    if config is None:
        raise TorchCudaError("This project has no [tool.poetry-torch-cuda] table.")
    return config


def _client(poetry: Poetry, refresh: bool) -> IndexClient:
    from poetry_torch_cuda.machine.resolution import index_client

    return index_client(poetry, refresh=refresh)


def _locker(poetry: Poetry, client: IndexClient) -> VariantLocker:
    from poetry.core.constraints.version import parse_constraint

    constraint = poetry.package.python_constraint

    def python_allows(version: str) -> bool:
        return constraint.allows_any(parse_constraint(f"~{version}"))

    return VariantLocker(
        client,
        _configured(poetry).package_names,
        python_allows,
        client.cache_dir.parent / "metadata",
    )


def _summary(variants: Iterable[VariantLock]) -> str:
    parts = []
    for variant in variants:
        files = sum(len(p.files) for p in variant.packages)
        parts.append(f"{variant.name}: {len(variant.packages)} packages, {files} files")
    return "; ".join(parts)


def after_lock_write(poetry: Poetry, io: IO) -> None:
    """After Poetry rewrote poetry.lock: bring torch-cuda.lock in step.

    A variant without the locked build is left out silently (the lock-time
    check warns about it). An index that cannot be asked leaves the file as
    it was, with a warning; a changed hash of a locked file is an error.

    Raises:
        DriftError: a locked file now has another sha256 on the index.
    """
    from poetry_torch_cuda.lockfile.builder import DriftError
    from poetry_torch_cuda.lockfile.builder import LockError
    from poetry_torch_cuda.output import esc

    try:
        lock_project(poetry, io, quiet_missing=True)
    except DriftError:
        raise
    except LockError as error:
        io.write_error_line(
            f"<warning>{PREFIX}: could not update {LOCK_NAME}: {esc(error)} "
            "Run `poetry torch-cuda lock` once the index answers.</>"
        )

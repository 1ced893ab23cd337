"""The one reader of poetry.lock: what it locks, and what it resolves through
Poetry's own ``Transaction`` for an environment, groups and extras."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from packaging.requirements import Requirement
    from packaging.utils import NormalizedName
    from poetry.core.packages.package import Package
    from poetry.core.version.markers import BaseMarker
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    Selected = list[tuple[Package, BaseMarker]]  # poetry.lock's, with markers
    Entries = tuple[Requirement, ...]  # the table's ``packages``


@dataclass(frozen=True)
class LockedState:
    """What the lock resolves for this environment: versions and the dependency graph."""

    versions: Mapping[NormalizedName, str]
    graph: Mapping[NormalizedName, Iterable[NormalizedName]]
    #: Every package the lock resolves for the environment, at its version: what
    #: pip is held to when it must add something (empty: ``versions``).
    pins: Mapping[NormalizedName, str] = field(default_factory=dict)
    #: The project's own direct dependencies (every group): Poetry's, never the plugin's.
    direct: frozenset[NormalizedName] = frozenset()


def locked_graph(poetry: Poetry) -> dict[NormalizedName, list[NormalizedName]]:
    """poetry.lock's graph (empty without a lock), markers ignored (protection wants a
    superset)."""
    packages = poetry.locker.locked_repository().packages
    return {p.name: [dep.name for dep in p.requires] for p in packages}


def reread(poetry: Poetry) -> Poetry:
    """The project as it is now, read with ``poetry``'s options (``--no-cache``)."""
    from poetry.factory import Factory

    path = poetry.pyproject_path.parent
    return Factory().create_poetry(path, disable_cache=poetry.disable_cache)


def content_hash(poetry: Poetry) -> str:
    """poetry.lock's ``content-hash`` (its callers require the lock first)."""
    return str(poetry.locker.lock_data.get("metadata", {}).get("content-hash", ""))


def selected_packages(
    poetry: Poetry, groups: Iterable[str] | None = None, extras: Iterable[str] = ()
) -> Selected:
    """poetry.lock's packages as ``poetry install`` selects them for ``groups``
    (``None``: all, every extra) and ``extras``, each with its marker there, extras
    decided (``A or extra == "x"`` is ``A`` without ``x``); a lock before format 2.1:
    all, everywhere."""
    from poetry.core.version.markers import AnyMarker
    from poetry.core.version.markers import MarkerUnion
    from poetry.core.version.markers import dnf
    from poetry.core.version.markers import union

    locker = poetry.locker
    if not locker.is_locked_groups_and_markers():  # no lock: no packages
        return [(p, AnyMarker()) for p in locker.locked_repository().packages]
    wanted = None if groups is None else {canonicalize_name(g) for g in groups}
    active = {"extra": {canonicalize_name(e) for e in extras}}
    chosen = []
    for package, info in locker.locked_packages().items():
        shared = info.groups if wanted is None else info.groups & wanted
        marker = info.get_marker(shared)
        if wanted is not None:  # asked-for extras true, each alternative (core < 2.5)
            either = dnf(marker)
            ors = either.markers if isinstance(either, MarkerUnion) else (either,)
            marker = union(*(m.without_extras() for m in ors if m.validate(active)))
        if shared and not marker.is_empty():
            chosen.append((package, marker.without_extras()))
    return chosen


def locked_versions(
    selected: Selected, configured: Entries
) -> tuple[tuple[NormalizedName, tuple[str, ...]], ...]:
    """Every version ``selected`` locks for each ``configured`` package (sorted)."""
    refuse_unindexed((package for package, _ in selected), configured)
    wanted = {canonicalize_name(entry.name) for entry in configured}
    found: dict[NormalizedName, set[str]] = {}
    for package, _ in selected:
        if package.name in wanted:
            found.setdefault(package.name, set()).add(package.version.text)
    return tuple((name, tuple(sorted(found[name]))) for name in sorted(found))


def refuse_unindexed(packages: Iterable[Package], configured: Entries) -> None:
    """Refuse a ``configured`` package poetry.lock takes from a file, directory, URL or
    git (the index's would replace it) or at a version its unmarked entry excludes."""
    for p in packages:
        for entry in (e for e in configured if canonicalize_name(e.name) == p.name):
            said = f"{entry} is in [tool.poetry-torch-cuda] packages, but poetry.lock"
            if p.source_type in ("file", "directory", "url", "git"):
                raise TorchCudaError(
                    f"{said} takes it from {p.source_type} "
                    f"{mask_url(str(p.source_url))}, which the variant index's build "
                    "would replace: remove it from `packages` to keep that build, or "
                    "depend on it from the index."
                )
            if not entry.marker and not entry.specifier.contains(p.version.text, True):
                raise TorchCudaError(
                    f"{said} locks {p.name} {p.version.text}, and installs follow the "
                    f"lock: require {entry} in the project's dependencies and run "
                    "`poetry lock`, or remove the version from the entry."
                )


def resolved_versions(
    poetry: Poetry,
    marker_env: Mapping[str, Any],
    groups: Iterable[str],
    extras: Iterable[str] = (),
) -> dict[NormalizedName, str]:
    """Name -> version of what ``poetry install`` with ``groups``/``extras``
    installs into an empty environment: Poetry's own ``Transaction`` decides."""
    from poetry.puzzle.transaction import Transaction

    locker = poetry.locker
    repository = locker.locked_repository()
    if not locker.is_locked_groups_and_markers():
        return {p.name: p.version.text for p in repository.packages}
    names = {str(group) for group in groups}
    names |= {canonicalize_name(group) for group in names}
    transaction = Transaction(
        repository.packages,
        locker.locked_packages(),
        [],
        poetry.package,
        dict(marker_env),
        names,  # type: ignore[arg-type]  # set[str] on Poetry 2.0
    )
    operations = transaction.calculate_operations(
        with_uninstalls=False, extras={canonicalize_name(e) for e in extras}
    )
    return {
        op.package.name: op.package.version.text for op in operations if not op.skipped
    }


def locked_state(poetry: Poetry, env: Env, configured: Entries) -> LockedState:
    """The versions the lock installs into ``env`` (default groups) and its graph."""
    require_lock(poetry)
    refuse_unindexed(poetry.locker.locked_repository().packages, configured)
    groups = poetry.package.dependency_group_names()
    versions = resolved_versions(poetry, env.marker_env, groups)
    direct = frozenset(dependency.name for dependency in poetry.package.all_requires)
    return LockedState(versions, locked_graph(poetry), direct=direct)


#: Poetry's own words when ``poetry install`` refuses a stale lock.
STALE_LOCK = (
    "pyproject.toml changed significantly since poetry.lock was last generated. "
    "Run `poetry lock` to fix the lock file."
)


def is_stale(poetry: Poetry) -> bool:
    """Whether poetry.lock exists but no longer matches pyproject.toml (Poetry's)."""
    locker = poetry.locker
    return locker.is_locked() and bool(locker.lock_data) and not locker.is_fresh()


def require_lock(poetry: Poetry) -> None:
    """Refuse to act without poetry.lock (a :class:`TorchCudaError`, one wording)."""
    if not poetry.locker.is_locked():
        raise TorchCudaError("poetry.lock does not exist; run `poetry lock` first.")


def check_fresh(poetry: Poetry) -> None:
    """Refuse a stale lock, as ``poetry install`` does."""
    if is_stale(poetry):
        raise TorchCudaError(STALE_LOCK)

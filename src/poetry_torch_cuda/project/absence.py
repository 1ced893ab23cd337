"""Why a configured package is not installed, in words, for ``status``, ``switch``, ``sync``.

``not in the lock``; ``in the lock (group dev), not installed here``; ``in the lock,
only in group gpu, not selected (--with gpu)``; ``in the lock, behind extra gpu
(-E gpu)``; ``in the lock, but its markers exclude this environment``. Each answer
comes from Poetry's own selection (:func:`~poetry_torch_cuda.project.selection.locked_versions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name

from poetry_torch_cuda.project.selection import all_extras
from poetry_torch_cuda.project.selection import all_groups
from poetry_torch_cuda.project.selection import locked_versions


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from poetry.core.packages.package import Package
    from poetry.packages.transitive_package_info import TransitivePackageInfo
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.project.selection import Selection


def why_not_selected(
    poetry: Poetry,
    marker_env: Mapping[str, Any],
    name: NormalizedName,
    groups: Iterable[str],
    extras: Iterable[NormalizedName],
) -> str:
    """Why the lock does not install ``name`` with ``groups``/``extras``, in words.

    ``not in the lock``, ``in the lock, only in optional group gpu (--with gpu)``,
    ``in the lock, behind extra gpu (-E gpu)`` or ``in the lock, but its markers
    exclude this environment``.
    """
    locker = poetry.locker
    if not locker.is_locked():
        return "no lock file"
    package = _locked_package(poetry, name)
    if package is None:
        return "not in the lock"
    if not locker.is_locked_groups_and_markers():
        return "in the lock"
    groups = frozenset(groups)
    extras = frozenset(extras)
    reasons = []
    everything = all_groups(poetry)
    if name in locked_versions(poetry, marker_env, groups, extras):
        info = _package_info(poetry, package)
        where = ", ".join(sorted(str(g) for g in (info.groups if info else ())))
        return f"in the lock (group {where}), not installed here"
    if name in locked_versions(poetry, marker_env, everything, extras):
        info = _package_info(poetry, package)
        wanted = sorted(
            str(g) for g in (info.groups if info else ()) if g not in groups
        )
        options = " ".join(f"--with {g}" for g in wanted)
        reasons.append(
            f"only in group {', '.join(wanted)}, not selected"
            + (f" ({options})" if options else "")
        )
    elif name not in locked_versions(
        poetry, marker_env, everything, all_extras(poetry)
    ):
        return "in the lock, but its markers exclude this environment"
    else:
        needed = [
            extra
            for extra in sorted(all_extras(poetry) - extras)
            if name in locked_versions(poetry, marker_env, everything, {extra})
        ]
        if needed:
            flags = " ".join(f"-E {extra}" for extra in needed)
            reasons.append(f"behind extra {', '.join(needed)} ({flags})")
        else:
            reasons.append("not selected by these groups and extras")
    return "in the lock, " + "; ".join(reasons)


def nothing_held(
    poetry: Poetry,
    env: Env,
    configured: Iterable[NormalizedName],
    selection: Selection,
) -> str:
    """Why ``switch``/``sync`` moved nothing: no configured package is installed here."""
    marker_env = env.marker_env
    if selection.explicit:
        groups, extras = selection.groups, selection.extras
    else:
        groups, extras = _default_groups(poetry), frozenset()
    reasons = [
        f"{name}: {why_not_selected(poetry, marker_env, name, groups, extras)}"
        for name in sorted(configured)
    ]
    hint = (
        ""
        if selection.explicit
        else "; to install them here, pass the groups and extras that select them "
        "(--with, -E, --all-groups, --all-extras) or run `poetry install` with them"
    )
    return f"nothing moved: no configured package is installed ({'; '.join(reasons)}){hint}"


def _default_groups(poetry: Poetry) -> frozenset[str]:
    """The groups ``poetry install`` installs without options (the non-optional ones)."""
    return frozenset(str(name) for name in poetry.package.dependency_group_names())


@dataclass(frozen=True)
class LockView:
    """The lock as ``status`` shows it: every package and why one is not installed."""

    poetry: Poetry
    marker_env: Mapping[str, Any]
    #: What the lock resolves here with every group and extra.
    versions: Mapping[NormalizedName, str]
    #: Every package name in the lock.
    names: frozenset[NormalizedName]
    selection: Selection

    def why_absent(self, name: str) -> str:
        """Why ``name`` is not installed, in words (relative to the options given)."""
        if self.selection.explicit:
            groups, extras = self.selection.groups, self.selection.extras
        else:
            groups, extras = _default_groups(self.poetry), frozenset()
        return why_not_selected(
            self.poetry, self.marker_env, canonicalize_name(name), groups, extras
        )


def lock_view(poetry: Poetry, env: Env, selection: Selection) -> LockView:
    """The :class:`LockView` of ``poetry``'s lock for ``env``."""
    marker_env = env.marker_env
    versions = locked_versions(
        poetry, marker_env, all_groups(poetry), all_extras(poetry)
    )
    names = frozenset(p.name for p in poetry.locker.locked_repository().packages)
    return LockView(poetry, marker_env, versions, names, selection)


def _locked_package(poetry: Poetry, name: NormalizedName) -> Package | None:
    for package in poetry.locker.locked_repository().packages:
        if package.name == name:
            return package
    return None


def _package_info(poetry: Poetry, package: Package) -> TransitivePackageInfo | None:
    for locked, info in poetry.locker.locked_packages().items():
        if locked.name == package.name:
            return info
    return None

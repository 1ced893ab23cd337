"""Which locked packages a command works on: groups and extras exactly as Poetry selects them.

``switch``, ``sync`` and ``status`` follow what the environment holds: the
configured packages that are installed move to the new build, at their locked
version. With the options ``poetry install`` takes (``--with``, ``--without``,
``--only``, ``-E/--extras``, ``--all-extras``, ``--all-groups``), the packages
Poetry would install with them are added. The options are Poetry's own
(:class:`poetry.console.commands.install.InstallCommand`'s definitions and
:class:`poetry.console.commands.group_command.GroupCommand`'s group logic), and
the lock is read through Poetry's own ``Transaction``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name

from poetry_torch_cuda.errors import TorchCudaError


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Mapping

    from cleo.io.inputs.option import Option
    from poetry.console.commands.group_command import GroupCommand
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.project.locked import LockedState

#: The ``poetry install`` options that select groups and extras.
SELECTION_OPTIONS = ("with", "without", "only", "extras", "all-extras", "all-groups")


@dataclass(frozen=True)
class Selection:
    """Groups and extras asked for on the command line (``explicit``), or none.

    Without options a command works on what the environment holds; with them,
    it also installs what Poetry selects for ``groups`` and ``extras``.
    """

    groups: frozenset[str]
    extras: frozenset[NormalizedName]
    explicit: bool

    def describe(self) -> str:
        """``groups main, gpu; extras cuda`` for messages."""
        extras = f"; extras {', '.join(sorted(self.extras))}" if self.extras else ""
        return f"groups {', '.join(sorted(self.groups)) or '(none)'}{extras}"


def selection_options() -> list[Option]:
    """``poetry install``'s own definitions of the selection options."""
    from poetry.console.commands.install import InstallCommand

    return [
        option for option in InstallCommand.options if option.name in SELECTION_OPTIONS
    ]


def selection_from(command: GroupCommand) -> Selection:
    """The groups and extras ``command``'s options select, as ``poetry install`` does.

    Raises:
        TorchCudaError: contradictory options, or an extra the project lacks.
    """
    explicit = any(command.option(name) for name in SELECTION_OPTIONS)
    if command.option("extras") and command.option("all-extras"):
        raise TorchCudaError(
            "You cannot specify explicit `--extras` together with `--all-extras`."
        )
    if command.option("all-groups") and any(
        command.option(name) for name in ("with", "without", "only")
    ):
        raise TorchCudaError(
            "You cannot specify `--with`, `--without`, or `--only` together with "
            "`--all-groups`."
        )
    from poetry.console.exceptions import GroupNotFoundError

    try:
        groups = frozenset(str(group) for group in command.activated_groups)
    except GroupNotFoundError as error:
        raise TorchCudaError(_plain(str(error))) from None
    package = command.poetry.package
    if command.option("all-extras"):
        extras = frozenset(canonicalize_name(extra) for extra in package.extras)
    else:
        extras = frozenset(
            canonicalize_name(extra)
            for value in command.option("extras") or []
            for extra in value.replace(",", " ").split()
        )
    unknown = sorted(extras - {canonicalize_name(e) for e in package.extras})
    if unknown:
        have = ", ".join(sorted(package.extras)) or "none"
        raise TorchCudaError(
            f"Extra(s) not found: {', '.join(unknown)} (the project has: {have})."
        )
    return Selection(groups, extras, explicit)


def all_groups(poetry: Poetry) -> frozenset[str]:
    """Every dependency group of the project, optional ones included."""
    return frozenset(
        str(name)
        for name in poetry.package.dependency_group_names(include_optional=True)
    )


def all_extras(poetry: Poetry) -> frozenset[NormalizedName]:
    """Every extra of the project."""
    return frozenset(canonicalize_name(extra) for extra in poetry.package.extras)


def locked_versions(
    poetry: Poetry,
    marker_env: Mapping[str, Any],
    groups: Iterable[str],
    extras: Iterable[NormalizedName],
) -> dict[NormalizedName, str]:
    """Name -> version of what ``poetry install`` with ``groups``/``extras`` installs.

    Poetry's own ``Transaction`` decides, over an empty environment. A lock
    older than format 2.1 has no groups or markers: every package counts.
    """
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
        with_uninstalls=False, extras=set(extras)
    )
    return {
        op.package.name: op.package.version.text for op in operations if not op.skipped
    }


def held_versions(
    configured: Iterable[NormalizedName],
    everything: Mapping[NormalizedName, str],
    is_installed: Mapping[NormalizedName, bool],
) -> dict[NormalizedName, str]:
    """The configured packages the environment holds, at the version the lock has."""
    return {
        name: everything[name]
        for name in configured
        if name in everything and is_installed.get(name, False)
    }


def target_versions(
    configured: Iterable[NormalizedName],
    everything: Mapping[NormalizedName, str],
    is_installed: Mapping[NormalizedName, bool],
    selected: Mapping[NormalizedName, str] | None,
) -> dict[NormalizedName, str]:
    """What ``switch``/``sync`` move: what is held, plus what the options select."""
    configured = list(configured)
    versions = held_versions(configured, everything, is_installed)
    for name in configured:
        if selected is not None and name in selected:
            versions[name] = selected[name]
    return versions


def command_locked_state(
    poetry: Poetry,
    env: Env,
    configured: Iterable[NormalizedName],
    selection: Selection,
) -> LockedState:
    """The lock's view for ``switch``/``sync``: held packages plus the selected ones.

    Raises:
        TorchCudaError: the project has no lock file yet.
    """
    from poetry_torch_cuda.install.installed import installed_environment
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.locked import locked_state

    base = locked_state(poetry, env)  # checks the lock exists; gives the graph
    marker_env = env.marker_env
    everything = locked_versions(
        poetry, marker_env, all_groups(poetry), all_extras(poetry)
    )
    installed = installed_environment(env)
    configured = sorted(configured)
    held = {name: installed.get(name) is not None for name in configured}
    selected = (
        locked_versions(poetry, marker_env, selection.groups, selection.extras)
        if selection.explicit
        else None
    )
    return LockedState(
        target_versions(configured, everything, held, selected),
        base.graph,
        pins={**everything, **base.versions},
        direct=base.direct,
    )


def _plain(text: str) -> str:
    """``text`` without cleo's style tags (Poetry's messages carry some)."""
    import re

    return re.sub(r"</?[a-z;=_,-]*>", "", text)

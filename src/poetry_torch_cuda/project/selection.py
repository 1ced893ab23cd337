"""Which locked packages a command works on, and why one is not installed:
``switch``, ``sync`` and ``status`` follow what the environment holds, plus what
``poetry install``'s own group and extra options select (Poetry's definitions)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName
from packaging.utils import canonicalize_name

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.project.locked import LockedState
from poetry_torch_cuda.project.locked import resolved_versions


if TYPE_CHECKING:
    from collections.abc import Iterable

    from cleo.io.inputs.option import Option
    from poetry.console.commands.group_command import GroupCommand
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.environment.installed import InstalledEnvironment

    Key = tuple[frozenset[str], frozenset[NormalizedName]]  # groups, extras

#: The ``poetry install`` options that select groups and extras.
SELECTION_OPTIONS = ("with", "without", "only", "extras", "all-extras", "all-groups")


@dataclass(frozen=True)
class Selection:
    """Groups and extras asked for on the command line (``explicit``); none by
    default: the command follows what the environment holds."""

    groups: frozenset[str] = frozenset()
    extras: frozenset[NormalizedName] = frozenset()
    explicit: bool = False
    #: ``--only`` or ``--without`` given: ``--with`` cannot add a group back.
    narrowed: bool = False

    @property
    def install(self) -> str:
        """``poetry install`` as advice names it: with these options, if any."""
        return "`poetry install`" + " with these options" * self.explicit

    def or_default(self, poetry: Poetry) -> Selection:
        """These options, or what ``poetry install`` without options selects (the
        non-optional groups) when none were given."""
        if self.explicit:
            return self
        names = poetry.package.dependency_group_names()
        return Selection(frozenset(map(str, names)), frozenset(), explicit=True)


def selection_options() -> list[Option]:
    """``poetry install``'s own definitions of the selection options."""
    from poetry.console.commands.install import InstallCommand

    return [o for o in InstallCommand.options if o.name in SELECTION_OPTIONS]


def selection_from(command: GroupCommand) -> Selection:
    """The groups and extras ``command``'s options select, as ``poetry install``
    does (a :class:`TorchCudaError` for contradictory options or unknown extras)."""
    from cleo.formatters.formatter import Formatter
    from poetry.console.exceptions import GroupNotFoundError

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
    try:
        groups = frozenset(str(group) for group in command.activated_groups)
    except GroupNotFoundError as error:
        raise TorchCudaError(Formatter().remove_format(str(error))) from None
    known = all_extras(command.poetry)
    extras = frozenset(
        canonicalize_name(extra)
        for value in command.option("extras") or []
        for extra in value.split()  # as `poetry install` does: "a,b" is one name
    )
    if command.option("all-extras"):
        extras = known
    if unknown := sorted(extras - known):
        have = ", ".join(sorted(command.poetry.package.extras)) or "none"
        raise TorchCudaError(
            f"Extra(s) not found: {', '.join(unknown)} (the project has: {have})."
        )
    explicit = any(command.option(name) for name in SELECTION_OPTIONS)
    narrowed = bool(command.option("only") or command.option("without"))
    return Selection(groups, extras, explicit, narrowed)


def all_extras(poetry: Poetry) -> frozenset[NormalizedName]:
    """Every extra of the project."""
    return frozenset(canonicalize_name(extra) for extra in poetry.package.extras)


class LockView:
    """The lock as a command sees it: what ``switch``/``sync``/``status`` work on
    (:meth:`state`) and why a package is not installed. Each selection of
    groups and extras is resolved once (Poetry's ``Transaction`` is slow on a
    big lock), the default groups' not at all: ``base`` has them."""

    def __init__(
        self, poetry: Poetry, env: Env, selection: Selection, base: LockedState
    ) -> None:
        """``base``: ``locked_state`` of this lock and env (the run's ``installs``)."""
        self.poetry, self.env, self.selection, self.base = poetry, env, selection, base
        default = frozenset(map(str, poetry.package.dependency_group_names()))
        self._resolved: dict[Key, dict[NormalizedName, str]] = {
            (default, frozenset()): dict(base.versions)
        }
        everything = poetry.package.dependency_group_names(include_optional=True)
        #: What the lock resolves here with every group and extra.
        self.versions = self._selects(everything, all_extras(poetry))

    def state(
        self, configured: Iterable[NormalizedName], installed: InstalledEnvironment
    ) -> LockedState:
        """What ``switch``/``sync`` move: the held packages (in ``installed``, or
        required by one that is, configured or locked as needing it: a torch removed
        by hand) at the lock's versions, plus what the options select."""
        configured = sorted(configured)
        roots = [n for n, needs in self.base.graph.items() if {*needs} & {*configured}]
        graph = installed.graph([*configured, *roots])
        needed = {name for names in graph.values() for name in names}
        held = {n for n in configured if n in needed or installed.get(n) is not None}
        selected = self.selected if self.selection.explicit else {}
        versions = {
            n: selected[n] if n in selected else self.versions[n]
            for n in configured
            if n in selected or (n in held and n in self.versions)
        }
        return LockedState(
            versions,
            self.base.graph,
            pins={**self.versions, **self.base.versions},
            direct=self.base.direct,
        )

    @property
    def selected(self) -> dict[NormalizedName, str]:
        """What ``poetry install`` with the options' groups and extras installs here."""
        return self._selects(self.selection.groups, self.selection.extras)

    @cached_property
    def names(self) -> dict[NormalizedName, list[str]]:
        """Every package name in the lock, with the groups that hold it."""
        locker = self.poetry.locker
        groups: dict[NormalizedName, list[str]] = {}
        if locker.is_locked_groups_and_markers():
            for package, info in locker.locked_packages().items():
                groups.setdefault(package.name, sorted(map(str, info.groups)))
        return {name: groups.get(name, []) for name in self.base.graph}

    def why_absent(self, name: str) -> str:
        """Why ``name`` is not installed, relative to the options given: ``not in the
        lock``, ``in the lock, behind extra gpu (-E gpu)``…"""
        poetry, name = self.poetry, canonicalize_name(name)
        selection = self.selection.or_default(poetry)
        groups, extras = selection.groups, selection.extras
        if name not in self.names:
            return "not in the lock"
        if not poetry.locker.is_locked_groups_and_markers():
            return "in the lock"
        in_groups = self.names[name]
        if name in self._selects(groups, extras):
            return f"in the lock (group {', '.join(in_groups)}), not installed here"
        everything = poetry.package.dependency_group_names(include_optional=True)
        if name in self._selects(everything, extras):
            wanted = [g for g in in_groups if g not in groups]
            options = " ".join(f"--with {g}" for g in wanted)
            if wanted and selection.narrowed:
                options = f"--only {','.join(sorted({*groups, *wanted}))}"
            return f"in the lock, only in group {', '.join(wanted)}, not selected" + (
                f" ({options})" if options else ""
            )
        if name not in self.versions:
            return "in the lock, but its markers exclude this environment"
        needed = [
            extra
            for extra in sorted(all_extras(poetry) - extras)
            if name in self._selects(everything, {extra})
        ]
        if not needed:
            return "in the lock, not selected by these groups and extras"
        flags = " ".join(f"-E {extra}" for extra in needed)
        return f"in the lock, behind extra {', '.join(needed)} ({flags})"

    def _selects(
        self, groups: Iterable[str], extras: Iterable[str]
    ) -> dict[NormalizedName, str]:
        key = (frozenset(map(str, groups)), frozenset(map(canonicalize_name, extras)))
        if key not in self._resolved:
            marker_env = self.env.marker_env
            self._resolved[key] = resolved_versions(self.poetry, marker_env, *key)
        return self._resolved[key]

    def nothing_held(self, configured: Iterable[NormalizedName], would: bool) -> str:
        """Why ``switch``/``sync`` moves nothing (``would``: a dry run's words): no
        configured package is installed."""
        reasons, hint = [], ""
        for name in sorted(configured):
            reason = f"{name}: {self.why_absent(name)}"
            if not self.selection.explicit and name in self.base.versions:
                reason += " (`poetry install` installs it)"
            elif not self.selection.explicit and name in self.versions:
                hint = (
                    "; to install the others here, pass the options that select "
                    "them to this command or to `poetry install`"
                )
            reasons.append(reason)
        moved, why = "would move" if would else "moved", "; ".join(reasons)
        return f"nothing {moved}: no configured package is installed ({why}){hint}"

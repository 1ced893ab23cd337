"""What ``switch`` and ``sync`` share: the dry run's words for a plan, and the move itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cleo.helpers import option
from poetry.console.commands.group_command import GroupCommand

from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.install.reconcile import describe_plan
from poetry_torch_cuda.install.reconcile import reconcile_environment
from poetry_torch_cuda.install.request import InstallSettings
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.absence import nothing_held


if TYPE_CHECKING:
    from collections.abc import Callable

    from cleo.io.io import IO

    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.selection import Selection
    from poetry_torch_cuda.project.variants import Variant

DRY_RUN = option("dry-run", None, "Print what would change and change nothing.")

#: The end of both commands' help: what they move.
MOVES_HELP = (
    "It moves the configured packages the environment holds; the groups and "
    "extras options add what `poetry install` would install with them."
)


def holds_nothing(plan: Plan, locked: LockedState) -> bool:
    """Whether nothing moves because no configured package is here to move.

    Nothing to install, remove or keep in place, and nothing that the lock
    resolves for this environment.
    """
    return plan.is_empty and not plan.satisfied and not locked.versions


class MovingCommand(TorchCudaCommand, GroupCommand):
    """A command that moves the environment's torch family to a variant's builds."""

    def reads_only(self, io: IO) -> bool:
        """A dry run only reads (it never creates the virtualenv)."""
        return bool(io.input.option("dry-run"))

    def plan_words(
        self,
        plan: Plan,
        config: TorchCudaConfig,
        locked: LockedState,
        selection: Selection,
        *,
        would: bool = False,
    ) -> str:
        """What ``plan`` changes, or why nothing moves; ``would`` words a dry run."""
        if holds_nothing(plan, locked):
            return nothing_held(self.poetry, self.env, config.package_names, selection)
        text = describe_plan(plan)
        if not would:
            return text
        return f"nothing would change: {text}" if plan.is_empty else f"would {text}"

    def move(
        self,
        config: TorchCudaConfig,
        variant: Variant,
        locked: LockedState,
        selection: Selection,
        *,
        force: bool = False,
        refresh: Callable[[], tuple[TorchCudaConfig, Variant] | None] | None = None,
    ) -> Plan:
        """Make the environment hold ``variant``; one line when nothing changed.

        ``refresh`` gives the configuration and variant again after waiting
        for another run; returns the plan carried out.
        """
        settings = InstallSettings.of(self.poetry, self.io, force=force)
        plan = reconcile_environment(
            config, variant, locked, self.env, self.io, settings, refresh=refresh
        )
        if plan.is_empty:
            text = self.plan_words(plan, config, locked, selection)
            self.line(f"{PREFIX}: {esc(text)}")
        return plan

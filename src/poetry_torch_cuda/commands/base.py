"""What the ``poetry torch-cuda`` commands share: the disabled check, errors, the
run context, JSON, and (for ``switch`` and ``sync``) the move itself."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from cleo.helpers import option
from cleo.io.outputs.output import Type
from poetry.console.commands.command import Command
from poetry.console.commands.env_command import EnvCommand
from poetry.console.commands.group_command import GroupCommand
from poetry.utils.env import EnvManager
from poetry.utils.env import SystemEnv
from poetry.utils.env.site_packages import SitePackages

from poetry_torch_cuda.context import RunContext
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.reconcile import describe_plan
from poetry_torch_cuda.install.reconcile import plan_for
from poetry_torch_cuda.install.reconcile import reconcile_environment
from poetry_torch_cuda.install.request import InstallSettings
from poetry_torch_cuda.machine.resolution import refresher
from poetry_torch_cuda.machine.resolution import require_builds
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import error_lines
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.config import TABLE
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.config import refuse_if_disabled
from poetry_torch_cuda.project.locked import check_fresh
from poetry_torch_cuda.project.selection import LockView
from poetry_torch_cuda.project.selection import Selection
from poetry_torch_cuda.project.selection import selection_from


if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.machine.resolution import Resolution
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.locked import LockedState
    from poetry_torch_cuda.project.variants import Variant


class ReportsErrors(Command):
    """A command whose :class:`TorchCudaError` becomes error lines and an exit code."""

    def handle(self) -> int:
        """Run :meth:`work` unless the plugin is disabled; a :class:`TorchCudaError`
        becomes error lines and exit 1 (or its ``exit_code``)."""
        try:
            refuse_if_disabled()
            return self.work()
        except TorchCudaError as error:
            for line in error_lines(str(error)):
                self.line_error(line)
            return error.exit_code or 1

    def work(self) -> int:
        """The command's work."""
        raise NotImplementedError

    def write_json(self, data: Any) -> None:
        """Print ``data`` as JSON, unstyled."""
        self.io.output.write_line(json.dumps(data, indent=2), type=Type.RAW)


class TorchCudaCommand(ReportsErrors, EnvCommand):
    """An ``EnvCommand`` that reads the project's table and reports errors natively."""

    def reads_only(self, io: IO) -> bool:
        """Whether this run only reads: then it never creates the virtualenv."""
        return True

    def validate_early(self, io: IO) -> None:
        """Before Poetry creates the virtualenv: refuse when disabled, check the
        input; a reading run takes the existing environment (Poetry creates none).

        Raises:
            TorchCudaError: the plugin is disabled, or the input is invalid.
        """
        refuse_if_disabled()
        self.check_input(io)
        if self.reads_only(io):
            self.set_env(existing_env(self.poetry, io))

    def check_input(self, io: IO) -> None:
        """Check what the command reads before anything runs (the table)."""
        load_config(self.poetry.pyproject.data)

    def project_config(self) -> TorchCudaConfig:
        """The project's validated configuration.

        Raises:
            TorchCudaError: the project has no table.
        """
        config = load_config(self.poetry.pyproject.data)
        if config is None:
            raise TorchCudaError(
                f"This project has no [tool.{TABLE}] table, so no variant is "
                f'configured. Add one, e.g.\n\n[tool.{TABLE}]\nvariant = "auto"'
            )
        return config

    def context(self, config: TorchCudaConfig | None = None) -> RunContext:
        """A run context for ``config`` (default: the project's), with the
        groups and extras the options select."""
        selection = (
            selection_from(self) if isinstance(self, GroupCommand) else Selection.none()
        )
        config = config or self.project_config()
        return RunContext(self.poetry, self.env, self.io, config, selection)


DRY_RUN = option("dry-run", None, "Print what would change and change nothing.")
#: The end of ``switch``'s and ``sync``'s help: what they move.
MOVES_HELP = (
    "It moves the configured packages the environment holds; the groups and "
    "extras options add what `poetry install` would install with them."
)


class MovingCommand(TorchCudaCommand, GroupCommand):
    """A command that moves the environment's torch family to a variant's builds."""

    def reads_only(self, io: IO) -> bool:
        """A dry run only reads (it never creates the virtualenv)."""
        return bool(io.input.option("dry-run"))

    def prepare(self, config: TorchCudaConfig) -> tuple[RunContext, Resolution]:
        """The one prelude of ``switch`` and ``sync``: a fresh lock, the run
        context for ``config``, and the variant it resolves to here.

        Raises:
            TorchCudaError: a stale or missing lock, bad options, or a variant
                without builds for this platform.
        """
        check_fresh(self.poetry)
        ctx = self.context(config)
        resolution = resolve(config, self.poetry, self.env, ctx.locked.versions)
        require_builds(resolution.variant, sys.platform)
        return ctx, resolution

    def plan_words(self, ctx: RunContext, plan: Plan, *, would: bool = False) -> str:
        """What ``plan`` changes, or why nothing moves; ``would`` words a dry run."""
        if holds_nothing(plan, ctx.locked):
            view = LockView.of(ctx.poetry, ctx.env, ctx.selection)
            return view.nothing_held(ctx.config.package_names)
        text = describe_plan(plan)
        if not would:
            return text
        return f"nothing would change: {text}" if plan.is_empty else f"would {text}"

    def preview(
        self, ctx: RunContext, variant: Variant, *, force: bool = False, would: bool
    ) -> str:
        """A dry run's words: the plan that would make the env hold ``variant``."""
        plan = plan_for(ctx.config, variant, ctx.locked, ctx.env, force=force)
        return self.plan_words(ctx, plan, would=would)

    def move(
        self,
        ctx: RunContext,
        variant: Variant,
        *,
        force: bool = False,
        refresh: bool = False,
    ) -> Plan:
        """Make the environment hold ``variant``; one line when nothing changed.

        With ``refresh``, a run that waited for another one plans again with
        the configuration as it is then; returns the plan carried out.
        """
        settings = InstallSettings.of(self.poetry, self.io, force=force)
        again = refresher(self.poetry, self.env, ctx.locked.versions)
        plan = reconcile_environment(
            ctx.config,
            variant,
            ctx.locked,
            ctx.env,
            ctx.io,
            settings,
            refresh=again if refresh else None,
        )
        if plan.is_empty:
            self.line(f"{PREFIX}: {esc(self.plan_words(ctx, plan))}")
        return plan


def holds_nothing(plan: Plan, locked: LockedState) -> bool:
    """Whether nothing moves because no configured package is here to move:
    nothing to install, remove or keep, and nothing the lock resolves here."""
    return plan.is_empty and not plan.satisfied and not locked.versions


class NotCreatedEnv(SystemEnv):
    """Stands for the virtualenv Poetry has not created yet: nothing is installed."""

    def __init__(self, path: Path, nowhere: Path) -> None:
        super().__init__(path)
        self._nowhere = nowhere

    @property
    def site_packages(self) -> SitePackages:
        """No site-packages directory: every lookup finds nothing."""
        return SitePackages(self._nowhere)


def existing_env(poetry: Poetry, io: IO) -> Env:
    """The project's environment if it exists, else a :class:`NotCreatedEnv`
    (``status``, ``detect``, ``variants`` and dry runs never create one)."""
    env = EnvManager(poetry, io=io).get()
    if env.is_venv() or not poetry.config.get("virtualenvs.create", True):
        return env
    nowhere = poetry.pyproject_path.parent / ".venv" / "not-created-yet"
    return NotCreatedEnv(Path(env.path), nowhere)

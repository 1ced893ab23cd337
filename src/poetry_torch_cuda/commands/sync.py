"""``poetry torch-cuda sync``: make the environment hold the configured variant now."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option
from poetry.console.commands.group_command import GroupCommand

from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.selection import selection_options


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option
    from cleo.io.io import IO


class SyncCommand(TorchCudaCommand, GroupCommand):
    """Install the configured variant's builds of the locked versions, without Poetry."""

    name = "torch-cuda sync"
    description = (
        "Make the environment hold the configured variant now, without a Poetry "
        "install run."
    )
    options: ClassVar[list[Option]] = [
        option("force", None, "Reinstall the builds even when they already match."),
        option("dry-run", None, "Print what would change and change nothing."),
        *selection_options(),
    ]
    help = (
        "Installs the locked torch family in the configured variant's build from "
        "its index with the environment's pip, then removes CUDA wheels nothing "
        "needs any more. Poetry's other packages are pinned as they are. "
        "<c1>--force</> reinstalls even a matching build (pip --force-reinstall). "
        "It moves the configured packages the environment holds; the groups and "
        "extras options add what `poetry install` would install with them."
    )

    def reads_only(self, io: IO) -> bool:
        """Only reads (never creates the virtualenv)."""
        return bool(io.input.option("dry-run"))

    def work(self) -> int:
        """Resolve, plan, and (unless ``--dry-run``) apply."""
        from poetry_torch_cuda.install.reconcile import describe_plan
        from poetry_torch_cuda.install.reconcile import forced
        from poetry_torch_cuda.install.reconcile import plan_for
        from poetry_torch_cuda.install.reconcile import reconcile_environment
        from poetry_torch_cuda.lockfile.lookup import LockLookup
        from poetry_torch_cuda.machine.resolution import refresher
        from poetry_torch_cuda.machine.resolution import report
        from poetry_torch_cuda.machine.resolution import require_builds
        from poetry_torch_cuda.machine.resolution import resolve
        from poetry_torch_cuda.output import PREFIX
        from poetry_torch_cuda.project.absence import nothing_held
        from poetry_torch_cuda.project.locked import check_fresh
        from poetry_torch_cuda.project.selection import command_locked_state
        from poetry_torch_cuda.project.selection import selection_from

        config = self.project_config()
        check_fresh(self.poetry)
        selection = selection_from(self)
        locked = command_locked_state(
            self.poetry, self.env, config.package_names, selection
        )
        resolution = resolve(config, self.poetry, self.env, locked.versions)
        report(resolution, self.io)
        variant = resolution.variant
        require_builds(variant, sys.platform)
        force = bool(self.option("force"))
        if self.option("dry-run"):
            plan, _, _ = plan_for(config, variant, locked, self.env)
            plan = forced(plan) if force else plan
            if not locked.versions and plan.is_empty:
                text = nothing_held(
                    self.poetry, self.env, config.package_names, selection
                )
            elif plan.is_empty:
                text = f"nothing would change: {describe_plan(plan, config)}"
            else:
                text = f"would {describe_plan(plan, config)}"
            self.line(f"{PREFIX}: {esc(text)}")
            return 0
        plan = reconcile_environment(
            config,
            variant,
            locked,
            self.env,
            self.io,
            poetry_config=self.poetry.config,
            force=force,
            refresh=refresher(self.poetry, self.env, locked.versions),
            project=self.poetry.pyproject_path.parent,
            lock_for=LockLookup(self.poetry, self.io),
        )
        if plan.is_empty and not locked.versions:
            text = nothing_held(self.poetry, self.env, config.package_names, selection)
            self.line(f"{PREFIX}: {esc(text)}")
        elif plan.is_empty:
            self.line(f"{PREFIX}: {esc(describe_plan(plan, config))}")
        from poetry_torch_cuda.proof.after import prove_change

        prove_change(self.poetry, self.env, self.io, config, variant, locked, plan)
        return 0

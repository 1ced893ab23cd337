"""``poetry torch-cuda sync``: make the environment hold the configured variant now."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option

from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.output import esc


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option


class SyncCommand(TorchCudaCommand):
    """Install the configured variant's builds of the locked versions, without Poetry."""

    name = "torch-cuda sync"
    description = (
        "Make the environment hold the configured variant now, without a Poetry "
        "install run."
    )
    options: ClassVar[list[Option]] = [
        option("force", None, "Reinstall the builds even when they already match."),
        option("dry-run", None, "Print what would change and change nothing."),
    ]
    help = (
        "Installs the locked torch family in the configured variant's build from "
        "its index with the environment's pip, then removes CUDA wheels nothing "
        "needs any more. Poetry's other packages are pinned as they are. "
        "<c1>--force</> reinstalls even a matching build (pip --force-reinstall)."
    )

    def work(self) -> int:
        """Resolve, plan, and (unless ``--dry-run``) apply."""
        from poetry_torch_cuda.install.reconcile import describe_plan
        from poetry_torch_cuda.install.reconcile import forced
        from poetry_torch_cuda.install.reconcile import plan_for
        from poetry_torch_cuda.install.reconcile import reconcile_environment
        from poetry_torch_cuda.lockfile.service import lookup
        from poetry_torch_cuda.machine.resolution import report
        from poetry_torch_cuda.machine.resolution import require_builds
        from poetry_torch_cuda.machine.resolution import resolve
        from poetry_torch_cuda.output import PREFIX
        from poetry_torch_cuda.project.locked import locked_state

        config = self.project_config()
        locked = locked_state(self.poetry, self.env)
        resolution = resolve(config, self.poetry, self.env, locked.versions)
        report(resolution, self.io)
        variant = resolution.variant
        require_builds(variant, sys.platform)
        force = bool(self.option("force"))
        if self.option("dry-run"):
            plan, _, _ = plan_for(config, variant, locked, self.env)
            plan = forced(plan) if force else plan
            self.line(f"{PREFIX}: would {esc(describe_plan(plan, config))}")
            return 0
        plan = reconcile_environment(
            config,
            variant,
            locked,
            self.env,
            self.io,
            poetry_config=self.poetry.config,
            force=force,
            lock_for=lookup(self.poetry, self.io),
        )
        if plan.is_empty:
            self.line(f"{PREFIX}: {esc(describe_plan(plan, config))}")
        return 0

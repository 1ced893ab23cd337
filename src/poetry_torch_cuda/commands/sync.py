"""``poetry torch-cuda sync``: make the environment hold the configured variant now."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option

from poetry_torch_cuda.commands.moving import DRY_RUN
from poetry_torch_cuda.commands.moving import MOVES_HELP
from poetry_torch_cuda.commands.moving import MovingCommand
from poetry_torch_cuda.install.reconcile import plan_for
from poetry_torch_cuda.machine.resolution import refresher
from poetry_torch_cuda.machine.resolution import report
from poetry_torch_cuda.machine.resolution import require_builds
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.locked import check_fresh
from poetry_torch_cuda.project.selection import command_locked_state
from poetry_torch_cuda.project.selection import selection_from
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.proof.after import prove_change


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option


class SyncCommand(MovingCommand):
    """Install the configured variant's builds of the locked versions, without Poetry."""

    name = "torch-cuda sync"
    description = (
        "Make the environment hold the configured variant now, without a Poetry "
        "install run."
    )
    options: ClassVar[list[Option]] = [
        option("force", None, "Reinstall the builds even when they already match."),
        DRY_RUN,
        *selection_options(),
    ]
    help = (
        "Installs the locked torch family in the configured variant's build from "
        "its index with the environment's pip, then removes CUDA wheels nothing "
        "needs any more. Poetry's other packages are pinned as they are. "
        "<c1>--force</> reinstalls even a matching build (pip --force-reinstall). "
        + MOVES_HELP
    )

    def work(self) -> int:
        """Resolve, plan, and (unless ``--dry-run``) apply."""
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
            plan = plan_for(config, variant, locked, self.env, force=force)
            text = self.plan_words(plan, config, locked, selection, would=True)
            self.line(f"{PREFIX}: {esc(text)}")
            return 0
        refresh = refresher(self.poetry, self.env, locked.versions)
        plan = self.move(
            config, variant, locked, selection, force=force, refresh=refresh
        )
        prove_change(self.poetry, self.env, self.io, config, variant, locked, plan)
        return 0

"""``poetry torch-cuda sync``: make the environment hold the configured variant now."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option

from poetry_torch_cuda.commands.base import DRY_RUN
from poetry_torch_cuda.commands.base import MOVES_HELP
from poetry_torch_cuda.commands.base import MovingCommand
from poetry_torch_cuda.machine.resolution import report
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
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
        ctx, resolution = self.prepare(self.project_config())
        report(resolution, self.io)
        variant, force = resolution.variant, bool(self.option("force"))
        if self.option("dry-run"):
            words = self.preview(ctx, variant, force=force, would=True)
            self.line(f"{PREFIX}: {esc(words)}")
            return 0
        plan = self.move(ctx, variant, force=force, refresh=True)
        prove_change(
            self.poetry, self.env, self.io, ctx.config, variant, ctx.locked, plan
        )
        return 0

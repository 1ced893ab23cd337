"""``poetry torch-cuda switch VARIANT`` and ``sync``: move the torch family to a variant."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from contextlib import nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import argument
from cleo.helpers import option
from poetry.console.commands.group_command import GroupCommand

from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install import signals
from poetry_torch_cuda.install.reconcile import describe_plan
from poetry_torch_cuda.lockfile.model import lock_path
from poetry_torch_cuda.lockfile.service import left
from poetry_torch_cuda.lockfile.service import settle
from poetry_torch_cuda.lockfile.service import unwritable
from poetry_torch_cuda.machine.resolution import report
from poetry_torch_cuda.machine.resolution import require_builds
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.config import ENV_VARIANT
from poetry_torch_cuda.project.config import per_run
from poetry_torch_cuda.project.config import require_config
from poetry_torch_cuda.project.locked import check_fresh
from poetry_torch_cuda.project.locked import require_lock
from poetry_torch_cuda.project.pyproject_edit import prepare_variant
from poetry_torch_cuda.project.pyproject_edit import with_variant
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.project.variants import ALLOWED_VARIANTS
from poetry_torch_cuda.project.variants import variant_argument
from poetry_torch_cuda.proof.after import prove_change
from poetry_torch_cuda.tempfiles import refuse_read_only


if TYPE_CHECKING:
    from cleo.io.inputs.argument import Argument
    from cleo.io.inputs.option import Option
    from cleo.io.io import IO

    from poetry_torch_cuda.context import RunContext
    from poetry_torch_cuda.install.planning import Plan
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant

DRY_RUN = option("dry-run", None, "Print what would change and change nothing.")
#: The end of ``switch``'s and ``sync``'s help: what they move.
MOVES_HELP = (
    "It moves the configured packages the environment holds; the groups and "
    "extras options add what `poetry install` would install with them."
)


class MovingCommand(TorchCudaCommand, GroupCommand):
    """A command that moves the environment's torch family to a variant's builds."""

    def check_input(self, io: IO) -> None:
        """Refuse a bad table (this run's, and as recorded: torch-cuda.lock's inputs),
        a missing or stale poetry.lock, before Poetry makes a virtualenv."""
        require_config(self.poetry.pyproject.data, overrides=())
        super().check_input(io)
        require_lock(self.poetry)
        check_fresh(self.poetry)

    def prepare(self, config: TorchCudaConfig) -> tuple[RunContext, Variant]:
        """The one prelude of ``switch`` and ``sync``: a fresh lock, the run context
        for ``config``, and the variant it resolves to here (``auto``'s warnings said)."""
        check_fresh(self.poetry)
        ctx = self.context(config)
        resolution = resolve(config, ctx.view.versions, ctx)  # torch in any group
        report(resolution, ctx.config, ctx.env, self.io)
        require_builds(resolution.variant, sys.platform)
        return ctx, resolution.variant

    def move(
        self,
        ctx: RunContext,
        variant: Variant,
        *,
        force: bool = False,
        records: bool = False,
    ) -> Plan:
        """Make the environment hold ``variant`` (``--dry-run``: say what that would);
        one line when nothing changed (``records``: switch records the variant, so its
        entry locks even if nothing installs)."""
        dry, lock = bool(self.option("dry-run")), records or None
        plan = ctx.reconcile(
            variant, dry=dry, force=force, lock=lock, refresh=True, sweep=True
        )
        if dry or plan.is_empty:  # what it changes, or why nothing moves
            if holds_nothing(plan):
                words = ctx.view.nothing_held(ctx.config.package_names, dry)
            else:
                words = describe_plan(plan, would=dry)
            self.line(f"{PREFIX}: {esc(words)}")  # reconcile warned of the unmoved
        return plan


def holds_nothing(plan: Plan) -> bool:
    """Whether nothing moves because no configured package is here to move."""
    return plan.is_empty and not any(map(plan.installed.get, plan.configured))


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
        ctx, variant = self.prepare(require_config(self.poetry.pyproject.data))
        plan = self.move(ctx, variant, force=bool(self.option("force")))
        if not self.option("dry-run"):
            prove_change(ctx, plan)
        return 0


class SwitchCommand(MovingCommand):
    """Move the project to another PyTorch variant."""

    name = "torch-cuda switch"
    description = (
        "Install another PyTorch variant (cu130, cpu, rocm6.4, auto…) and record it."
    )
    arguments: ClassVar[list[Argument]] = [
        argument("variant", f"The variant: {ALLOWED_VARIANTS}.")
    ]
    options: ClassVar[list[Option]] = [
        DRY_RUN,
        option(
            "pin",
            None,
            "With auto: write the variant auto picks here instead of auto.",
        ),
        *selection_options(),
    ]
    help = (
        "Installs the project's torch packages in the given variant's build from its "
        "index and, only when that succeeded, writes the variant to "
        "[tool.poetry-torch-cuda] in pyproject.toml (comments and layout kept). "
        + MOVES_HELP
    )

    def check_input(self, io: IO) -> None:
        """Refuse a bad variant or --pin of a build, then what any move refuses."""
        variant = variant_argument(io.input.argument("variant"))
        if variant.kind != "auto" and io.input.option("pin"):
            raise TorchCudaError("--pin needs auto: drop it, or `switch auto --pin`.")
        super().check_input(io)

    def work(self) -> int:
        name = variant_argument(self.argument("variant")).name
        pyproject = self.poetry.pyproject_path
        ctx, variant = self._target(name)
        resolved = f" (auto: {variant})" if name == "auto" else ""
        if pinned := self.option("pin"):  # auto's: writes whatever runs here
            name, resolved = variant.name, " (auto's pick on this machine)"
        # All or nothing: the new pyproject.toml is written (beside the old one)
        # before pip runs and takes the old one's place only once pip succeeded;
        # it and torch-cuda.lock must be writable (the renames ignore their modes).
        lock, dry = lock_path(self.poetry), self.option("dry-run")
        try:
            writes = with_variant(pyproject.read_text(encoding="utf-8"), name)
            records = bool(pinned) or writes is not None  # auto moves on
            for path in (pyproject, lock) if records else ():
                refuse_read_only(path)
            pending = None if dry else prepare_variant(pyproject, name, always=pinned)
        except OSError as error:
            if error.filename == str(lock):  # the lock's own words
                raise unwritable(error) from None
            raise TorchCudaError(
                f"could not write {pyproject.name} ({error.strerror or error}); "
                "nothing was changed. Free space or fix permissions, then run "
                "the command again."
            ) from None
        if dry:
            self.line(f"{PREFIX}: would switch to <c2>{name}</>{resolved}")
            self.move(ctx, variant, records=records)
            if writes is not None:
                self.line(f'{PREFIX}: would set variant = "{name}" in {pyproject.name}')
            return self._outlasted(name)
        # The environment stays locked until pyproject.toml says the new
        # variant, so a run waiting for it plans with the new variant.
        # A failed switch leaves every project file as it was, byte for byte:
        # torch-cuda.lock is written last, for what pyproject.toml says (settle).
        with pending or nullcontext(), ExitStack() as held:
            # a stop once it installed: apply_plan's
            before = "before it installed anything; pyproject.toml is unchanged."
            with signals.stopping(lambda: f"the switch to {variant} {before}"):
                if held.enter_context(ctx.holding(variant)):  # waited: read again
                    self.get_application().reset_poetry()  # poetry.lock too
                    ctx, variant = self._target(name)
                plan = self.move(ctx, variant, records=records)  # the driver, locking

            def record(final: Variant) -> None:  # the previous build still kept
                if pending is None:  # nothing to write
                    return
                said = f" (auto: {final})" if final != variant else resolved
                if pinned:  # what runs here
                    pending.variant, said = final.name, resolved
                with signals.held():  # pyproject.toml follows the build: a stop waits
                    if pending.commit():
                        self.line(
                            f"{PREFIX}: pyproject.toml now says "
                            f'variant = "<c2>{pending.variant}</>"{said}'
                        )

            # A build that fails verification is replaced by the previous one (its
            # records too: the stash's), as is one pyproject.toml has no table for;
            # then torch-cuda.lock: a stop before it is written names what it lacks.
            wrote = "once pyproject.toml said so."
            with signals.stopping(
                lambda: f"the switch to {name} {wrote} {left(self.poetry)}"
            ):
                final = prove_change(ctx, plan, record=record)
                name = final.name if pinned else name
                if pending is not None or not plan.is_empty:  # also if set meanwhile
                    self.get_application().reset_poetry()  # the pyproject.toml it wrote
                    settle(self.poetry, self.io, switched=True)
        return self._outlasted(name)

    def _outlasted(self, name: str) -> int:
        """Warn when this run's variable keeps winning over ``name``; exit code 0."""
        override = per_run("variant")
        if override and override != name:
            self.line_error(
                f"<warning>{PREFIX}: {ENV_VARIANT}={override} is set and overrides "
                f"pyproject.toml on every run; unset it to use {name}.</>"
            )
        return 0

    def _target(self, name: str) -> tuple[RunContext, Variant]:
        """The run for ``name``: the recorded table, POETRY_TORCH_CUDA_INDEX_URL's index."""
        config = require_config(self.poetry.pyproject.data, overrides=("index-url",))
        ctx, variant = self.prepare(replace(config, variant=variant_argument(name)))
        ctx.write_lock = False  # with pyproject.toml, by settle
        return ctx, variant

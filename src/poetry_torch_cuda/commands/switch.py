"""``poetry torch-cuda switch VARIANT``: install another variant, then record it."""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import argument
from cleo.helpers import option

from poetry_torch_cuda.commands.base import DRY_RUN
from poetry_torch_cuda.commands.base import MOVES_HELP
from poetry_torch_cuda.commands.base import MovingCommand
from poetry_torch_cuda.environment.envlock import environment_lock
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.reconcile import OWNER
from poetry_torch_cuda.install.reconcile import write_waiting
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.service import settle
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.config import DEFAULT_INDEX_URL
from poetry_torch_cuda.project.config import ENV_VARIANT
from poetry_torch_cuda.project.config import TABLE
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.config import read_pyproject
from poetry_torch_cuda.project.pyproject_edit import prepare_variant
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.project.variants import ALLOWED_VARIANTS
from poetry_torch_cuda.project.variants import variant_argument
from poetry_torch_cuda.proof.after import prove_change
from poetry_torch_cuda.proof.after import take_snapshot
from poetry_torch_cuda.tempfiles import kept_bytes


if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cleo.io.inputs.argument import Argument
    from cleo.io.inputs.option import Option
    from cleo.io.io import IO

    from poetry_torch_cuda.context import RunContext
    from poetry_torch_cuda.project.pyproject_edit import PendingWrite
    from poetry_torch_cuda.project.variants import Variant


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
        """Refuse a bad variant before Poetry creates the virtualenv.

        The project's table is not checked here: switch is how a bad
        ``variant`` gets mended.

        Raises:
            TorchCudaError: the argument is not a variant.
        """
        value = io.input.argument("variant")
        if value is not None:  # cleo names a missing argument itself
            variant_argument(value)

    def work(self) -> int:
        """Install the variant's builds, then record it in pyproject.toml."""
        name = variant_argument(self.argument("variant")).name
        pyproject = self.poetry.pyproject_path
        ctx, variant = self._target(name, self.poetry.pyproject.data)
        resolved = f" (auto: {variant})" if name == "auto" else ""
        if name == "auto" and self.option("pin"):
            name, resolved = variant.name, " (auto's pick on this machine)"
        if self.option("dry-run"):
            words = esc(self.preview(ctx, variant, would=False))
            self.line(f"{PREFIX}: would switch to <c2>{name}</>{resolved}: {words}")
            self.line(f'{PREFIX}: would set variant = "{name}" in {pyproject.name}')
            return 0
        # All or nothing: the new pyproject.toml is written (beside the old one)
        # before pip runs and takes the old one's place only once pip succeeded.
        try:
            pending = prepare_variant(pyproject, name)
        except OSError as error:
            raise TorchCudaError(
                f"could not write {pyproject.name} ({error.strerror or error}); "
                "nothing was changed. Free space or fix permissions, then run "
                "the command again."
            ) from None
        waited: list[bool] = []

        def on_wait() -> None:
            waited.append(True)
            write_waiting(self.io, self.env)

        # The environment stays locked until pyproject.toml says the new
        # variant, so a run waiting for it plans with the new variant.
        # A failed switch leaves every project file as it was, byte for byte.
        kept = (pyproject.parent / LOCK_NAME, self.env.path / OWNER)
        with (
            pending or nullcontext(),
            environment_lock(self.env.path, on_wait),
            kept_bytes(kept),
        ):
            if waited:  # another run changed things meanwhile: read them again
                ctx, variant = self._target(name, read_pyproject(pyproject))
            snapshot = take_snapshot(ctx.config, self.env)
            plan = self.move(ctx, variant)
            # A build that fails verification is replaced by the previous one.
            final = prove_change(
                self.poetry,
                self.env,
                self.io,
                ctx.config,
                variant,
                ctx.locked,
                plan,
                snapshot=snapshot,
            )
            if final != variant and name == variant.name:  # --pin: what runs here
                name = final.name
                if pending is not None:
                    pending.discard()
                pending = prepare_variant(pyproject, name)
            elif final != variant:
                resolved = f" (auto: {final})"
            if pending is not None and _commit(pending):
                self.line(
                    f'{PREFIX}: pyproject.toml now says variant = "<c2>{name}</>"{resolved}'
                )
                settle(self.poetry, self.io, read_pyproject(pyproject))
        override = os.environ.get(ENV_VARIANT, "").strip()
        if override and override != name:
            self.line_error(
                f"<warning>{PREFIX}: {ENV_VARIANT}={override} is set and overrides "
                f"pyproject.toml on every run; unset it to use {name}.</>"
            )
        return 0

    def _target(self, name: str, data: Mapping[str, Any]) -> tuple[RunContext, Variant]:
        """The run context with ``name`` as the variant, and what it resolves to."""
        environ = {key: val for key, val in os.environ.items() if key != ENV_VARIANT}
        config = load_config(_with_variant(dict(data), name), environ)
        assert config is not None
        ctx, resolution = self.prepare(config)
        return ctx, resolution.variant


def _commit(pending: PendingWrite) -> bool:
    """Apply ``pending``; its temporary file is gone afterwards either way."""
    with pending:
        return pending.commit()


def _with_variant(pyproject: dict[str, object], variant: str) -> dict[str, object]:
    tool = dict(pyproject.get("tool") or {})  # type: ignore[call-overload]
    table = dict(tool.get(TABLE) or {"index-url": DEFAULT_INDEX_URL})
    table["variant"] = variant
    tool[TABLE] = table
    return {**pyproject, "tool": tool}

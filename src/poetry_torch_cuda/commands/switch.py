"""``poetry torch-cuda switch VARIANT``: install another variant, then record it."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.formatters.formatter import Formatter
from cleo.helpers import argument
from cleo.helpers import option
from poetry.console.commands.env_command import EnvCommand

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.urls import scrub
from poetry_torch_cuda.install.reconcile import describe_plan
from poetry_torch_cuda.install.reconcile import plan_for
from poetry_torch_cuda.install.reconcile import reconcile_environment
from poetry_torch_cuda.lockfile.service import lookup
from poetry_torch_cuda.machine.resolution import require_builds
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project.config import DEFAULT_INDEX_URL
from poetry_torch_cuda.project.config import ENV_VARIANT
from poetry_torch_cuda.project.config import TABLE
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.locked import locked_state
from poetry_torch_cuda.project.pyproject_edit import prepare_variant
from poetry_torch_cuda.project.variants import ALLOWED_VARIANTS
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from cleo.io.inputs.argument import Argument
    from cleo.io.inputs.option import Option
    from cleo.io.io import IO


class SwitchCommand(EnvCommand):
    """Move the project to another PyTorch variant."""

    name = "torch-cuda switch"
    description = (
        "Install another PyTorch variant (cu130, cpu, rocm6.4, auto…) and record it."
    )
    arguments: ClassVar[list[Argument]] = [
        argument("variant", f"The variant: {ALLOWED_VARIANTS}.")
    ]
    options: ClassVar[list[Option]] = [
        option("dry-run", None, "Print what would change and change nothing."),
        option(
            "pin",
            None,
            "With auto: write the variant auto picks here instead of auto.",
        ),
    ]
    help = (
        "Installs the project's torch packages in the given variant's build from its "
        "index and, only when that succeeded, writes the variant to "
        "[tool.poetry-torch-cuda] in pyproject.toml (comments and layout kept)."
    )

    def validate_early(self, io: IO) -> None:
        """Refuse a bad variant before Poetry creates the virtualenv.

        Raises:
            TorchCudaError: the argument is not a variant.
        """
        value = io.input.argument("variant")
        try:
            parse_variant(value)
        except ValueError as error:
            raise TorchCudaError(f"{value!r} is not a variant: {error}.") from None

    def handle(self) -> int:
        value = self.argument("variant")
        try:
            variant = parse_variant(value)
        except ValueError as error:
            self.line_error(f"<error>{value!r} is not a variant: {error}.</>")
            return 1
        try:
            return self._switch(value, variant.name)
        except TorchCudaError as error:
            for line in scrub(str(error)).splitlines():
                self.line_error(f"<error>{Formatter.escape(line)}</>")
            return error.exit_code or 1

    def _switch(self, value: str, name: str) -> int:
        pyproject = self.poetry.pyproject_path
        environ = {key: val for key, val in os.environ.items() if key != ENV_VARIANT}
        data = dict(self.poetry.pyproject.data)
        config = load_config(_with_variant(data, name), environ)
        assert config is not None
        locked = locked_state(self.poetry, self.env)
        variant = resolve(config, self.poetry, self.env, locked.versions).variant
        require_builds(variant, sys.platform)
        resolved = f" (auto: {variant})" if name == "auto" else ""
        if name == "auto" and self.option("pin"):
            name, resolved = variant.name, " (auto's pick on this machine)"
        if self.option("dry-run"):
            plan, _, _ = plan_for(config, variant, locked, self.env)
            self.line(
                f"{PREFIX}: would switch to <c2>{name}</>{resolved}: {describe_plan(plan, config)}"
            )
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
        with pending or nullcontext():
            plan = reconcile_environment(
                config,
                variant,
                locked,
                self.env,
                self.io,
                poetry_config=self.poetry.config,
                lock_for=lookup(self.poetry, self.io),
            )
            if plan.is_empty:
                self.line(f"{PREFIX}: {describe_plan(plan, config)}")
            if pending is not None:
                pending.commit()
                self.line(
                    f'{PREFIX}: pyproject.toml now says variant = "<c2>{name}</>"{resolved}'
                )
        return 0


def _with_variant(pyproject: dict[str, object], variant: str) -> dict[str, object]:
    tool = dict(pyproject.get("tool") or {})  # type: ignore[call-overload]
    table = dict(tool.get(TABLE) or {"index-url": DEFAULT_INDEX_URL})
    table["variant"] = variant
    tool[TABLE] = table
    return {**pyproject, "tool": tool}

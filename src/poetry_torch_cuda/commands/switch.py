"""``poetry torch-cuda switch VARIANT``: install another variant, then record it."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import argument
from cleo.helpers import option
from poetry.console.commands.env_command import EnvCommand

from poetry_torch_cuda.config import DEFAULT_INDEX_URL
from poetry_torch_cuda.config import ENV_VARIANT
from poetry_torch_cuda.config import TABLE
from poetry_torch_cuda.config import load_config
from poetry_torch_cuda.detection import resolve_variant
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.locked import locked_state
from poetry_torch_cuda.pyproject_edit import set_variant
from poetry_torch_cuda.reconcile import PREFIX
from poetry_torch_cuda.reconcile import apply_plan
from poetry_torch_cuda.reconcile import describe_plan
from poetry_torch_cuda.reconcile import plan_for
from poetry_torch_cuda.variants import ALLOWED_VARIANTS
from poetry_torch_cuda.variants import parse_variant


if TYPE_CHECKING:
    from cleo.io.inputs.argument import Argument
    from cleo.io.inputs.option import Option


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
    ]
    help = (
        "Installs the project's torch packages in the given variant's build from its "
        "index and, only when that succeeded, writes the variant to "
        "[tool.poetry-torch-cuda] in pyproject.toml (comments and layout kept)."
    )

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
            self.line_error(f"<error>{error}</>")
            return 1

    def _switch(self, value: str, name: str) -> int:
        pyproject = self.poetry.pyproject_path
        environ = {key: val for key, val in os.environ.items() if key != ENV_VARIANT}
        data = dict(self.poetry.pyproject.data)
        config = load_config(_with_variant(data, name), environ)
        assert config is not None
        variant = resolve_variant(config.variant)
        if not variant.has_builds_for(sys.platform):
            raise TorchCudaError(
                f"PyTorch publishes no {variant} builds for {sys.platform}; "
                "PyPI's default build is the one to use here."
            )
        locked = locked_state(self.poetry, self.env)
        plan, protected, installed = plan_for(config, variant, locked, self.env)
        resolved = f" (auto: {variant})" if name == "auto" else ""
        if self.option("dry-run"):
            self.line(
                f"{PREFIX}: would switch to <c2>{name}</>{resolved}: {describe_plan(plan, config)}"
            )
            self.line(f'{PREFIX}: would set variant = "{name}" in {pyproject.name}')
            return 0
        if not plan.is_empty:
            apply_plan(plan, config, protected, installed, self.env, self.io)
        else:
            self.line(f"{PREFIX}: {describe_plan(plan, config)}")
        if set_variant(pyproject, name):
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

"""What the ``poetry torch-cuda`` reporting commands share: config, errors, JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from typing import Any

from cleo.io.outputs.output import Type
from poetry.console.commands.command import Command
from poetry.console.commands.env_command import EnvCommand

from poetry_torch_cuda.commands.existing_env import existing_env
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.output import error_lines
from poetry_torch_cuda.project.config import ENV_DISABLE
from poetry_torch_cuda.project.config import TABLE
from poetry_torch_cuda.project.config import load_config


if TYPE_CHECKING:
    from cleo.io.io import IO

    from poetry_torch_cuda.project.config import TorchCudaConfig


class ReportsErrors(Command):
    """A command whose :class:`TorchCudaError` becomes error lines and an exit code."""

    def handle(self) -> int:
        """Run :meth:`work`; a :class:`TorchCudaError` becomes an error line and exit 1."""
        try:
            return self.work()
        except TorchCudaError as error:
            for line in error_lines(str(error)):
                self.line_error(line)
            return error.exit_code or 1

    def work(self) -> int:
        """The command's work."""
        raise NotImplementedError


class TorchCudaCommand(ReportsErrors, EnvCommand):
    """An ``EnvCommand`` that reads the project's table and reports errors natively."""

    def reads_only(self, io: IO) -> bool:
        """Whether this run only reads: then it never creates the virtualenv."""
        return False

    def validate_early(self, io: IO) -> None:
        """Before Poetry creates the virtualenv: check the table; a reading run
        takes the existing environment so that Poetry creates none.

        Raises:
            TorchCudaError: the table is invalid.
        """
        load_config(self.poetry.pyproject.data)
        if self.reads_only(io):
            self.set_env(existing_env(self.poetry, io))

    def project_config(self) -> TorchCudaConfig:
        """The project's validated configuration.

        Raises:
            TorchCudaError: the project has no table, or the plugin is disabled.
        """
        config = load_config(self.poetry.pyproject.data)
        if config is None:
            raise TorchCudaError(
                f"This project has no [tool.{TABLE}] table (or {ENV_DISABLE} is "
                f'set), so no variant is configured. Add one, e.g.\n\n[tool.{TABLE}]\nvariant = "auto"'
            )
        return config

    def write_json(self, data: Any) -> None:
        """Print ``data`` as JSON, unstyled."""
        self.io.output.write_line(json.dumps(data, indent=2), type=Type.RAW)

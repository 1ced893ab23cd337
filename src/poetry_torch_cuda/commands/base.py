"""What the commands share: the disabled check, errors, JSON, the run context and env."""

from __future__ import annotations

import json
from pathlib import Path
from traceback import walk_tb
from typing import TYPE_CHECKING
from typing import Any

from cleo.helpers import option
from cleo.io.outputs.output import Type
from cleo.io.outputs.output import Verbosity
from poetry.console.commands.command import Command
from poetry.console.commands.env_command import EnvCommand
from poetry.console.commands.group_command import GroupCommand
from poetry.utils.env import EnvCommandError
from poetry.utils.env import EnvManager
from poetry.utils.env import SystemEnv
from poetry.utils.env import VirtualEnv
from poetry.utils.env.site_packages import SitePackages

from poetry_torch_cuda.context import RunContext
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.output import error_lines
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.config import refuse_if_disabled
from poetry_torch_cuda.project.config import require_config
from poetry_torch_cuda.project.selection import Selection
from poetry_torch_cuda.project.selection import selection_from


if TYPE_CHECKING:
    from cleo.io.io import IO
    from cleo.io.outputs.output import Output

    from poetry_torch_cuda.project.config import TorchCudaConfig


class ReportsErrors(Command):
    """A command whose :class:`TorchCudaError` becomes error lines and an exit code."""

    def handle(self) -> int:
        """Run :meth:`work` unless the plugin is disabled; errors exit 1 (or ``exit_code``)."""
        try:
            refuse_if_disabled()
            return self.work()
        except TorchCudaError as error:
            self.line_error("\n".join(error_lines(str(error))))
            return error.exit_code or 1

    def work(self) -> int:
        """The command's work."""
        raise NotImplementedError

    document: Output | None = None  # with --json: stdout (validate_early)

    def as_json(self, data: Any) -> bool:
        """With ``--json``, print ``data`` as JSON and say so."""
        # Unstyled, also with -q: it silences words, not the document a script asked for.
        if self.option("json"):
            out = self.document or self.io.output
            out.write_line(json.dumps(data, indent=2), Verbosity.QUIET, Type.RAW)
        return bool(self.option("json"))


#: ``detect``'s and ``variants``' way past the index pages' cache.
REFRESH = option("refresh", None, "Ask the index afresh, not its cached pages.")


class TorchCudaCommand(ReportsErrors, EnvCommand):
    """An ``EnvCommand`` that reads the project's table and reports errors natively."""

    def validate_early(self, io: IO) -> None:
        """Before Poetry creates the virtualenv: refuse when disabled, check the input;
        a reading run (all but a real ``switch`` or ``sync``) takes the existing
        environment or a :class:`NotCreatedEnv` (Poetry creates none)."""
        refuse_if_disabled()
        io.input.bind(self.definition)  # cleo's usage errors come first
        io.input.validate()
        if io.input.has_option("json") and io.input.option("json"):
            # Every other line (Poetry's -vvv too) to stderr; cleo's IO has no setter.
            self.document, io._output = io.output, io.error_output
        self.check_input(io)
        if io.input.has_option("dry-run") and not io.input.option("dry-run"):
            return
        try:
            env = EnvManager(self.poetry, io=io).get()
        except (OSError, EnvCommandError) as error:  # Poetry < 2.5 runs a venv's Python
            made = (f.f_locals.get("self") for f, _ in walk_tb(error.__traceback__))
            broken = next((v for v in made if isinstance(v, VirtualEnv)), None)
            if broken is None or broken.is_sane():  # not its missing Python
                raise
            env = broken
        if env.is_venv() and not env.is_sane():  # Poetry would fail on its Python
            raise TorchCudaError(
                f"The virtualenv {env.path} is broken: its Python is missing, or links "
                "to a Python that was removed; delete it, then run `poetry install`."
            )
        if not env.is_venv() and self.poetry.config.get("virtualenvs.create", True):
            nowhere = self.poetry.pyproject_path.parent / ".venv" / "not-created-yet"
            env = NotCreatedEnv(Path(env.path), nowhere)
        self.set_env(env)

    def check_input(self, io: IO) -> None:
        """Check what the command reads before anything runs (the table)."""
        load_config(self.poetry.pyproject.data)

    def context(self, config: TorchCudaConfig | None = None) -> RunContext:
        """A run context for ``config`` (default: the project's) and the options' groups."""
        selection = (
            selection_from(self) if isinstance(self, GroupCommand) else Selection()
        )
        config = config or require_config(self.poetry.pyproject.data)
        refresh = self.io.input.has_option("refresh") and self.option("refresh")
        return RunContext(self.poetry, self.env, self.io, config, selection, refresh)


class NotCreatedEnv(SystemEnv):
    """Stands for the virtualenv Poetry has not created yet: nothing is installed."""

    def __init__(self, path: Path, nowhere: Path) -> None:
        super().__init__(path)
        self._nowhere = nowhere

    @property
    def path(self) -> Path:  # no state: not the system Python's memory, stashes
        return self._nowhere

    @property
    def site_packages(self) -> SitePackages:
        """No site-packages directory: every lookup finds nothing."""
        return SitePackages(self._nowhere)

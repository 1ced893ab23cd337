"""The Poetry application plugin: registers commands and listeners, nothing else.

Poetry activates plugins on every invocation, ``poetry --version`` included,
so this module imports nothing of ours until a command or listener needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING
from typing import Any

from poetry.plugins.application_plugin import ApplicationPlugin

from poetry_torch_cuda import COMMANDS


if TYPE_CHECKING:
    from collections.abc import Callable

    from cleo.commands.command import Command as CleoCommand
    from cleo.events.event import Event
    from poetry.console.application import Application
    from poetry.console.commands.installer_command import InstallerCommand

    from poetry_torch_cuda.hooks import CommandHooks

VALIDATE_PRIORITY = 10
#: ``config.TABLE``, repeated so that projects without it import nothing of ours.
TABLE = "poetry-torch-cuda"


class TorchCudaPlugin(ApplicationPlugin):
    """Keeps Poetry off the torch family and installs the configured PyTorch variant."""

    _hooks: CommandHooks | None = None

    def activate(self, application: Application) -> None:
        from cleo.events.console_events import COMMAND
        from cleo.events.console_events import TERMINATE

        for name, target in COMMANDS.items():
            application.command_loader.register_factory(name, _lazy(target))
        dispatcher = application.event_dispatcher
        assert dispatcher is not None
        # Validation runs before Poetry's own listeners create the virtualenv.
        dispatcher.add_listener(COMMAND, self._on_validate, priority=VALIDATE_PRIORITY)
        dispatcher.add_listener(COMMAND, self._on_command)
        dispatcher.add_listener(TERMINATE, self._on_terminate)

    def _on_validate(self, event: Event, event_name: str, dispatcher: Any) -> None:
        # Our own commands check their input before Poetry makes a virtualenv.
        validate = getattr(getattr(event, "command", None), "validate_early", None)
        if callable(validate):
            validate(event.io)  # type: ignore[attr-defined]
        self._forward("on_validate", event, event_name, dispatcher)

    def _on_command(self, event: Event, event_name: str, dispatcher: Any) -> None:
        _warn_on_poetry_export(event)
        self._forward("on_command", event, event_name, dispatcher)

    def _on_terminate(self, event: Event, event_name: str, dispatcher: Any) -> None:
        self._forward("on_terminate", event, event_name, dispatcher)

    def _forward(self, name: str, event: Event, *args: Any) -> None:
        hooks = self._hooks_for(event)
        if hooks is not None:
            getattr(hooks, name)(event, *args)

    def _hooks_for(self, event: Event) -> CommandHooks | None:
        from poetry.console.commands.installer_command import InstallerCommand

        command = getattr(event, "command", None)
        if not isinstance(command, InstallerCommand) or not _has_table(command):
            return None
        if self._hooks is None:
            from poetry_torch_cuda.hooks import CommandHooks

            self._hooks = CommandHooks()
        return self._hooks


def _has_table(command: InstallerCommand) -> bool:
    """Whether the project configures us; without the table the hooks do nothing.

    ``poetry self …`` commands work on Poetry's own environment and are left
    alone; this is the one place that decides it.
    """
    if (command.name or "").startswith("self "):
        return False
    tool = command.poetry.pyproject.data.get("tool")
    return isinstance(tool, dict) and TABLE in tool


def _warn_on_poetry_export(event: Event) -> None:
    """``poetry export`` writes PyPI's torch: point to ``poetry torch-cuda export``."""
    command = getattr(event, "command", None)
    if getattr(command, "name", None) != "export":
        return
    try:
        tool = command.poetry.pyproject.data.get("tool")  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - outside a project: nothing to say
        return
    if isinstance(tool, dict) and TABLE in tool:
        event.io.write_error_line(  # type: ignore[attr-defined]
            "<warning>torch-cuda: `poetry export` pins PyPI's build of torch and "
            "its CUDA wheels, not the variant this project configures; use "
            "`poetry torch-cuda export --variant <variant>` for a hash-pinned "
            "list with the variant's build.</>"
        )


def _lazy(target: str) -> Callable[[], CleoCommand]:
    module, _, attribute = target.partition(":")

    def factory() -> CleoCommand:
        command: CleoCommand = getattr(import_module(module), attribute)()
        return command

    return factory

"""The Poetry application plugin: registers commands and listeners, nothing else.

Poetry activates plugins on every invocation, ``poetry --version`` included,
so this module imports nothing of ours until a command or listener needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING
from typing import Any

from poetry.plugins.application_plugin import ApplicationPlugin


if TYPE_CHECKING:
    from collections.abc import Callable

    from cleo.commands.command import Command as CleoCommand
    from cleo.events.event import Event
    from poetry.console.application import Application

    from poetry_torch_cuda.hooks import CommandHooks

VALIDATE_PRIORITY = 10
COMMANDS = {
    "torch-cuda switch": "poetry_torch_cuda.commands.switch:SwitchCommand",
}


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
        hooks = self._hooks_for(event)
        if hooks is not None:
            hooks.on_validate(event, event_name, dispatcher)  # type: ignore[arg-type]

    def _on_command(self, event: Event, event_name: str, dispatcher: Any) -> None:
        hooks = self._hooks_for(event)
        if hooks is not None:
            hooks.on_command(event, event_name, dispatcher)  # type: ignore[arg-type]

    def _on_terminate(self, event: Event, event_name: str, dispatcher: Any) -> None:
        hooks = self._hooks_for(event)
        if hooks is not None:
            hooks.on_terminate(event, event_name, dispatcher)  # type: ignore[arg-type]

    def _hooks_for(self, event: Event) -> CommandHooks | None:
        from poetry.console.commands.installer_command import InstallerCommand

        if not isinstance(getattr(event, "command", None), InstallerCommand):
            return None
        if self._hooks is None:
            from poetry_torch_cuda.hooks import CommandHooks

            self._hooks = CommandHooks()
        return self._hooks


def _lazy(target: str) -> Callable[[], CleoCommand]:
    module, _, attribute = target.partition(":")

    def factory() -> CleoCommand:
        command: CleoCommand = getattr(import_module(module), attribute)()
        return command

    return factory

"""The Poetry application plugin: registers commands and listeners, nothing else.

Poetry activates plugins on every invocation, ``poetry --version`` included, so this
module imports nothing of ours until a command or listener needs it.
"""

from __future__ import annotations

from functools import partial
from importlib import import_module
from typing import TYPE_CHECKING
from typing import Any

from poetry.plugins.application_plugin import ApplicationPlugin

from poetry_torch_cuda import COMMANDS


if TYPE_CHECKING:
    from cleo.commands.command import Command as CleoCommand
    from cleo.events.event import Event
    from poetry.console.application import Application

    from poetry_torch_cuda.hooks import CommandHooks


#: The table's name and its misspellings, as ``config.load_config`` reads them (a
#: copy: projects without the table import nothing of ours; a test compares them).
_OURS = ("poetry-torch-cuda", "torch-cuda")


class TorchCudaPlugin(ApplicationPlugin):
    """Keeps Poetry off the torch family and installs the configured PyTorch variant."""

    _hooks: CommandHooks | None = None

    def activate(self, application: Application) -> None:
        from cleo.events.console_events import COMMAND
        from cleo.events.console_events import TERMINATE

        for name, target in COMMANDS.items():
            application.command_loader.register_factory(name, partial(_build, target))
        dispatcher = application.event_dispatcher
        assert dispatcher is not None
        # Validation runs before Poetry's own listeners create the virtualenv.
        dispatcher.add_listener(COMMAND, self._on_validate, priority=10)
        dispatcher.add_listener(COMMAND, self._on_command)
        dispatcher.add_listener(TERMINATE, partial(self._forward, "on_terminate"))

    def _on_validate(self, event: Event, *_: Any) -> None:
        # Our own commands check their input before Poetry makes a virtualenv.
        validate = getattr(getattr(event, "command", None), "validate_early", None)
        if callable(validate):
            validate(event.io)  # type: ignore[attr-defined]
        self._forward("on_validate", event)

    def _on_command(self, event: Event, *_: Any) -> None:
        # `poetry export` writes PyPI's torch: point to `poetry torch-cuda export`.
        command = getattr(event, "command", None)
        if getattr(command, "name", None) == "export" and _has_table(command):
            event.io.write_error_line(  # type: ignore[attr-defined]
                "<warning>torch-cuda: `poetry export` pins PyPI's build of torch and "
                "its CUDA wheels, not the variant this project configures; use "
                "`poetry torch-cuda export --variant <variant>` for a hash-pinned "
                "list with the variant's build.</>"
            )
        self._forward("on_command", event)

    def _forward(self, name: str, event: Event, *_: Any) -> None:
        """Hand ``event`` to the hooks: only installer commands in projects with the
        table (never ``poetry self …``, Poetry's own env); the one place deciding it."""
        from poetry.console.commands.installer_command import InstallerCommand

        command = getattr(event, "command", None)
        if not isinstance(command, InstallerCommand) or not _has_table(command):
            return
        if self._hooks is None:
            from poetry_torch_cuda.hooks import CommandHooks

            self._hooks = CommandHooks()
        getattr(self._hooks, name)(event)


def _has_table(command: Any) -> bool:
    """Whether the project configures us (or means to: a misspelled table, which
    ``load_config`` names by the same test) and the plugin is on; else we do nothing."""
    if (getattr(command, "name", None) or "").startswith("self "):
        return False
    try:
        tool = command.poetry.pyproject.data.get("tool")
    except Exception:  # noqa: BLE001 - outside a project: nothing to do
        return False
    ours = (str(key).lower().replace("_", "-") in _OURS for key in tool or ())
    if not isinstance(tool, dict) or not any(ours):  # the table, or a misspelling
        return False
    from poetry_torch_cuda.project import config  # a project with the table only

    return not config.switch(config.ENV_DISABLE)


def _build(target: str) -> CleoCommand:
    module, _, attribute = target.partition(":")
    command: CleoCommand = getattr(import_module(module), attribute)()
    return command

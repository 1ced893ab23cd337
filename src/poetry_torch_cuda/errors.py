"""The one error type the plugin raises for problems a user can fix."""

from __future__ import annotations

from cleo.exceptions import CleoUserError


class TorchCudaError(CleoUserError):
    """A problem the user can fix: the message names the cause and the fix.

    Poetry renders a ``CleoUserError`` as its message alone, at every
    verbosity, and exits with status 1 (or ``exit_code`` when set).
    """


class ConfigError(TorchCudaError):
    """The ``[tool.poetry-torch-cuda]`` table or an override is invalid."""

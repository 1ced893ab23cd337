"""The one error type the plugin raises for problems a user can fix."""

from __future__ import annotations

from cleo.exceptions import CleoError


class TorchCudaError(CleoError):
    """A problem the user can fix: the message names the cause and the fix.

    Poetry renders a ``CleoError`` as its message alone (no traceback unless
    ``-vvv``) and exits with status 1.
    """


class ConfigError(TorchCudaError):
    """The ``[tool.poetry-torch-cuda]`` table or an override is invalid."""

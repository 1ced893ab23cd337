"""The one error type the plugin raises for problems a user can fix, and how it names values."""

from __future__ import annotations

import datetime
from typing import Any

from cleo.exceptions import CleoUserError


class TorchCudaError(CleoUserError):
    """A problem the user can fix: the message names the cause and the fix.

    Poetry renders a ``CleoUserError`` as its message alone, at every verbosity, and
    exits with status 1 (or ``exit_code`` when set).
    """


class ConfigError(TorchCudaError):
    """The ``[tool.poetry-torch-cuda]`` table or an override is invalid."""


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (dict, "a table"),
    (list, "an array"),
    ((datetime.date, datetime.time), "a date/time"),
)


def describe_value(value: Any) -> str:
    """``an integer 129``, ``a table``…: a value's TOML kind (and the value if short)."""
    kind = next((name for types, name in _KINDS if isinstance(value, types)), None)
    if kind is None or isinstance(value, (dict, list)):
        return kind or type(value).__name__
    shown = repr(value)
    return f"{kind} {shown if len(shown) <= 40 else shown[:37] + '...'}"

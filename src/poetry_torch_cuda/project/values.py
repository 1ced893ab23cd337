"""How messages about the table name a bad value: its TOML kind, and the value if short."""

from __future__ import annotations

import datetime
from typing import Any


def describe_value(value: Any) -> str:
    """``an integer 129``, ``a table``…: a value's TOML kind (and the value if short)."""
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (dict, "a table"),
        (list, "an array"),
        ((datetime.date, datetime.time), "a date/time"),
    )
    kind = next((name for types, name in kinds if isinstance(value, types)), None)
    if kind is None:
        return type(value).__name__
    if isinstance(value, (dict, list)):
        return kind
    shown = repr(value.unwrap() if hasattr(value, "unwrap") else value)
    return f"{kind} {shown if len(shown) <= 40 else shown[:37] + '...'}"

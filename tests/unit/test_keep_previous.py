"""``keep-previous-build``: on by default, a boolean, and it decides whether a
kept build may be reused (``install/undo.reusable_previous``)."""

from __future__ import annotations

import pytest

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.project.config import load_config


def _table(**keys: object) -> dict[str, object]:
    return {"tool": {"poetry-torch-cuda": {"variant": "cu130", **keys}}}


def test_keep_previous_build_is_on_by_default_and_can_be_turned_off() -> None:
    on = load_config(_table(), {})
    off = load_config(_table(**{"keep-previous-build": False}), {})
    assert on is not None and on.keep_previous_build is True
    assert off is not None and off.keep_previous_build is False


def test_keep_previous_build_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="keep-previous-build must be true or false"):
        load_config(_table(**{"keep-previous-build": "yes"}), {})

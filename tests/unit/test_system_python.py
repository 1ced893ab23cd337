"""``virtualenvs.create = false`` on a distribution's Python (PEP 668): refused as pip does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from cleo.io.buffered_io import BufferedIO

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.request import refuse_system_python


if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


class SystemEnv:
    """What Poetry's SystemEnv tells about a Python outside any virtualenv."""

    def __init__(self, prefix: Path, venv: bool = False) -> None:
        self.path = prefix
        self.paths = {"stdlib": str(prefix / "lib" / "python3.11")}
        self._venv = venv

    def is_venv(self) -> bool:
        return self._venv


def system_python(tmp_path: Path) -> Any:
    stdlib = tmp_path / "usr" / "lib" / "python3.11"
    stdlib.mkdir(parents=True)
    (stdlib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=apt\n")
    return SystemEnv(tmp_path / "usr")


def test_an_externally_managed_python_is_refused_with_pips_opt_in_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIP_BREAK_SYSTEM_PACKAGES", raising=False)
    io = BufferedIO()
    with pytest.raises(TorchCudaError) as refused:
        refuse_system_python(system_python(tmp_path), io)
    message = str(refused.value)
    assert "PEP 668" in message and "Nothing was installed" in message
    assert "poetry config virtualenvs.create true" in message
    assert "PIP_BREAK_SYSTEM_PACKAGES=1" in message


def test_the_opt_in_installs_and_says_where_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_BREAK_SYSTEM_PACKAGES", "1")
    io = BufferedIO()
    refuse_system_python(system_python(tmp_path), io)
    assert "which is not a virtual environment" in io.fetch_error()
    # a virtualenv is never in question
    venv = BufferedIO()
    refuse_system_python(SystemEnv(tmp_path, venv=True), venv)
    assert venv.fetch_error() == ""

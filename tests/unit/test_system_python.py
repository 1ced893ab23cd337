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


@pytest.mark.parametrize("value", [None, "0", "n", "f", "false", "off"])
def test_an_externally_managed_python_is_refused_with_pips_opt_in_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("PIP_BREAK_SYSTEM_PACKAGES", raising=False)
    else:  # pip's own false
        monkeypatch.setenv("PIP_BREAK_SYSTEM_PACKAGES", value)
    io = BufferedIO()
    with pytest.raises(TorchCudaError) as refused:
        refuse_system_python(system_python(tmp_path), io)
    message = str(refused.value)
    assert "PEP 668" in message and "Nothing was installed" in message
    assert "poetry config virtualenvs.create true" in message
    assert "PIP_BREAK_SYSTEM_PACKAGES=1" in message


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", "y", "t", "TRUE", "Y"])
def test_the_opt_in_installs_and_says_where_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Every spelling pip's own parser takes as true (pip's ``strtobool``: y, yes,
    t, true, on, 1, any case) opts in; "y" and "t" were refused though pip took them."""
    monkeypatch.setenv("PIP_BREAK_SYSTEM_PACKAGES", value)
    io = BufferedIO()
    refuse_system_python(system_python(tmp_path), io)
    assert "which is not a virtual environment" in io.fetch_error()
    # a virtualenv is never in question
    venv = BufferedIO()
    refuse_system_python(SystemEnv(tmp_path, venv=True), venv)
    assert venv.fetch_error() == ""


PEP_668 = """\
error: externally-managed-environment

\u00d7 This environment is externally managed
╰─> To install Python packages system-wide, try apt install
    python3-xyz, where xyz is the package you are trying to
    install.

note: If you believe this is a mistake, please contact your Python installation or OS distribution provider. You can override this, at the risk of breaking your Python installation or OS, by passing --break-system-packages.
hint: See PEP 668 for the detailed specification.
"""


def test_a_failing_pip_keeps_its_whole_error_not_its_tail(tmp_path: Path) -> None:
    import sys

    from poetry_torch_cuda.errors import TorchCudaError
    from poetry_torch_cuda.install.pip import PipRunner

    script = f"import sys; sys.stdout.write({PEP_668!r}); sys.exit(1)"
    pip = PipRunner([sys.executable, "-c", script])
    wheel = tmp_path / "torch-2.14.1+cpu-py3-none-any.whl"
    with pytest.raises(TorchCudaError) as failed:
        pip.install_files([(wheel, "0" * 64)], "torch==2.14.1+cpu")
    message = str(failed.value)
    assert "error: externally-managed-environment" in message
    assert "This environment is externally managed" in message
    assert "--break-system-packages" in message
    assert "output above" not in message  # it was never shown

"""How a failed pip reads: one triage for installs of files, and removals.

A real child process stands in for pip (the runner only cares how it ends).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.pip import PipRunner


if TYPE_CHECKING:
    from pathlib import Path

KILLED = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
FAILS = (
    "import sys; print('ERROR: No matching distribution found for torch'); sys.exit(1)"
)


def runner(script: str) -> PipRunner:
    return PipRunner([sys.executable, "-c", script])


def test_a_killed_pip_names_what_it_was_doing(
    tmp_path: Path,
) -> None:
    wheel = tmp_path / "torch-2.14.1+cu130-py3-none-any.whl"
    with pytest.raises(TorchCudaError) as caught:
        runner(KILLED).install_files([(wheel, "0" * 64)], "torch==2.14.1+cu130")
    assert str(caught.value) == (
        "pip was killed by SIGKILL while installing torch==2.14.1+cu130 from "
        "the downloaded files. Run the command again to finish."
    )
    with pytest.raises(TorchCudaError) as caught:
        runner(KILLED).uninstall(["nvidia-cublas-cu12"])
    assert str(caught.value) == (
        "pip was killed by SIGKILL while removing nvidia-cublas-cu12. "
        "Run the command again to finish."
    )


def test_a_failing_pip_names_the_source_and_the_cause(tmp_path: Path) -> None:
    wheel = tmp_path / "torch-2.14.1+cu130-py3-none-any.whl"
    with pytest.raises(
        TorchCudaError,
        match=r"^pip could not install torch==2\.14\.1\+cu130 from the downloaded files: ",
    ):
        runner(FAILS).install_files([(wheel, "0" * 64)], "torch==2.14.1+cu130")

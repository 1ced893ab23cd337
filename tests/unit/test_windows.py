"""Windows code paths that can be exercised on Linux.

The suite runs on Linux x86_64 only; these pin the few places where Windows
differs: executables end in ``.exe`` (found through PATH by ``shutil.which``
there, looked up by path under ``%CUDA_PATH%\\bin`` by us), wheels are tagged
``win_amd64``, and ROCm has no Windows builds. The Windows driver column is
tested with the other driver facts in test_cuda_tables.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from poetry_torch_cuda.index.client import tag_fits
from poetry_torch_cuda.machine import probe
from poetry_torch_cuda.machine.probe import probe_nvcc
from poetry_torch_cuda.machine.probe import probe_nvidia
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import pytest

WINDOWS = {"sys_platform": "win32", "platform_machine": "AMD64"}
LINUX = {"sys_platform": "linux", "platform_machine": "x86_64"}


def test_nvidia_smi_exe_found_on_path_is_what_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    smi = r"C:\Windows\System32\nvidia-smi.exe"
    calls: list[Sequence[str]] = []

    def run(args: Sequence[str]) -> tuple[str, str | None]:
        calls.append(args)
        return "576.02, 8.9, NVIDIA GeForce RTX 4090\n", None

    monkeypatch.setattr(probe, "run_tool", run)
    monkeypatch.setattr(shutil, "which", lambda name: smi if "nvidia" in name else None)
    monkeypatch.setenv(probe.ROOT_VARIABLE, str(tmp_path))
    driver, notes = probe_nvidia()
    assert driver is not None and driver.version == "576.02", notes
    assert calls[0][0] == smi


def test_nvcc_exe_under_cuda_path_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuda_path = tmp_path / "NVIDIA GPU Computing Toolkit" / "CUDA" / "v12.9"
    (cuda_path / "bin").mkdir(parents=True)
    (cuda_path / "bin" / "nvcc.exe").write_text("")
    calls: list[Sequence[str]] = []

    def run(args: Sequence[str]) -> tuple[str, str | None]:
        calls.append(args)
        return "Cuda compilation tools, release 12.9, V12.9.86\n", None

    monkeypatch.setattr(probe, "run_tool", run)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.setenv("CUDA_PATH", str(cuda_path))
    found = probe_nvcc()
    assert found == "12.9"
    assert calls == [[str(cuda_path / "bin" / "nvcc.exe"), "--version"]]


def test_windows_wheels_fit_windows_only() -> None:
    assert tag_fits("py3", "none", "win_amd64", WINDOWS)
    assert not tag_fits("py3", "none", "manylinux_2_28_x86_64", WINDOWS)
    assert not tag_fits("py3", "none", "win_amd64", LINUX)
    assert tag_fits("py3", "none", "any", WINDOWS)


def test_rocm_has_no_windows_builds_cuda_and_cpu_do() -> None:
    assert parse_variant("rocm6.4").not_built_for("win32") is not None
    assert parse_variant("cu126").not_built_for("win32") is None
    assert parse_variant("cpu").not_built_for("win32") is None


def test_the_modules_of_a_run_import_where_signal_has_no_sighup() -> None:
    # Windows' signal module has no SIGHUP (nor SIGKILL); a name looked up at
    # import time would make every install fail there before it starts.
    code = (
        "import os, signal, sys\n"
        "del signal.SIGHUP, signal.SIGKILL\n"
        "import poetry_torch_cuda.install.signals, poetry_torch_cuda.proof.run\n"
        "import poetry_torch_cuda.install.pip, poetry_torch_cuda.install.download\n"
        "import poetry_torch_cuda.proof.after, poetry_torch_cuda.install.reconcile\n"
        "from poetry_torch_cuda.install.pip import PipRunner\n"
        "os.name = 'nt'  # what the plugin asks (subprocess itself stays POSIX)\n"
        "PipRunner([])._run('checking', [sys.executable, '-c', 'print(1)'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr

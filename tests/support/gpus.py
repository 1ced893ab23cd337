"""Fake GPUs for tests: what nvidia-smi, rocminfo and nvcc print, as stub executables.

:func:`machine_env` writes the stubs into a directory and returns environment
overrides that put it first on a PATH without ``/usr/local/bin`` (where a
developer machine may have a real ``nvcc``), and point ``ROCM_PATH`` at a
directory of the test's own.
"""

from __future__ import annotations

import shlex
import shutil
import stat
from pathlib import Path

import pytest

from tests.support.poetry_project import write_stub_executable


__all__ = [
    "ARCHS_CU12",
    "ARCHS_CU13",
    "B200",
    "DRIVER_580",
    "GTX_1080",
    "NVIDIA_SMI_FAILED",
    "RTX_4090",
    "RTX_5090",
    "T4",
    "V100",
    "also_runs",
    "gpu",
    "hanging_nvidia_smi",
    "has_real_nvidia_driver",
    "machine_env",
    "no_gpu",
    "no_real_driver",
    "nvcc_output",
    "rocminfo_output",
    "smi_line",
]

#: The PATH the stubs directory is put in front of.
BASE_PATH = "/usr/bin:/bin"

NVIDIA_SMI_FAILED = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)


def smi_line(driver: str, capability: str, name: str) -> str:
    """One line of ``nvidia-smi --query-gpu=driver_version,compute_cap,name``."""
    return f"{driver}, {capability}, {name}\n"


GTX_1080 = ("6.1", "NVIDIA GeForce GTX 1080")
A100 = ("8.0", "NVIDIA A100-SXM4-80GB")
T4 = ("7.5", "Tesla T4")
RTX_4090 = ("8.9", "NVIDIA GeForce RTX 4090")
RTX_5090 = ("12.0", "NVIDIA GeForce RTX 5090")
V100 = ("7.0", "Tesla V100-SXM2-32GB")
B200 = ("10.0", "NVIDIA B200")
#: A driver that runs CUDA 13.0.
DRIVER_580 = "580.95.05"
#: The architectures a CUDA 13 build and a CUDA 12 build are compiled for.
ARCHS_CU13 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
ARCHS_CU12 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


def nvcc_output(release: str) -> str:
    """What ``nvcc --version`` prints for CUDA ``release`` (e.g. ``"12.4"``)."""
    return (
        "nvcc: NVIDIA (R) Cuda compiler driver\n"
        "Copyright (c) 2005-2025 NVIDIA Corporation\n"
        f"Cuda compilation tools, release {release}, V{release}.131\n"
    )


def rocminfo_output(*gpus: tuple[str, str]) -> str:
    """``rocminfo`` output with a CPU agent and one GPU agent per ``(gfx, name)``."""
    agents = [("AMD Ryzen 9 7950X 16-Core Processor", "AMD Ryzen 9 7950X", "CPU")]
    agents += [(gfx, name, "GPU") for gfx, name in gpus]
    lines = [
        "ROCk module version 6.10.5 is loaded",
        "=====================    ",
        "HSA System Attributes    ",
        "=====================    ",
        "Runtime Version:         1.14",
        "==========               ",
        "HSA Agents               ",
        "==========               ",
    ]
    for number, (name, marketing, kind) in enumerate(agents, start=1):
        lines += [
            "*******                  ",
            f"Agent {number}                  ",
            "*******                  ",
            f"  Name:                    {name}                            ",
            "  Uuid:                    GPU-0123456789abcdef               ",
            f"  Marketing Name:          {marketing}                 ",
            "  Vendor Name:             AMD                                ",
            f"  Device Type:             {kind}                                ",
            "  ISA Info:                ",
            "    ISA 1                    ",
            f"      Name:                    amdgcn-amd-amdhsa--{name}         ",
        ]
    lines.append("*** Done ***")
    return "\n".join(lines) + "\n"


def machine_env(
    directory: Path,
    *,
    nvidia_smi: str | None = None,
    nvidia_smi_exit: int = 0,
    nvidia_smi_stderr: str = "",
    rocminfo: str | None = None,
    rocm_version: str | None = None,
    nvcc: str | None = None,
) -> dict[str, str]:
    """Stubs for the given tools in ``directory``; returns PATH and ROCM_PATH overrides.

    A tool left ``None`` is absent. Its calls are logged next to it (see
    :func:`tests.support.poetry_project.stub_calls`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    if nvidia_smi is not None:
        write_stub_executable(
            directory,
            "nvidia-smi",
            nvidia_smi,
            nvidia_smi_exit,
            stderr=nvidia_smi_stderr,
        )
    if rocminfo is not None:
        write_stub_executable(directory, "rocminfo", rocminfo)
    if nvcc is not None:
        write_stub_executable(directory, "nvcc", nvcc_output(nvcc))
    rocm = directory / "rocm"
    (rocm / ".info").mkdir(parents=True, exist_ok=True)
    if rocm_version is not None:
        (rocm / ".info" / "version").write_text(f"{rocm_version}\n")
    return {
        "PATH": f"{directory}:{BASE_PATH}",
        "ROCM_PATH": str(rocm),
        "CUDA_HOME": str(directory / "no-cuda-home"),
        "CUDA_PATH": str(directory / "no-cuda-path"),
    }


def has_real_nvidia_driver() -> bool:
    """Whether this machine's own NVIDIA driver would answer (then "no GPU" tests skip)."""
    return (
        Path("/proc/driver/nvidia/version").exists()
        or shutil.which("nvidia-smi", path=BASE_PATH) is not None
    )


#: For a test of stubbed GPUs: this machine's own driver would answer instead.
no_real_driver = pytest.mark.skipif(
    has_real_nvidia_driver(), reason="this machine's own NVIDIA driver would answer"
)


def gpu(
    tmp_path: Path,
    *gpus: tuple[str, str],
    driver: str = "575.51.03",
    nvcc: str | None = None,
) -> dict[str, str]:
    """A machine (stubs under ``tmp_path/machine``) whose nvidia-smi lists
    ``gpus`` (compute capability, name) under ``driver``."""
    lines = "".join(smi_line(driver, *g) for g in gpus)
    return machine_env(tmp_path / "machine", nvidia_smi=lines, nvcc=nvcc)


def no_gpu(tmp_path: Path) -> dict[str, str]:
    """A machine (stubs under ``tmp_path/machine``) without nvidia-smi, ROCm or nvcc."""
    return machine_env(tmp_path / "machine")


def also_runs(directory: Path, tool: str, command: str) -> None:
    """Make the stub ``directory/tool`` run the shell ``command`` first: something a
    user does at the moment the plugin asks the machine (an edit, at a known step)."""
    script = directory / tool
    shebang, rest = script.read_text().split("\n", 1)
    script.write_text(f"{shebang}\n{command}\n{rest}")


def hanging_nvidia_smi(directory: Path, seconds: int = 120) -> dict[str, str]:
    """A machine (stubs in ``directory``) whose ``nvidia-smi`` hangs for ``seconds``,
    as one stuck in driver initialisation does; each call is logged first (see
    :func:`tests.support.poetry_project.stub_calls`)."""
    env = machine_env(directory)
    script = directory / "nvidia-smi"
    calls = directory / "nvidia-smi.calls"
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {shlex.quote(str(calls))}\n"
        # exec: the probe's kill on its timeout reaches the sleeping process itself
        f"exec sleep {int(seconds)}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return env

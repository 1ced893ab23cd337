"""The probes, run against stub executables (real processes, fake GPUs)."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.machine import probe as machine
from poetry_torch_cuda.machine.probe import ROOT_VARIABLE
from poetry_torch_cuda.machine.probe import NvidiaGpu
from poetry_torch_cuda.machine.probe import parse_nvidia_smi
from poetry_torch_cuda.machine.probe import parse_rocminfo
from poetry_torch_cuda.machine.probe import probe_nvcc
from poetry_torch_cuda.machine.probe import probe_nvidia
from poetry_torch_cuda.machine.probe import probe_rocm
from tests.support.gpus import BASE_PATH
from tests.support.gpus import GTX_1080
from tests.support.gpus import NVIDIA_SMI_FAILED
from tests.support.gpus import RTX_4090
from tests.support.gpus import has_real_nvidia_driver
from tests.support.gpus import machine_env
from tests.support.gpus import rocminfo_output
from tests.support.gpus import smi_line
from tests.support.poetry_project import stub_calls
from tests.support.poetry_project import write_stub_executable


if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

PROC_575 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  575.51.03  "
    "Release Build  (dvs-builder@U16-I3-B03-4-3)  Tue Apr  8 19:31:48 UTC 2025\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
)


def machine_at(
    monkeypatch: pytest.MonkeyPatch, directory: Path, env: Mapping[str, str] = {}
) -> Path:
    """The probes see the stubs in ``directory`` (and ``env``), with ``directory`` as
    the system root; returns where they read /proc's driver version."""
    settings = {"PATH": f"{directory}:{BASE_PATH}", ROOT_VARIABLE: str(directory)}
    for name, value in {**settings, **env}.items():
        monkeypatch.setenv(name, value)
    proc = directory / "proc" / "driver" / "nvidia" / "version"
    proc.parent.mkdir(parents=True, exist_ok=True)
    return proc


def test_parse_nvidia_smi_several_gpus() -> None:
    text = smi_line("575.51.03", *GTX_1080) + smi_line("575.51.03", *RTX_4090)
    assert parse_nvidia_smi(text) == (
        "575.51.03",
        (
            NvidiaGpu(0, "NVIDIA GeForce GTX 1080", (6, 1)),
            NvidiaGpu(1, "NVIDIA GeForce RTX 4090", (8, 9)),
        ),
    )


def test_parse_nvidia_smi_odd_lines() -> None:
    assert parse_nvidia_smi("") is None
    assert parse_nvidia_smi("No devices were found\n") is None
    # compute_cap unknown, then the pre-R510 query without it
    assert parse_nvidia_smi("535.54.03, [N/A], Tesla V100-SXM2-16GB\n") == (
        "535.54.03",
        (NvidiaGpu(0, "Tesla V100-SXM2-16GB", None),),
    )
    assert parse_nvidia_smi("470.82.01, Tesla K80\n") == (
        "470.82.01",
        (NvidiaGpu(0, "Tesla K80", None),),
    )


def test_the_probes_read_the_other_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = machine_at(monkeypatch, tmp_path)
    old_proc = (
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.82.01  Tue Oct 26 2021\n"
    )
    for text, version in ((PROC_575, "575.51.03"), (old_proc, "470.82.01")):
        proc.write_text(text)
        driver, _ = probe_nvidia()
        assert driver is not None and driver.version == version
    proc.write_text("nothing here")
    driver, notes = probe_nvidia()
    assert driver is None and notes[-1] == f"{proc} names no driver version"
    gpu = rocminfo_output(("gfx1100", "Radeon RX 7900 XTX"))
    env = machine_env(tmp_path / "junk", rocminfo=gpu, rocm_version="junk")
    machine_at(monkeypatch, tmp_path / "junk", env)
    rocm, _ = probe_rocm()
    assert rocm is not None and rocm.version is None
    write_stub_executable(tmp_path / "junk", "nvcc", "bash: nvcc: not found\n")
    assert probe_nvcc() is None


def test_parse_rocminfo_lists_gpu_agents_only() -> None:
    text = rocminfo_output(
        ("gfx1100", "Radeon RX 7900 XTX"), ("gfx90a", "AMD Instinct MI210")
    )
    gpus = parse_rocminfo(text)
    assert [(gpu.gfx, gpu.name) for gpu in gpus] == [
        ("gfx1100", "Radeon RX 7900 XTX"),
        ("gfx90a", "AMD Instinct MI210"),
    ]
    assert parse_rocminfo(rocminfo_output()) == ()


def test_probe_nvidia_asks_nvidia_smi_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine_env(tmp_path, nvidia_smi=smi_line("580.65.06", *RTX_4090))
    machine_at(monkeypatch, tmp_path)
    driver, notes = probe_nvidia()
    assert driver is not None
    assert (driver.version, driver.source) == ("580.65.06", "nvidia-smi")
    assert driver.gpus == (NvidiaGpu(0, "NVIDIA GeForce RTX 4090", (8, 9)),)
    assert notes == []
    assert stub_calls(tmp_path / "nvidia-smi") == [
        "--query-gpu=driver_version,compute_cap,name --format=csv,noheader"
    ]


def test_probe_nvidia_asks_old_drivers_again_without_compute_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {tmp_path / "calls"}\n'
        'case "$*" in\n'
        "  *compute_cap*) echo 'Field \"compute_cap\" is not a valid field to query.'; exit 2;;\n"
        "esac\n"
        "echo '470.82.01, Tesla K80'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    machine_at(monkeypatch, tmp_path)
    driver, _ = probe_nvidia()
    assert driver is not None
    assert driver.version == "470.82.01"
    assert driver.gpus[0].compute_capability is None
    assert len((tmp_path / "calls").read_text().splitlines()) == 2


def test_failing_nvidia_smi_falls_back_to_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine_env(tmp_path, nvidia_smi="", nvidia_smi_exit=9, nvidia_smi_stderr="")
    (tmp_path / "nvidia-smi.stdout").write_text(NVIDIA_SMI_FAILED)
    proc = machine_at(monkeypatch, tmp_path)
    proc.write_text(PROC_575)
    driver, notes = probe_nvidia()
    assert driver is not None
    assert (driver.version, driver.source, driver.gpus) == ("575.51.03", str(proc), ())
    assert notes == [
        (
            "nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate "
            "with the NVIDIA driver. Make sure that the latest NVIDIA driver is "
            "installed and running. (exit code 9); fix the NVIDIA driver until "
            "`nvidia-smi` answers (after a driver update: reboot)"
        )
    ]


def test_an_nvidia_smi_that_warns_still_lists_the_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Exit code 14, "infoROM is corrupted", is a warning: the GPUs are listed and
    # work (nvidia-smi's manual; NVIDIA/gpu-operator issue 285).
    warning = "WARNING: infoROM is corrupted at gpu 0000:B3:00.0\n"
    lines = warning + smi_line("580.95.05", *RTX_4090)
    machine_env(tmp_path, nvidia_smi=lines, nvidia_smi_exit=14)
    machine_at(monkeypatch, tmp_path)
    driver, notes = probe_nvidia()
    assert driver is not None
    assert (driver.version, driver.source) == ("580.95.05", "nvidia-smi")
    assert [(gpu.name, gpu.capability) for gpu in driver.gpus] == [
        ("NVIDIA GeForce RTX 4090", "8.9")
    ]
    assert notes == [f"nvidia-smi warned: {warning.strip()} (exit code 14)"]
    assert not any(note.startswith(machine.SMI_FAILED) for note in notes)


@pytest.mark.skipif(has_real_nvidia_driver(), reason="this machine has nvidia-smi")
def test_no_nvidia_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = machine_at(monkeypatch, tmp_path)
    driver, notes = probe_nvidia()
    assert driver is None
    assert notes == [
        "nvidia-smi not found on PATH",
        f"{proc} does not exist (no NVIDIA kernel driver loaded)",
    ]


def test_a_hanging_nvidia_smi_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\nexec sleep 5\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(machine, "TIMEOUT_SECONDS", 0.2)
    machine_at(monkeypatch, tmp_path)
    driver, notes = probe_nvidia()
    assert driver is None
    assert notes[0].startswith("nvidia-smi failed: did not answer within 0.2 s; fix")


def test_probe_rocm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = machine_env(
        tmp_path,
        rocminfo=rocminfo_output(("gfx1100", "Radeon RX 7900 XTX")),
        rocm_version="6.4.1-120",
    )
    machine_at(monkeypatch, tmp_path, env)
    rocm, notes = probe_rocm()
    assert rocm is not None
    assert rocm.version == "6.4.1"
    assert [gpu.gfx for gpu in rocm.gpus] == ["gfx1100"]
    assert notes == []


def test_probe_rocm_without_gpus_or_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = machine_env(tmp_path, rocminfo=rocminfo_output(), rocm_version="6.4.1")
    machine_at(monkeypatch, tmp_path, env)
    rocm, notes = probe_rocm()
    assert rocm is None
    assert notes == ["rocminfo lists no GPU agent"]
    (tmp_path / "rocminfo").unlink()
    rocm, notes = probe_rocm()
    assert rocm is None
    assert notes == [
        "rocminfo not found on PATH",
        "ROCm 6.4.1 is installed but its GPUs cannot be listed",
    ]


def test_probe_nvcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = machine_env(tmp_path, nvcc="12.4")
    machine_at(monkeypatch, tmp_path, env)
    assert probe_nvcc() == "12.4"
    home = tmp_path / "cuda"
    machine_env(home / "bin", nvcc="13.0")
    machine_at(monkeypatch, tmp_path / "none", {"CUDA_HOME": str(home)})
    assert probe_nvcc() == "13.0"
    monkeypatch.setenv("CUDA_HOME", env["CUDA_HOME"])
    assert probe_nvcc() is None


def test_a_failing_rocminfo_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = machine_env(tmp_path, rocm_version="6.4.1")
    write_stub_executable(
        tmp_path, "rocminfo", "", 1, stderr="hsa api call failure\nmore\n"
    )
    machine_at(monkeypatch, tmp_path, env)
    assert probe_rocm() == (
        None,
        ["rocminfo failed: hsa api call failure (exit code 1)"],
    )

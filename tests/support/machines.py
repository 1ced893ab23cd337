"""Machines described directly, for the unit tests of detection, the driver rule and proof."""

from __future__ import annotations

from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import NvidiaDriver
from poetry_torch_cuda.machine.probe import NvidiaGpu


def nvidia_machine(
    driver: str, *gpus: tuple[str, tuple[int, int] | None], platform: str = "linux"
) -> Machine:
    """An x86_64 machine with NVIDIA ``driver`` and ``gpus`` (name, compute capability)."""
    return Machine(
        platform,
        "x86_64",
        NvidiaDriver(
            driver,
            "nvidia-smi",
            tuple(NvidiaGpu(i, name, cc) for i, (name, cc) in enumerate(gpus)),
        ),
    )

"""The one warning when ``auto`` settles for cpu on a machine with an NVIDIA GPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry_torch_cuda.machine import tables


if TYPE_CHECKING:
    from poetry_torch_cuda.machine.detection import Decision
    from poetry_torch_cuda.machine.probe import Machine


def cpu_fallback_warning(
    decision: Decision | None, machine: Machine | None
) -> str | None:
    """Why ``auto``'s ``decision`` on this GPU machine is cpu and what to do;
    ``None`` if not the case (no decision, no NVIDIA GPU, or not cpu)."""
    if (
        decision is None
        or machine is None
        or machine.nvidia is None
        or decision.variant.kind != "cpu"
    ):
        return None
    nvidia = machine.nvidia
    gpus = ", ".join(gpu.name for gpu in nvidia.gpus) or "an NVIDIA GPU"
    newest = tables.newest_cuda(nvidia.version, machine.sys_platform)
    runs = (
        f"runs CUDA {tables.dotted(newest)}"
        if newest
        else "is older than every CUDA release PyTorch builds for"
    )
    needs = []
    other = []
    for verdict, offer in decision.candidates:
        if verdict.variant.kind != "cuda":
            continue
        cuda = verdict.variant.cuda_version
        if not verdict.driver_ok and cuda is not None:
            minimum = tables.minimum_driver(cuda, machine.sys_platform)
            needs.append(f"{verdict.variant} needs >= {minimum or '?'}")
        elif verdict.usable is False:
            other.append(f"{verdict.variant}: {'; '.join(verdict.reasons)}")
        elif offer is not None and offer.available is False:
            other.append(f"{verdict.variant}: {offer.detail}")
    why = []
    if needs:
        why.append(f"the driver is too old ({', '.join(needs)})")
    why += other
    oldest = min(
        (
            verdict.variant
            for verdict, _ in decision.candidates
            if verdict.variant.kind == "cuda" and not verdict.driver_ok
        ),
        key=lambda variant: variant.cuda_version or (0, 0),
        default=None,
    )
    fix = (
        f"update the NVIDIA driver (to >= "
        f"{tables.minimum_driver(oldest.cuda_version, machine.sys_platform)} for "
        f"{oldest}, newer for newer variants)"
        if oldest is not None and oldest.cuda_version is not None
        else "check the driver and the index"
    )
    return (
        f"{gpus} found with NVIDIA driver {nvidia.version}, which {runs}, but no CUDA "
        f"build fits, so auto installs the CPU build: {'; '.join(why) or 'none fits'}. "
        f'To use the GPU, {fix}; to mean the CPU build, set variant = "cpu".'
    )

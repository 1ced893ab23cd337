"""Turn what the machine has and what the index offers into a variant, with reasons.

Pure: the machine comes from :mod:`poetry_torch_cuda.machine.probe`, what the index
offers from a callable, so every rule here is tested without GPUs or network.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.project.variants import Variant


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable

    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.machine.probe import NvidiaGpu

CPU = Variant("cpu", "cpu")
MACOS_NOTE = (
    "macOS: PyTorch publishes only PyPI's default build (CPU and MPS); "
    "Poetry installs it as usual"
)
XPU_NOTE = (
    "Intel GPUs are not detected automatically; set the variant to xpu to use one"
)


@dataclass(frozen=True)
class Offer:
    """Whether the index has the build; ``available`` is ``None`` when it could not be asked."""

    available: bool | None
    detail: str


@dataclass(frozen=True)
class Verdict:
    """Whether ``variant`` runs on this machine, and why (``None``: cannot tell)."""

    variant: Variant
    usable: bool | None
    reasons: tuple[str, ...]
    uncovered: tuple[NvidiaGpu, ...] = ()
    driver_ok: bool = True


@dataclass(frozen=True)
class Decision:
    """What ``auto`` picks, the steps that led there and who forced the choice."""

    variant: Variant
    steps: tuple[str, ...]
    forced_by: str | None = None
    candidates: tuple[tuple[Verdict, Offer | None], ...] = field(default=())


def assess(
    variant: Variant, machine: Machine, torch_version: str | None = None
) -> Verdict:
    """Whether ``variant``'s builds run on ``machine`` (driver, GPU architectures, ROCm)."""
    if not variant.has_builds_for(machine.sys_platform):
        return Verdict(
            variant,
            False,
            (f"PyTorch publishes no {variant} builds for {machine.sys_platform}",),
        )
    if variant.kind == "cpu":
        return Verdict(variant, True, ("runs on any machine",))
    if variant.kind == "xpu":
        return Verdict(variant, None, (XPU_NOTE,))
    if variant.kind == "rocm":
        return _assess_rocm(variant, machine)
    if variant.kind == "cuda":
        return _assess_cuda(variant, machine, torch_version)
    return Verdict(variant, None, ("auto is not a build",))


def decide(
    machine: Machine,
    offers: Callable[[Variant], Offer],
    torch_version: str | None = None,
) -> Decision:
    """Pick the variant for ``machine``: the newest that its driver runs, that builds
    for every GPU and that the index has; else the one that serves most GPUs; else cpu.
    """
    if machine.sys_platform == "darwin":
        return Decision(
            CPU,
            (MACOS_NOTE,),
        )
    if machine.nvidia is not None:
        return _decide_cuda(machine, offers, torch_version)
    if machine.rocm is not None:
        return _decide_rocm(machine, offers)
    steps = [*machine.notes, "no NVIDIA or AMD GPU found", XPU_NOTE]
    return _fallback(steps, offers, "cpu: no GPU to build for")


def resolve_variant(variant: Variant) -> Variant:
    """Return ``variant`` itself, or for ``auto`` what this machine supports.

    This asks no index; the commands and listeners use
    :func:`poetry_torch_cuda.machine.resolution.resolve`, which also checks that the
    index has the locked torch version in the chosen build.
    """
    if variant.kind != "auto":
        return variant
    from poetry_torch_cuda.machine.probe import probe_machine

    return decide(probe_machine(), lambda _: Offer(None, "not asked")).variant


def _assess_cuda(
    variant: Variant, machine: Machine, torch_version: str | None
) -> Verdict:
    nvidia = machine.nvidia
    if nvidia is None:
        return Verdict(variant, False, ("no NVIDIA driver found",), driver_ok=False)
    cuda = variant.cuda_version
    assert cuda is not None
    newest = tables.newest_cuda(nvidia.version, machine.sys_platform)
    needed = tables.minimum_driver(cuda, machine.sys_platform)
    if newest is None or newest < cuda:
        supports = f"CUDA {_dotted(newest)}" if newest else "no CUDA in the table"
        return Verdict(
            variant,
            False,
            (
                (
                    f"needs driver >= {needed or '?'} for CUDA {_dotted(cuda)}; "
                    f"driver {nvidia.version} supports {supports}"
                ),
            ),
            driver_ok=False,
        )
    reasons = [f"driver {nvidia.version} runs CUDA {_dotted(cuda)}"]
    archs = tables.arch_list(variant.name, torch_version, machine.machine)
    if archs is None:
        reasons.append(f"no architecture list known for {variant}; GPUs not checked")
        return Verdict(variant, True, tuple(reasons))
    built = tables.describe_archs(archs)
    uncovered = []
    for gpu in nvidia.gpus:
        if gpu.compute_capability is None:
            reasons.append(f"{gpu}: compute capability unknown, not checked")
            continue
        arch = tables.runs_on(archs, gpu.compute_capability)
        if arch is None:
            uncovered.append(gpu)
    if uncovered:
        missing = ", ".join(f"{gpu.sm} ({gpu.name})" for gpu in uncovered)
        return Verdict(
            variant,
            False,
            (f"not built for {missing}: builds {built}",),
            tuple(uncovered),
        )
    if nvidia.gpus:
        reasons.append(f"builds {built}, which covers every GPU")
    return Verdict(variant, True, tuple(reasons))


def _assess_rocm(variant: Variant, machine: Machine) -> Verdict:
    rocm = machine.rocm
    if rocm is None:
        return Verdict(variant, False, ("no ROCm GPU found",))
    wanted = _rocm_version(variant.name)
    have = rocm.major_minor
    if have is None:
        return Verdict(variant, True, ("ROCm version unknown; not checked",))
    if wanted[:2] == have:
        return Verdict(variant, True, (f"matches ROCm {rocm.version}",))
    if wanted[0] == have[0] and wanted[:2] < have:
        return Verdict(variant, True, (f"older than ROCm {rocm.version}, same major",))
    return Verdict(variant, False, (f"does not match ROCm {rocm.version}",))


def _decide_cuda(
    machine: Machine, offers: Callable[[Variant], Offer], torch_version: str | None
) -> Decision:
    nvidia = machine.nvidia
    assert nvidia is not None
    newest = tables.newest_cuda(nvidia.version, machine.sys_platform)
    steps = [
        f"NVIDIA driver {nvidia.version} (from {nvidia.source}) supports "
        + (f"CUDA {_dotted(newest)} and older" if newest else "no CUDA in the table")
    ]
    steps += [f"{gpu}: compute capability {_capability(gpu)}" for gpu in nvidia.gpus]
    if not nvidia.gpus:
        steps.append("GPU models unknown (nvidia-smi did not list them)")
    candidates: list[tuple[Verdict, Offer | None]] = []
    verdicts = [
        assess(Variant(name, "cuda"), machine, torch_version)
        for name in tables.CUDA_VARIANTS
    ]
    forcing: dict[int, NvidiaGpu] = {}
    for verdict in verdicts:
        if not verdict.usable:
            steps.append(f"{verdict.variant}: skipped, {'; '.join(verdict.reasons)}")
            candidates.append((verdict, None))
            forcing.update((gpu.index, gpu) for gpu in verdict.uncovered)
            continue
        offer = offers(verdict.variant)
        candidates.append((verdict, offer))
        if offer.available is False:
            steps.append(f"{verdict.variant}: skipped, {offer.detail}")
            continue
        steps.append(f"{verdict.variant}: chosen, {'; '.join(verdict.reasons)}")
        if offer.available is None:
            steps.append(f"{verdict.variant}: {offer.detail}")
        forced = _forced_by(forcing.values(), verdict.variant)
        return Decision(verdict.variant, tuple(steps), forced, tuple(candidates))
    partial = _partial(verdicts, nvidia.gpus, offers, steps, candidates)
    if partial is not None:
        return partial
    return _fallback(steps, offers, "cpu: no CUDA variant fits", tuple(candidates))


def _partial(
    verdicts: list[Verdict],
    gpus: tuple[NvidiaGpu, ...],
    offers: Callable[[Variant], Offer],
    steps: list[str],
    candidates: list[tuple[Verdict, Offer | None]],
) -> Decision | None:
    """No variant builds for every GPU: take the one that serves most of them."""
    ranked = sorted(
        (
            v
            for v in verdicts
            if v.driver_ok and v.uncovered and len(v.uncovered) < len(gpus)
        ),
        key=lambda v: len(v.uncovered),
    )
    for verdict in ranked:
        offer = offers(verdict.variant)
        if offer.available is False:
            continue
        left_out = ", ".join(str(gpu) for gpu in verdict.uncovered)
        steps.append(
            f"no variant builds for every GPU; {verdict.variant} serves the most, "
            f"leaving out {left_out}"
        )
        return Decision(
            verdict.variant,
            tuple(steps),
            f"{left_out} cannot be served together with the other GPUs",
            tuple(candidates),
        )
    return None


def _fallback(
    steps: list[str],
    offers: Callable[[Variant], Offer],
    reason: str,
    candidates: tuple[tuple[Verdict, Offer | None], ...] = (),
) -> Decision:
    # cpu is the only answer left: nothing to decide, so no index is asked.
    steps.append(reason)
    return Decision(CPU, tuple(steps), None, candidates)


def _decide_rocm(machine: Machine, offers: Callable[[Variant], Offer]) -> Decision:
    rocm = machine.rocm
    assert rocm is not None
    steps = [
        f"ROCm {rocm.version or '(version unknown)'}; "
        + ", ".join(str(gpu) for gpu in rocm.gpus)
    ]
    candidates: list[tuple[Verdict, Offer | None]] = []
    for name in _rocm_candidates(rocm.major_minor):
        verdict = assess(Variant(name, "rocm"), machine)
        if not verdict.usable:
            continue
        offer = offers(verdict.variant)
        candidates.append((verdict, offer))
        if offer.available is False:
            steps.append(f"{name}: skipped, {offer.detail}")
            continue
        steps.append(f"{name}: chosen, {'; '.join(verdict.reasons)}")
        return Decision(verdict.variant, tuple(steps), None, tuple(candidates))
    return _fallback(steps, offers, "cpu: no ROCm variant fits", tuple(candidates))


def _rocm_candidates(have: tuple[int, int] | None) -> list[str]:
    names = list(tables.ROCM_VARIANTS)
    if have is None:
        return names
    exact = f"rocm{have[0]}.{have[1]}"
    ordered = [exact] + [n for n in names if n != exact]
    return [n for n in ordered if _rocm_version(n)[0] == have[0]]


def _forced_by(gpus: Iterable[NvidiaGpu], chosen: Variant) -> str | None:
    gpus = sorted(gpus, key=lambda gpu: gpu.index)
    if not gpus:
        return None
    names = ", ".join(str(gpu) for gpu in gpus)
    return f"{names} forced {chosen}: newer variants are not built for it"


def _rocm_version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.removeprefix("rocm").split("."))


def _capability(gpu: NvidiaGpu) -> str:
    if gpu.compute_capability is None:
        return "unknown"
    return f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}"


def _dotted(version: tuple[int, int] | None) -> str:
    return "?" if version is None else f"{version[0]}.{version[1]}"

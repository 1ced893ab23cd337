"""Turn what the machine has and what the index offers into a variant, with reasons.

Pure: the machine comes from :mod:`poetry_torch_cuda.machine.probe`, what the index
offers from a callable, so every rule here is tested without GPUs or network.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
from typing import TYPE_CHECKING

from packaging.version import Version

from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.project.variants import Variant


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable

    from poetry_torch_cuda.index.offers import Offer
    from poetry_torch_cuda.machine.probe import Jetson
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.machine.probe import NvidiaDriver
    from poetry_torch_cuda.machine.probe import NvidiaGpu
    from poetry_torch_cuda.machine.probe import Rocm

    Offers = Callable[[Variant], Offer]

CPU = Variant("cpu", "cpu")
#: The rule that admits a build on a driver below its CUDA version's own.
COMPAT_RULE = "minor-version compatibility"
#: The rule that admits a build on its CUDA version's full-support driver.
FULL_RULE = "full support"
#: L4T from this release on (JetPack 7, Jetson Thor) uses the SBSA userspace
#: that PyTorch's aarch64 wheels are built for (pytorch/pytorch PR 161378:
#: Thor in the aarch64 builds, "when Orin be SBSA, we can include it";
#: pollen-robotics/microduck_rl issue 38; OpenRAL/openral PR 167).
JETSON_SBSA_L4T = 38
#: Older L4T (JetPack 4-6: Nano, TX2, Xavier, Orin) is not served by PyTorch's
#: variant indexes: their aarch64 wheels are SBSA builds (bitsandbytes PR 1941).
JETSON_NOTE = (
    "PyTorch's download.pytorch.org aarch64 CUDA wheels are SBSA builds and do "
    "not run on Jetson L4T before R38 (JetPack 7); NVIDIA publishes Jetson wheels "
    "per JetPack (pypi.jetson-ai-lab.io, or the l4t-pytorch container): point "
    "index-url at such an index, or keep cpu"
)
XPU_NOTE = (
    "Intel GPUs are not detected automatically; set the variant to xpu to use one"
)


@dataclass(frozen=True)
class Verdict:
    """Whether ``variant`` runs on this machine, and why (``None``: cannot tell)."""

    variant: Variant
    usable: bool | None
    reasons: tuple[str, ...]
    uncovered: tuple[NvidiaGpu, ...] = ()
    driver_ok: bool = True
    #: Which rule admitted the build: :data:`COMPAT_RULE` or :data:`FULL_RULE`.
    rule: str | None = None

    def serves_some(self, gpus: int) -> bool:
        """Whether the build runs on some of the ``gpus`` GPUs, leaving the others out."""
        return self.driver_ok and 0 < len(self.uncovered) < gpus

    @property
    def warning(self) -> str | None:
        """``status``'s (and a move's) warning of a build that does not run here."""
        if self.usable is not False:
            return None
        fix = "`poetry torch-cuda detect` shows which variant runs here"
        fix = fix if self.driver_ok else f"update the driver, or {fix}"
        return f"{self.variant} {self.reasons[-1]}; {fix}"


@dataclass(frozen=True)
class Decision:
    """What ``auto`` picks, the steps that led there and who forced the choice;
    ``left_out``: GPUs the pick knowingly does not serve (no variant serves all)."""

    variant: Variant
    steps: tuple[str, ...]
    forced_by: str | None = None
    candidates: tuple[tuple[Verdict, Offer | None], ...] = ()
    left_out: tuple[NvidiaGpu, ...] = ()
    #: cpu on an NVIDIA machine: the lowest driver that would make a build auto's pick.
    update: tuple[str, Variant] | None = None

    @property
    def forced_by_memory(self) -> bool:
        """cpu, although a build the rule admits was only skipped as remembered."""
        return self.variant == CPU and any(
            offer is not None and offer.remembered for _, offer in self.candidates
        )


def assess(
    variant: Variant, machine: Machine, torch_version: str | None = None
) -> Verdict:
    """Whether ``variant``'s builds run on ``machine`` (driver, GPU architectures, ROCm)."""
    if (missing := variant.not_built_for(machine.sys_platform)) is not None:
        return Verdict(variant, False, (missing,))
    if variant.kind == "cpu":
        return Verdict(variant, True, ("runs on any machine",))
    if old_jetson(machine.jetson) and variant.kind == "cuda":
        return Verdict(variant, False, (f"{machine.jetson}: {JETSON_NOTE}",))
    if variant.kind == "rocm":
        return _assess_rocm(variant, machine)
    if variant.kind == "cuda":
        return _assess_cuda(variant, machine, torch_version)
    why = XPU_NOTE if variant.kind == "xpu" else "auto is not a build"
    return Verdict(variant, None, (why,))


def decide(
    machine: Machine, offers: Offers, torch_version: str | None = None
) -> Decision:
    """The newest variant the driver runs, built for every GPU and on the index; else
    the one serving most GPUs; else cpu. A CUDA variant newer than the tables is
    never a candidate; the machine's own ROCm version is, when the index has it.
    An index that cannot say is trusted only for what the torch release publishes."""
    offers = _published(offers, torch_version)
    if CPU.not_built_for(machine.sys_platform) is not None:  # not even cpu: macOS
        note = "macOS: PyTorch publishes only PyPI's default build (CPU and MPS)"
        return Decision(CPU, (f"{note}; Poetry installs it as usual",))
    if old_jetson(machine.jetson):
        why = "cpu: no PyTorch variant index serves this board"
        return Decision(CPU, (f"{machine.jetson}: {JETSON_NOTE}", why))
    if machine.nvidia is not None:
        return _decide_cuda(machine, offers, torch_version)
    if machine.rocm is not None:
        return _decide_rocm(machine, machine.rocm, offers)
    steps = (*machine.notes, "no NVIDIA or AMD GPU found", XPU_NOTE)
    why = "the GPU cannot be checked" if machine.smi_failure else "no GPU to build for"
    return Decision(CPU, (*steps, f"cpu: {why}"))


def old_jetson(jetson: Jetson | None) -> bool:
    """A Jetson on L4T before R38 (or of unknown L4T): PyTorch's indexes do not serve it."""
    if jetson is None:
        return False
    return jetson.l4t is None or jetson.l4t[0] < JETSON_SBSA_L4T


def _assess_cuda(variant: Variant, machine: Machine, torch: str | None) -> Verdict:
    """The driver rule ([NV-COMPAT] in :mod:`.tables`): a build runs when the driver
    is at its CUDA major's floor and SASS covers every GPU, or the driver fully
    supports its CUDA and SASS or PTX covers every GPU."""
    nvidia = machine.nvidia
    if nvidia is None:  # nvidia-smi failed: a driver to mend, or no GPU at all
        failed = machine.smi_failure and "the GPU cannot be checked: nvidia-smi failed"
        why = failed or "no NVIDIA driver found"
        return Verdict(variant, None if failed else False, (why,), driver_ok=False)
    cuda = variant.cuda_version
    assert cuda is not None
    platform, driver, dotted = machine.sys_platform, nvidia.version, tables.dotted(cuda)
    full = tables.minimum_driver(cuda, platform)
    floor = tables.compat_floor(cuda[0], platform)
    full_ok, floor_ok = tables.at_least(driver, full), tables.at_least(driver, floor)
    notes = tuple(filter(None, [predates(variant, platform)]))
    newest = tables.newest_cuda(driver, platform)
    older = "is older than every CUDA"
    supports = f"supports CUDA {tables.dotted(newest)}" if newest else older
    archs = tables.arch_list_for(variant.name, torch, machine.machine, platform)
    if archs is None and full_ok:
        why = f"driver {driver} fully supports CUDA {dotted}; "
        why += "no architecture list known, GPUs not checked"
        return Verdict(variant, True, (*notes, why), rule=FULL_RULE)
    if archs is None:
        why = f"cannot tell whether driver {driver} runs it"
        return Verdict(variant, None, (*notes, why))
    built = tables.describe_archs(archs)
    unknown = [gpu for gpu in nvidia.gpus if gpu.compute_capability is None]
    jit: list[NvidiaGpu] = []
    uncovered: list[NvidiaGpu] = []
    for gpu in nvidia.gpus:
        cc = gpu.compute_capability
        if cc is not None and tables.sass_for(archs, cc) is None:
            (uncovered if tables.ptx_for(archs, cc) is None else jit).append(gpu)
    if not floor_ok and not full_ok:
        why = f"needs {driver_needs(cuda, platform)}; driver {driver} {supports}"
        return Verdict(variant, False, (*notes, why), driver_ok=False)
    if uncovered:
        missing = ", ".join(f"{gpu.sm} ({gpu.name})" for gpu in uncovered)
        why = f"not built for {missing}: builds {built}"
        # The rest run under the driver only by SASS, or by full support.
        served = full_ok or not (jit or unknown)
        return Verdict(variant, False, (*notes, why), tuple(uncovered), served)
    if full_ok:
        reasons = [*notes, f"driver {driver} fully supports CUDA {dotted}"]
        if jit:
            jitted = ", ".join(gpu.sm for gpu in jit)
            reasons.append(f"builds {built}; {jitted} runs through PTX JIT")
        elif nvidia.gpus and not unknown:
            reasons.append(f"builds {built}, which covers every GPU")
        for gpu in unknown:
            reasons.append(f"{gpu}: compute capability unknown, not checked")
        return Verdict(variant, True, tuple(reasons), rule=FULL_RULE)
    if not jit and not unknown and nvidia.gpus:
        at_floor = f"driver {driver} >= {floor}, the CUDA {cuda[0]}.x "
        at_floor += "minor-version-compatibility floor"
        sass = f"SASS in {built} covers every GPU, so nothing is JIT-compiled "
        sass += f"(features that need a CUDA {dotted} driver are unavailable)"
        return Verdict(variant, True, (*notes, at_floor, sass), rule=COMPAT_RULE)
    if jit:
        who = ", ".join(f"{gpu.sm} ({gpu.name})" for gpu in jit)
        why = f"{who} has only PTX in {built}; JIT-compiling it"
    else:
        why = "GPU architectures unknown, so only full support counts; it"
    why += f" needs driver >= {full or '?'} (full CUDA {dotted} support)"
    why += f"; driver {driver} {supports}"
    return Verdict(variant, False, (*notes, why), driver_ok=False)


def driver_needs(cuda: tuple[int, int], sys_platform: str) -> str:
    """The driver a CUDA ``cuda`` build needs under each rule, the one wording:
    ``driver >= 580 (CUDA 13.x minor-version compatibility) or >= 595.45.04 (full
    CUDA 13.2 support)``."""
    floor = tables.compat_floor(cuda[0], sys_platform)
    full = tables.minimum_driver(cuda, sys_platform)
    dotted = tables.dotted(cuda)
    rules = []
    if floor is not None:
        rules.append(f">= {floor} (CUDA {cuda[0]}.x minor-version compatibility)")
    if full is not None:
        rules.append(f">= {full} (full CUDA {dotted} support)")
    if not rules:
        return f"a driver with full CUDA {dotted} support (none in the table)"
    return "driver " + " or ".join(rules)


def predates(variant: Variant, sys_platform: str) -> str | None:
    """The one note on a variant newer than the tables (``cu133``) and how it is
    judged instead; ``None`` for a variant the tables know."""
    if tables.is_known_variant(variant.name):
        return None
    how, cuda = "decided by version", variant.cuda_version
    if cuda is not None:
        floor = tables.compat_floor(cuda[0], sys_platform)
        nearest = tables.nearest_known(variant.name)
        how = f"the CUDA {cuda[0]}.x floor {floor} applies"
        how = how if floor else "no driver floor known"
        taken = f"GPU list taken from {nearest}"
        how += f", {taken if nearest else 'no GPU list can be inferred'}"
    return f"the tables predate {variant} ({tables.UPDATE_HINT}); {how}"


def _assess_rocm(variant: Variant, machine: Machine) -> Verdict:
    rocm = machine.rocm
    if rocm is None:
        return Verdict(variant, False, ("no ROCm GPU found",))
    wanted, version = tables.rocm_version(variant.name), rocm.version
    have = None if version is None else tables.rocm_version(version)[:2]
    notes = tuple(filter(None, [predates(variant, machine.sys_platform)]))
    if have is None:
        return Verdict(variant, True, (*notes, "ROCm version unknown; not checked"))
    if wanted[:2] == have:
        return Verdict(variant, True, (*notes, f"matches ROCm {version}"))
    if wanted[0] == have[0] and wanted[:2] < have:
        older = f"older than ROCm {version}, same major"
        return Verdict(variant, True, (*notes, older))
    return Verdict(variant, False, (*notes, f"does not match ROCm {version}"))


def _decide_cuda(machine: Machine, offers: Offers, torch: str | None) -> Decision:
    nvidia = machine.nvidia
    assert nvidia is not None
    steps = [driver_step(nvidia, machine.sys_platform)]
    for gpu in nvidia.gpus:
        steps.append(f"{gpu}: compute capability {gpu.capability or 'unknown'}")
    if not nvidia.gpus:
        steps.append("GPU models unknown (nvidia-smi did not list them)")
    names = [Variant(name, "cuda") for name in tables.CUDA_VARIANTS]  # newest first
    verdicts = [assess(variant, machine, torch) for variant in names]
    chosen, candidates = _first_offered(verdicts, offers, steps)
    if chosen is not None:
        newer = verdicts[: verdicts.index(chosen)]
        forcing = {gpu.index: gpu for verdict in newer for gpu in verdict.uncovered}
        who = ", ".join(str(forcing[index]) for index in sorted(forcing))
        why = f"{who} forced {chosen.variant}: newer variants are not built for it"
        return Decision(chosen.variant, tuple(steps), why if who else None, candidates)
    # No variant builds for every GPU: take the one that serves most of them.
    fewer = [v for v in verdicts if v.serves_some(len(nvidia.gpus))]
    for verdict in sorted(fewer, key=lambda v: len(v.uncovered)):
        if offers(verdict.variant).available is False:
            continue
        left_out = ", ".join(str(gpu) for gpu in verdict.uncovered)
        most = f"{verdict.variant} serves the most, leaving out {left_out}"
        why = f"{left_out} cannot be served together with the other GPUs"
        none = "no variant builds for every GPU"
        if any(v.usable for v in verdicts):  # one does: skipped above
            none = "every variant built for every GPU is skipped"
            why = f"{left_out} is left out: {none}"
        steps.append(f"{none}; {most}")
        return Decision(
            verdict.variant, tuple(steps), why, candidates, verdict.uncovered
        )
    update = _driver_update(candidates, machine, nvidia, offers, torch)
    fits = "; a driver >= {} runs {}".format(*update) if update else ""
    steps.append(f"cpu: no CUDA variant fits{fits}")
    return Decision(CPU, tuple(steps), None, candidates, update=update)


def _published(offers: Offers, torch_version: str | None) -> Offers:
    """``offers``, where an index that cannot say is trusted only for a variant the
    tables know and ``torch_version``'s release publishes."""
    row = tables.torch_release(torch_version)

    def offer(variant: Variant) -> Offer:
        answer = offers(variant)
        if answer.available is not None:
            return answer
        if not tables.is_known_variant(variant.name):  # the machine's own rocmX.Y
            why = "newer than the tables"
        elif row and variant.name not in row.cuda + row.rocm:
            why = f"torch {row.release} does not publish it (PyTorch's release matrix)"
        else:
            return answer
        detail = f"{why} and the index could not be asked"
        return replace(answer, available=False, detail=detail)

    return offer


def _first_offered(
    verdicts: Iterable[Verdict], offers: Offers, steps: list[str]
) -> tuple[Verdict | None, tuple[tuple[Verdict, Offer | None], ...]]:
    """The first admitted verdict the index has, every one with its offer; steps said."""
    candidates: list[tuple[Verdict, Offer | None]] = []
    for verdict in verdicts:
        variant, rule = verdict.variant, verdict.rule
        offer = offers(variant) if verdict.usable else None
        candidates.append((verdict, offer))
        if offer is None:
            steps.append(f"{variant}: skipped, {'; '.join(verdict.reasons)}")
        elif offer.available is False:
            by = f"; it would run by {rule}" if rule else ""
            steps.append(f"{variant}: skipped, {offer.detail}{by}")
        else:
            by = f" by {rule}" if rule else ""
            unsure = f"; {offer.detail}; assuming it has it" * (offer.available is None)
            steps.append(f"{variant}: chosen{by}, {'; '.join(verdict.reasons)}{unsure}")
            return verdict, tuple(candidates)
    return None, tuple(candidates)


def driver_step(nvidia: NvidiaDriver, platform: str) -> str:
    """The driver and the newest CUDA it runs, in words (``detect`` and ``status``)."""
    text = f"NVIDIA driver {nvidia.version} (from {nvidia.source}) "
    if newest := tables.newest_cuda(nvidia.version, platform):
        text += f"fully supports CUDA {tables.dotted(newest)} and older"
    else:
        text += "is older than every CUDA in the table"
    if (major := tables.compat_major(nvidia.version, platform)) is not None:
        text += f"; runs any CUDA {major}.x build whose SASS covers the GPUs "
        text += "(minor-version compatibility)"
    return text


def _decide_rocm(machine: Machine, rocm: Rocm, offers: Offers) -> Decision:
    gpus = ", ".join(str(gpu) for gpu in rocm.gpus)
    steps = [f"ROCm {rocm.version or '(version unknown)'}; {gpus}"]
    names = list(tables.ROCM_VARIANTS)
    if rocm.version is not None:  # the machine's own rocm<X.Y> first, then its major
        have = tables.rocm_version(rocm.version)
        exact = f"rocm{have[0]}.{have[1]}"
        same = [n for n in names if tables.rocm_version(n)[0] == have[0]]
        names = [exact, *(n for n in same if n != exact)]
    verdicts = [assess(Variant(name, "rocm"), machine) for name in names]
    chosen, candidates = _first_offered(verdicts, offers, steps)
    if chosen is None:
        steps.append("cpu: no ROCm variant fits")
    return Decision(chosen.variant if chosen else CPU, tuple(steps), None, candidates)


def cpu_fallback_warning(
    decision: Decision | None, machine: Machine | None
) -> str | None:
    """Why ``auto`` settles for cpu next to a GPU and what to do; else ``None``."""
    gpu = machine and (machine.nvidia or machine.rocm)
    if decision is None or machine is None or not gpu or decision.variant != CPU:
        return None
    groups: dict[str, list[str]] = {}
    for verdict, offer in decision.candidates:
        if not verdict.driver_ok:
            group = "the driver is too old for"
        elif verdict.uncovered:
            group = "not built for " + ", ".join(g.sm for g in verdict.uncovered)
        elif offer is not None and offer.remembered:
            group = "remembered as failing here (`poetry torch-cuda detect --forget`)"
        elif offer is not None and offer.available is False:
            group = "not on the index for this torch"
        else:
            continue
        groups.setdefault(group, []).append(verdict.variant.name)
    why = "; ".join(f"{group}: {', '.join(v)}" for group, v in groups.items())
    fix = "see `poetry torch-cuda detect`"
    if decision.update:
        fix = "update the NVIDIA driver (>= {} runs {})".format(*decision.update)
    gpus = ", ".join(g.name for g in gpu.gpus) or "an NVIDIA GPU"
    has = f"driver {gpu.version}" if machine.nvidia else f"ROCm {gpu.version or '?'}"
    why = why or decision.steps[-1].removeprefix("cpu: ")
    head = f"auto installs the CPU build next to {gpus} ({has}): {why}."
    return f'{head}\nTo use the GPU, {fix}; to mean the CPU build, set variant = "cpu".'


def _driver_update(
    candidates: Iterable[tuple[Verdict, Offer | None]],
    machine: Machine,
    nvidia: NvidiaDriver,
    offers: Offers,
    torch_version: str | None,
) -> tuple[str, Variant] | None:
    """The lowest driver that would make a build the driver alone held back
    ``auto``'s pick here, and that build; ``None``: no driver would help."""
    platform, fixes = machine.sys_platform, []  # (driver, build)
    for verdict, _ in candidates:
        variant, cuda = verdict.variant, verdict.variant.cuda_version
        if verdict.driver_ok or cuda is None:
            continue
        floor = tables.compat_floor(cuda[0], platform)
        for driver in filter(None, (floor, tables.minimum_driver(cuda, platform))):
            newer = replace(machine, nvidia=replace(nvidia, version=driver))
            after = assess(variant, newer, torch_version)
            serves = after.driver_ok and len(after.uncovered) < len(nvidia.gpus)
            if after.usable or serves:
                fixes.append((driver, variant))
                break
    fixes.sort(key=lambda fix: Version(fix[0]))  # lowest driver; a tie: newest build
    return next((fix for fix in fixes if offers(fix[1]).available is not False), None)

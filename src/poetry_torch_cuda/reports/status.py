"""Everything ``poetry torch-cuda status`` reports, gathered once, rendered twice;
its warnings are what ``--check`` fails on."""

from __future__ import annotations

import difflib
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.build_info import read_builds
from poetry_torch_cuda.install.planning import cuda_majors
from poetry_torch_cuda.install.planning import foreign_wheels
from poetry_torch_cuda.install.planning import plan_for
from poetry_torch_cuda.install.undo import dead_stashes
from poetry_torch_cuda.install.undo import family_problems
from poetry_torch_cuda.install.undo import pip_leftovers
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.detection import cpu_fallback_warning
from poetry_torch_cuda.machine.detection import predates
from poetry_torch_cuda.machine.probe import probe_nvcc
from poetry_torch_cuda.machine.resolution import left_to_pypi
from poetry_torch_cuda.machine.resolution import resolve
from poetry_torch_cuda.project.locked import STALE_LOCK
from poetry_torch_cuda.project.locked import is_stale
from poetry_torch_cuda.project.protection import is_cuda_bound
from poetry_torch_cuda.project.selection import LockView
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Iterable

    from packaging.utils import NormalizedName

    from poetry_torch_cuda.context import RunContext
    from poetry_torch_cuda.environment.installed import InstalledEnvironment
    from poetry_torch_cuda.install.build_info import InstalledBuild
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.machine.resolution import Resolution
    from poetry_torch_cuda.project.config import TorchCudaConfig

SYNC_HINT = "run `poetry torch-cuda sync`"


@dataclass(frozen=True)
class PackageStatus:
    """One configured package: what the lock wants, what is installed, whether it fits."""

    name: str
    locked: str | None
    wanted: str | None
    installed: InstalledBuild | None
    matches: bool
    #: Why a configured package is not installed (``not in the lock``, ``in the
    #: lock, only in group gpu, not selected (--with gpu)``…).
    absent: str | None = None


@dataclass
class StatusReport:
    """The project's variant, its torch packages, the machine, and what is out of line."""

    resolution: Resolution
    #: The variant's index, its credentials masked (the one place that masks it).
    index_url: str
    machine: Machine
    packages: list[PackageStatus] = field(default_factory=list)
    cuda_wheels: dict[str, str] = field(default_factory=dict)
    orphans: list[NormalizedName] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The CUDA release of the nvcc found (only ``status`` asks for it).
    nvcc: str | None = None

    @property
    def in_line(self) -> bool:
        """Whether nothing needs attention (``--check`` exits 0)."""
        return not self.warnings

    def to_json(self) -> dict[str, Any]:
        """JSON form, the one ``status --json`` prints."""
        resolution, decision = self.resolution, self.resolution.decision
        return {
            "variant": {
                "configured": resolution.configured.name,
                "origin": resolution.origin,
                "resolved": resolution.variant.name,
                "index_url": self.index_url,
                "auto_steps": list(decision.steps) if decision else None,
                "forced_by": decision.forced_by if decision else None,
            },
            "packages": [asdict(package) for package in self.packages],
            "cuda_wheels": dict(sorted(self.cuda_wheels.items())),
            "orphans": self.orphans,
            "machine": {**self.machine.to_json(), "nvcc": self.nvcc},
            "warnings": self.warnings,
            "notes": self.notes,
            "ok": self.in_line,
        }


def build_report(ctx: RunContext, machine: Machine) -> StatusReport:
    """Gather the status of ``ctx.env`` for ``ctx.config`` on ``machine``, then word it.
    A configured package is required when the env holds it, or when ``poetry install``
    with the options given (else its default groups) selects it here."""
    config, poetry, env, installed = ctx.config, ctx.poetry, ctx.env, ctx.installed
    names = config.package_names
    warnings = [STALE_LOCK] if is_stale(poetry) else []
    try:
        view = LockView(poetry, env, ctx.selection.or_default(poetry), ctx.installs)
        locked = view.state(names, installed)
    except TorchCudaError as error:  # no lock: the wanted versions are unknown
        if poetry.locker.is_locked():  # a configured package refused: as everywhere
            raise
        locked, view, warnings = None, None, [str(error)]
    versions = None if view is None else view.versions
    resolution = resolve(config, versions, ctx, machine=machine)
    variant, url = resolution.variant, mask_url(config.index_url(resolution.variant))
    report = StatusReport(
        resolution, url, machine, warnings=warnings, nvcc=probe_nvcc()
    )
    not_built = left_to_pypi(variant, machine.sys_platform)
    targets = {}
    unmoved: dict[str, tuple[str, str, str]] = {}
    majors: frozenset[int] = frozenset()
    if locked is not None and not_built is None:
        plan = plan_for(config, variant, locked, installed)
        targets = {t.name: t for t in (*plan.install, *plan.satisfied)}
        report.cuda_wheels = {
            n: d.version for n in plan.sweepable if (d := installed.get(n)) is not None
        }
        # What a sync removes: none before a build that changes (one not installed
        # too: what it needs is `poetry install`'s to tell), the sweep after it.
        report.orphans = list(plan.remove or plan.then_remove)
        majors = cuda_majors(targets.values(), installed)
        unmoved = plan.unmoved(poetry)  # what no install moves
        report.warnings += [warning for warning, *_ in unmoved.values()]
    # torch-cuda.lock, read once: what the next install takes, else another variant's
    # (a note), and the files it names (below)
    from poetry_torch_cuda.lockfile.service import lock_problem  # not at a no-op

    lock, stale, other = (
        lock_problem(poetry, variant, whole=True) if targets else (None,) * 3
    )
    if stale and stale != STALE_LOCK:  # a stale poetry.lock is said already
        report.warnings.append(stale)
    elif other and not stale:
        report.notes.append(other)
    decision = resolution.decision
    if not_built is not None:
        report.notes.append(not_built)
    elif variant.kind in ("cuda", "rocm"):
        if (note := predates(variant, machine.sys_platform)) is not None:
            report.notes.append(note)
        pin = (versions or {}).get(canonicalize_name("torch"))
        verdict = assess(variant, machine, pin if "torch" in names else None)
        gpu_found = machine.nvidia if variant.kind == "cuda" else machine.rocm
        if gpu_found is None and machine.jetson is None:  # "no NVIDIA driver found"
            if not machine.smi_failure:  # a failing nvidia-smi is warned of below
                report.notes.append(
                    f"{verdict.reasons[0]} on this machine: {variant}'s torch runs on the "
                    "CPU only here"
                )
        elif verdict.warning and not (decision and decision.left_out):
            report.warnings.append(verdict.warning)
    # Poetry adds what is missing, and its run's hook the family's wheels.
    add = f"run {ctx.selection.install}"
    builds = read_builds(names, installed)
    for name in (canonicalize_name(entry.name) for entry in config.packages):
        build, target = builds.get(name), targets.get(name)
        wanted = str(target.version or target.specifier or "") if target else None
        why = None if build is not None or view is None else view.why_absent(name)
        fits = name not in unmoved  # without a target: unless no install moves it
        if target is not None:  # a build a foreign wheel makes the plan reinstall fits
            fits = target.is_satisfied_by(installed.version(name), variant)
        pin, wanted = (versions or {}).get(name), wanted or None
        report.packages.append(PackageStatus(name, pin, wanted, build, fits, why))
        if fits:  # always, without a lock or builds for this platform
            continue
        if build is None:  # held but not selected: only sync puts it back
            fix = add if view is None or name in view.selected else SYNC_HINT
            report.warnings.append(f"{name} {wanted} is not installed; {fix}")
        elif wanted is not None:  # else no install moves it: said already
            report.warnings.append(
                f"{name} {build.version} ({build.build}) is installed, but "
                f"{variant} wants {wanted}; {SYNC_HINT}"
            )
    if foreign := foreign_wheels(report.orphans, majors):
        report.warnings.append(
            f"CUDA {_and(foreign.values())} wheels that nothing needs are installed "
            f"beside the CUDA {_and(majors)} build ({', '.join(foreign)}): the "
            "families' wheels share file paths, so they may have replaced the "
            "build's libraries; `poetry torch-cuda sync` reinstalls the build and "
            "removes them"
        )
    if rest := [name for name in report.orphans if name not in foreign]:
        report.warnings.append(
            f"CUDA wheels nothing needs are installed ({', '.join(rest)}); {SYNC_HINT}"
        )
    if decision and decision.forced_by and decision.forced_by not in decision.steps:
        report.notes.append(decision.forced_by)
    cuda = (torch := builds.get("torch")) and torch.cuda
    major = (cuda or "").split(".")[0]
    nvcc = report.nvcc
    if nvcc and cuda and not cuda.endswith(".x") and nvcc.split(".")[0] != major:
        report.notes.append(
            f"nvcc {nvcc} and torch's CUDA {cuda} differ in major version: "
            "building CUDA extensions for this torch needs a CUDA "
            f"{major}.x toolkit (running torch does not need nvcc)"
        )
    locks = None if view is None else view.names
    damaged = family_problems(env, installed, names, False, locks, add, lock, unmoved)
    report.warnings += [f"{p}{f': {why}' if why else ''}; {f}" for p, why, f in damaged]
    report.warnings += dead_stashes(env.path) + pip_leftovers(env)
    if machine.smi_failure and (variant.kind == "cuda" or decision is not None):
        report.warnings.append(f"the GPU cannot be checked: {machine.smi_failure}")
    if view is not None:
        report.warnings += [
            f"{name}, a dependency of the project itself, is not installed; {add}"
            for name in sorted(view.selected.keys() & view.base.direct - names)
            if is_cuda_bound(name) and installed.get(name) is None
        ]
        report.warnings += unknown_entries(config, view.names)
        report.warnings += left_to_poetry(config, installed)
        # auto's cpu next to a GPU: a warning when only its memory forced it
        if (fallback := cpu_fallback_warning(decision, machine)) and decision:
            found = report.warnings if decision.forced_by_memory else report.notes
            found.append(fallback)
    return report


#: Packages download.pytorch.org/whl/<variant> publishes in a build per variant
#: (``+cu129`` local labels), read from its per-variant indexes 2026-11-27.
_PER_VARIANT = (
    "torch torchvision torchaudio torchtext torchrec torchao torchcodec "
    "fbgemm-gpu fbgemm-gpu-genai xformers torch-tensorrt"
)
PER_VARIANT = frozenset(canonicalize_name(name) for name in _PER_VARIANT.split())


def _and(numbers: Iterable[int]) -> str:
    return " and ".join(str(n) for n in sorted(set(numbers)))


def unknown_entries(config: TorchCudaConfig, lock_names: Iterable[str]) -> list[str]:
    """A message for each ``packages`` entry that names nothing the plugin can manage:
    none the lock has, with no version specifier (the plugin installs those itself) and
    not built per variant (the default list names torchaudio, which many projects lack)."""
    names = sorted({canonicalize_name(name) for name in lock_names})
    messages = []
    for requirement in config.packages:
        name = canonicalize_name(requirement.name)
        if name in names or requirement.specifier or name in PER_VARIANT:
            continue
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "fix or remove the entry"
        messages.append(
            f'[tool.poetry-torch-cuda] packages entry "{requirement}" names no '
            f"package in the lock, so no build is managed for it: {hint}"
        )
    return messages


def left_to_poetry(
    config: TorchCudaConfig, installed: InstalledEnvironment
) -> list[str]:
    """A message for each installed per-variant package the configuration leaves out (an
    entry whose marker excludes the env chose Poetry's): PyPI's build, made for PyPI's
    torch (not one from a file, a directory, a URL or git: the project's own, PEP 610)."""
    configured = config.package_names
    if not any(installed.get(name) is not None for name in configured):
        return []
    messages = []
    every = (*config.packages, *config.elsewhere)
    entries = [f'"{requirement}"' for requirement in every]
    for name in sorted(PER_VARIANT - {canonicalize_name(r.name) for r in every}):
        distribution = installed.get(name)
        source = distribution and distribution.source
        if distribution is None or (source and source.read_text("direct_url.json")):
            continue
        fix = ", ".join([*entries, f'"{name}"'])
        messages.append(
            f"{name} {distribution.version} is installed but left to Poetry: PyTorch "
            f"builds it per variant, so PyPI's build does not fit the configured "
            f"torch. Add it to [tool.poetry-torch-cuda]: packages = [{fix}]"
        )
    return messages

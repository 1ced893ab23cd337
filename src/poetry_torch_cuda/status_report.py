"""Everything ``poetry torch-cuda status`` reports, gathered once, rendered twice.

The report is plain data (and JSON); the warnings are what ``--check`` fails
on: a driver too old for the variant, a GPU the variant is not built for, an
installed build other than the configured one, leftover CUDA wheels, no lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.urls import mask_url
from poetry_torch_cuda.install.build_info import read_builds
from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.machine.detection import assess


if TYPE_CHECKING:
    from collections.abc import Iterable

    from poetry.poetry import Poetry
    from poetry.utils.env import Env

    from poetry_torch_cuda.index.client import IndexClient
    from poetry_torch_cuda.install.build_info import InstalledBuild
    from poetry_torch_cuda.install.planning import Target
    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.machine.resolution import Resolution
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.selection import Selection

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

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "locked": self.locked,
            "wanted": self.wanted,
            "installed": None if self.installed is None else self.installed.to_json(),
            "matches": self.matches,
            "absent": self.absent,
        }


@dataclass
class StatusReport:
    """The project's variant, its torch packages, the machine, and what is out of line."""

    resolution: Resolution
    index_url: str
    machine: Machine
    packages: list[PackageStatus] = field(default_factory=list)
    cuda_wheels: dict[str, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def in_line(self) -> bool:
        """Whether nothing needs attention (``--check`` exits 0)."""
        return not self.warnings

    def to_json(self) -> dict[str, Any]:
        """JSON form, the one ``status --json`` prints."""
        resolution = self.resolution
        decision = resolution.decision
        return {
            "variant": {
                "configured": resolution.configured.name,
                "origin": resolution.origin,
                "resolved": resolution.variant.name,
                "index_url": mask_url(self.index_url),
                "auto_steps": list(decision.steps) if decision else None,
                "forced_by": decision.forced_by if decision else None,
            },
            "packages": [package.to_json() for package in self.packages],
            "cuda_wheels": dict(sorted(self.cuda_wheels.items())),
            "orphans": self.orphans,
            "machine": self.machine.to_json(),
            "warnings": self.warnings,
            "notes": self.notes,
            "ok": self.in_line,
        }


def build_report(
    config: TorchCudaConfig,
    poetry: Poetry,
    env: Env,
    machine: Machine,
    client: IndexClient,
    selection: Selection | None = None,
) -> StatusReport:
    """Gather the status of ``env`` for ``config`` on ``machine``."""
    from poetry_torch_cuda.install.installed import installed_environment
    from poetry_torch_cuda.install.planning import find_orphans
    from poetry_torch_cuda.install.protection import own_cuda_wheels
    from poetry_torch_cuda.install.reconcile import plan_for
    from poetry_torch_cuda.machine.resolution import resolve
    from poetry_torch_cuda.project.absence import lock_view
    from poetry_torch_cuda.project.locked import STALE_LOCK
    from poetry_torch_cuda.project.locked import is_stale
    from poetry_torch_cuda.project.selection import Selection
    from poetry_torch_cuda.project.selection import command_locked_state

    selection = selection or Selection(frozenset(), frozenset(), explicit=False)
    try:
        locked = command_locked_state(poetry, env, config.package_names, selection)
    except TorchCudaError:
        locked = None
    view = None if locked is None else lock_view(poetry, env, selection)
    resolution = resolve(
        config,
        poetry,
        env,
        None if view is None else view.versions,
        machine=machine,
        client=client,
    )
    variant = resolution.variant
    report = StatusReport(resolution, config.index_url(variant), machine)
    paths = [str(path) for path in env.site_packages.candidates]
    builds = read_builds(config.package_names, paths)
    managed = variant.has_builds_for(machine.sys_platform)
    if locked is None:
        report.warnings.append(
            "poetry.lock does not exist, so the wanted versions are unknown; "
            "run `poetry lock`"
        )
    elif is_stale(poetry):
        report.warnings.append(STALE_LOCK)
    targets = {}
    if locked is not None and managed:
        plan = plan_for(config, variant, locked, env)
        protected, installed = plan.protected, plan.installed
        targets = {t.name: t for t in (*plan.install, *plan.satisfied)}
        missing = {t.name for t in plan.install}
        for name in sorted(protected - config.package_names):
            distribution = installed.get(name)
            if distribution is not None:
                report.cuda_wheels[name] = distribution.version
        report.orphans = list(
            find_orphans(protected - config.package_names, targets.values(), installed)
        )
    else:
        missing = set()
    for requirement in config.packages:
        name = canonicalize_name(requirement.name)
        target = targets.get(name)
        locked_version = None if view is None else view.versions.get(name)
        installed_build = builds.get(name)
        report.packages.append(
            PackageStatus(
                name,
                locked_version,
                _wanted(target),
                installed_build,
                name not in missing,
                None
                if installed_build is not None or view is None
                else view.why_absent(name),
            )
        )
    _judge(report, config, locked is not None and managed)
    from poetry_torch_cuda.install.sweep import family_problems
    from poetry_torch_cuda.install.undo import dead_stashes

    report.warnings.extend(
        f"{problem}: the install is damaged; run `poetry torch-cuda sync --force`"
        for problem in family_problems(env, config.package_names)
    )
    report.warnings.extend(dead_stashes(env.path))
    installed = installed_environment(env)
    for name in own_cuda_wheels(poetry.package, env.marker_env):
        if name not in config.package_names and installed.get(name) is None:
            report.warnings.append(
                f"{name}, a dependency of the project itself, is not installed; "
                "run `poetry install`"
            )
    if view is not None:
        judge_packages(report, config, view.names, env)
    return report


def judge_packages(
    report: StatusReport, config: TorchCudaConfig, lock_names: Iterable[str], env: Env
) -> None:
    """Warn about entries naming nothing and per-variant packages left to Poetry;
    note ``auto`` settling for cpu next to an NVIDIA GPU."""
    from poetry_torch_cuda.install.installed import installed_environment
    from poetry_torch_cuda.machine.resolution import machine_findings
    from poetry_torch_cuda.project.package_checks import left_to_poetry
    from poetry_torch_cuda.project.package_checks import unknown_entries

    report.warnings.extend(unknown_entries(config, lock_names))
    report.warnings.extend(left_to_poetry(config, installed_environment(env)))
    notes, warnings = machine_findings(report.resolution.decision, report.machine)
    report.notes += notes
    report.warnings += warnings


def _judge(report: StatusReport, config: TorchCudaConfig, managed: bool) -> None:
    """Fill in warnings and notes."""
    resolution = report.resolution
    variant = resolution.variant
    machine = report.machine
    torch = next((p for p in report.packages if p.name == "torch"), None)
    torch_version = torch.locked if torch else None
    missing = variant.not_built_for(machine.sys_platform)
    if missing is not None:
        report.notes.append(f"{missing}: Poetry installs PyPI's default build here")
    elif variant.kind in ("cuda", "rocm"):
        if not tables.is_known_variant(variant.name):
            report.notes.append(
                f"the tables predate {variant} ({tables.UPDATE_HINT}); it is judged "
                "by rule: its CUDA major's driver floor and the GPU list of the "
                "nearest known variant"
            )
        verdict = assess(variant, machine, torch_version)
        gpu_found = machine.nvidia if variant.kind == "cuda" else machine.rocm
        if gpu_found is None and machine.jetson is None:
            kind = "NVIDIA driver" if variant.kind == "cuda" else "ROCm GPU"
            report.notes.append(
                f"no {kind} found on this machine: {variant}'s torch runs on the "
                "CPU only here"
            )
        elif verdict.usable is False:
            report.warnings.extend(f"{variant} {reason}" for reason in verdict.reasons)
    for package in report.packages:
        if package.matches or not managed:
            continue
        if package.installed is None:
            report.warnings.append(
                f"{package.name} {package.wanted} is not installed; {SYNC_HINT}"
            )
        else:
            report.warnings.append(
                f"{package.name} {package.installed.version} "
                f"({package.installed.build}) is installed, but {variant} wants "
                f"{package.wanted}; {SYNC_HINT}"
            )
    if report.orphans:
        report.warnings.append(
            f"CUDA wheels nothing needs are installed ({', '.join(report.orphans)}); "
            f"{SYNC_HINT}"
        )
    decision = resolution.decision
    if decision is not None and decision.forced_by:
        report.notes.append(decision.forced_by)
    _nvcc_note(report)


def _nvcc_note(report: StatusReport) -> None:
    nvcc = report.machine.nvcc
    torch = next((p for p in report.packages if p.name == "torch"), None)
    cuda = None if torch is None or torch.installed is None else torch.installed.cuda
    if nvcc is None or cuda is None or cuda.endswith(".x"):
        return
    if nvcc.split(".")[0] != cuda.split(".")[0]:
        report.notes.append(
            f"nvcc {nvcc} and torch's CUDA {cuda} differ in major version: "
            "building CUDA extensions for this torch needs a CUDA "
            f"{cuda.split('.')[0]}.x toolkit (running torch does not need nvcc)"
        )


def _wanted(target: Target | None) -> str | None:
    if target is None:
        return None
    if target.version is not None:
        return str(target.version)
    return str(target.specifier or "") or None

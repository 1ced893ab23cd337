"""``poetry torch-cuda status``: the variant, the installed builds, the machine, warnings."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option
from poetry.console.commands.group_command import GroupCommand

from poetry_torch_cuda.commands.base import NotCreatedEnv
from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.machine.detection import driver_step
from poetry_torch_cuda.machine.resolution import probe
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.selection import selection_options
from poetry_torch_cuda.reports.lock_view import fleet_checks
from poetry_torch_cuda.reports.status import build_report


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option

    from poetry_torch_cuda.reports.status import StatusReport


class StatusCommand(TorchCudaCommand, GroupCommand):
    """Report the configured and installed PyTorch builds and this machine's GPUs."""

    name = "torch-cuda status"
    description = (
        "Show the variant, the installed torch builds, the driver and GPUs; warn on "
        "mismatches."
    )
    options: ClassVar[list[Option]] = [
        option("json", None, "Print the report as JSON."),
        option("check", None, "Exit with status 1 when anything is out of line (CI)."),
        *selection_options(),
    ]
    help = (
        "Reads installed metadata only (torch is never imported) and asks nvidia-smi, "
        "rocminfo and nvcc when they are on PATH. With <c1>--check</> the command "
        "fails when the driver is too old for the variant, a GPU is not built into "
        "it, the installed build differs from the configured one, unused CUDA "
        "wheels are left, a packages entry names nothing in the lock, or a package "
        "PyTorch builds per variant is installed but left to Poetry, or a configured "
        "package `poetry install` selects here (with the groups and extras options "
        "given, else its default groups) is missing, or torch-cuda.lock does not hold "
        "what an install of the variant takes (lock --check's words)."
    )

    def work(self) -> int:
        ctx = self.context()
        report = build_report(ctx, probe(self.env))
        fleet = fleet_checks(ctx)
        report.warnings += [
            f"target {c.summary()}; `poetry torch-cuda detect --target "
            f"{c.target.name}` shows which variant runs there"
            for c in fleet
            if not c.ok
        ]
        where = None if isinstance(self.env, NotCreatedEnv) else str(self.env.path)
        data = {**report.to_json(), "environment": where}
        if not self.as_json({**data, "targets": [c.to_json() for c in fleet]}):
            self._render(report, where, [c.summary() for c in fleet if c.ok])
        return 1 if self.option("check") and not report.in_line else 0

    def _render(
        self, report: StatusReport, where: str | None, targets: list[str]
    ) -> None:
        resolution, decision = report.resolution, report.resolution.decision
        variant = f"<c2>{resolution.variant}</> (from {esc(resolution.origin)})"
        if resolution.configured.kind == "auto":
            variant = f"<c2>auto</> -> {variant}"
        self._rows("Variant", [variant])
        if decision is not None and decision.steps and not self.io.is_verbose():
            self._rows("auto", [f"{esc(decision.steps[-1])} (-v: every step)"])
        self._rows("Index", [esc(report.index_url)])
        where = where or "not created yet (`poetry install` creates it)"
        self._rows("Environment", [esc(where)])
        packages = []
        for package in report.packages:
            if (installed := package.installed) is not None:
                state = f"<c2>{esc(installed.version)}</>  {esc(installed.build)}"
            else:
                why = f" ({esc(package.absent)})" if package.absent else ""
                state = f"<comment>not installed</>{why}"
            packages.append(f"{package.name:<12} {state}")
        self._rows("Installed", packages)
        wheels = ", ".join(f"{n} {v}" for n, v in sorted(report.cuda_wheels.items()))
        self._rows("CUDA wheels", [esc(wheels) or "none"])
        self._rows("Orphans", [esc(", ".join(report.orphans)) or "none"])
        self._rows("Machine", _machine_lines(report))
        self._rows("Targets", [esc(line) for line in targets])
        if decision is not None and self.io.is_verbose():
            self.line("<info>auto</>")
            for step in decision.steps:
                self.line(f"  - {esc(step)}")
        for note in report.notes:
            self.line(f"<comment>Note:</> {esc(note)}")
        for warning in report.warnings:
            self.line(f"<warning>Warning:</> {esc(warning)}")
        if report.in_line:
            self.line("<success>Everything is in line.</>")

    def _rows(self, title: str, lines: list[str]) -> None:
        for i, line in enumerate(lines):
            head = f"<info>{title}</>" + " " * (13 - len(title)) if i == 0 else " " * 13
            self.line(f"{head}{line}")


def _machine_lines(report: StatusReport) -> list[str]:
    machine, nvidia, rocm = report.machine, report.machine.nvidia, report.machine.rocm
    lines = []
    if nvidia is not None:
        lines.append(driver_step(nvidia, machine.sys_platform))
        lines += [
            f"GPU {gpu.index}: {gpu.name}, compute capability "
            f"{gpu.capability or 'unknown'}"
            for gpu in nvidia.gpus
        ]
    if rocm is not None:
        lines.append(f"ROCm {rocm.version or '(version unknown)'}")
        lines += [f"GPU {gpu.index}: {gpu.name} ({gpu.gfx})" for gpu in rocm.gpus]
    if nvidia is None and rocm is None:
        notes = f" ({'; '.join(machine.notes)})" if machine.notes else ""
        lines.append(f"no GPU found{notes}")
    lines.append(f"nvcc {report.nvcc}" if report.nvcc else "nvcc not found")
    return [esc(line) for line in lines]

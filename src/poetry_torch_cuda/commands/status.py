"""``poetry torch-cuda status``: the variant, the installed builds, the machine, warnings."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option

from poetry_torch_cuda.commands.base import TorchCudaCommand
from poetry_torch_cuda.index.urls import mask_url
from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.output import esc


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option

    from poetry_torch_cuda.status_report import StatusReport


class StatusCommand(TorchCudaCommand):
    """Report the configured and installed PyTorch builds and this machine's GPUs."""

    name = "torch-cuda status"
    description = (
        "Show the variant, the installed torch builds, the driver and GPUs; warn on "
        "mismatches."
    )
    options: ClassVar[list[Option]] = [
        option("json", None, "Print the report as JSON."),
        option("check", None, "Exit with status 1 when anything is out of line (CI)."),
    ]
    help = (
        "Reads installed metadata only (torch is never imported) and asks nvidia-smi, "
        "rocminfo and nvcc when they are on PATH. With <c1>--check</> the command "
        "fails when the driver is too old for the variant, a GPU is not built into "
        "it, the installed build differs from the configured one or unused CUDA "
        "wheels are left."
    )

    def work(self) -> int:
        """Gather the report and print it."""
        from poetry_torch_cuda.machine.probe import probe_machine
        from poetry_torch_cuda.machine.resolution import index_client
        from poetry_torch_cuda.status_report import build_report

        config = self.project_config()
        machine = probe_machine(
            nvcc=True,
            machine=str(self.env.marker_env.get("platform_machine") or ""),
        )
        report = build_report(
            config, self.poetry, self.env, machine, index_client(self.poetry)
        )
        if self.option("json"):
            self.write_json({**report.to_json(), "environment": str(self.env.path)})
        else:
            self._render(report)
        return 1 if self.option("check") and not report.in_line else 0

    def _render(self, report: StatusReport) -> None:
        resolution = report.resolution
        origin = esc(resolution.origin)
        if resolution.configured.kind == "auto":
            variant = f"<c2>auto</> -> <c2>{resolution.variant}</> (from {origin})"
        else:
            variant = f"<c2>{resolution.variant}</> (from {origin})"
        self.line(f"<info>Variant</>      {variant}")
        decision = resolution.decision
        if decision is not None and decision.steps and not self.io.is_verbose():
            self.line(
                f"<info>auto</>         {esc(decision.steps[-1])} (-v: every step)"
            )
        self.line(f"<info>Index</>        {esc(mask_url(report.index_url))}")
        self.line(f"<info>Environment</>  {esc(self.env.path)}")
        for i, package in enumerate(report.packages):
            head = "<info>Installed</>    " if i == 0 else " " * 13
            installed = package.installed
            if installed is None:
                state = "<comment>not installed</>"
                if package.locked is None:
                    state += " (not in the lock)"
            else:
                state = f"<c2>{esc(installed.version)}</>  {esc(installed.build)}"
            self.line(f"{head}{package.name:<12} {state}")
        wheels = ", ".join(f"{n} {v}" for n, v in sorted(report.cuda_wheels.items()))
        self.line(f"<info>CUDA wheels</>  {esc(wheels) or 'none'}")
        self.line(f"<info>Orphans</>      {esc(', '.join(report.orphans)) or 'none'}")
        for i, line in enumerate(_machine_lines(report)):
            head = "<info>Machine</>      " if i == 0 else " " * 13
            self.line(f"{head}{line}")
        if resolution.decision is not None and self.io.is_verbose():
            self.line("<info>auto</>")
            for step in resolution.decision.steps:
                self.line(f"  - {esc(step)}")
        for note in report.notes:
            self.line(f"<comment>Note:</> {esc(note)}")
        for warning in report.warnings:
            self.line(f"<warning>Warning:</> {esc(warning)}")
        if report.in_line:
            self.line("<success>Everything is in line.</>")


def _machine_lines(report: StatusReport) -> list[str]:
    machine = report.machine
    lines = []
    nvidia = machine.nvidia
    if nvidia is not None:
        newest = tables.newest_cuda(nvidia.version, machine.sys_platform)
        supports = f"CUDA {newest[0]}.{newest[1]} and older" if newest else "no CUDA"
        lines.append(
            f"NVIDIA driver <c2>{esc(nvidia.version)}</> (from {esc(nvidia.source)}), "
            f"supports {supports}"
        )
        for gpu in nvidia.gpus:
            capability = (
                "compute capability unknown"
                if gpu.compute_capability is None
                else "compute capability {}.{}".format(*gpu.compute_capability)
            )
            lines.append(f"GPU {gpu.index}: {esc(gpu.name)}, {capability}")
    if machine.rocm is not None:
        lines.append(f"ROCm {esc(machine.rocm.version or '(version unknown)')}")
        lines += [
            f"GPU {gpu.index}: {esc(gpu.name)} ({gpu.gfx})" for gpu in machine.rocm.gpus
        ]
    if nvidia is None and machine.rocm is None:
        lines.append(
            "no GPU found"
            + (f" ({esc('; '.join(machine.notes))})" if machine.notes else "")
        )
    lines.append(f"nvcc {esc(machine.nvcc)}" if machine.nvcc else "nvcc not found")
    return lines

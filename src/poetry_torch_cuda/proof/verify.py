"""Prove that an environment's build runs: probe it, judge it, say it.

:func:`prove` is what ``poetry torch-cuda verify`` and the checks after every
change share; :class:`Proof` renders the result as lines, as one error
message (failing line first, cause, fix) and as the stable JSON of
``verify --json`` (documented in the README; ``schema`` changes if it does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.install.sweep import family_problems
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.proof.run import run_probe
from poetry_torch_cuda.proof.verdict import Check
from poetry_torch_cuda.proof.verdict import Verdict
from poetry_torch_cuda.proof.verdict import judge


if TYPE_CHECKING:
    from poetry.utils.env import Env

    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant
    from poetry_torch_cuda.proof.run import ProbeRun

#: The version of ``verify --json``'s layout.
SCHEMA = 1
_STYLE = {"fail": "<error>FAIL</>", "ok": "<info> ok </>", "note": "<comment>note</>"}


@dataclass(frozen=True)
class Proof:
    """One verification of one environment against one variant."""

    variant: Variant
    machine: Machine
    packages: tuple[str, ...]
    run: ProbeRun
    verdict: Verdict

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return self.verdict.ok

    @property
    def torch_version(self) -> str | None:
        """The installed torch's version as the probe saw it."""
        entry = self._package("torch")
        return None if entry is None else entry.get("version")

    def tracebacks(self) -> list[str]:
        """The child's tracebacks and stderr (shown with ``-vvv`` only)."""
        found = []
        for name in self.packages:
            entry = self._package(name) or {}
            if entry.get("traceback"):
                found.append(f"{name}:\n{entry['traceback'].rstrip()}")
        if self.run.report is None and self.run.stderr.strip():
            found.append(self.run.stderr.rstrip())
        return found

    def lines(self) -> list[str]:
        """The checks as styled lines, failures first, each with cause and fix."""
        lines = []
        for check in self.verdict.ordered():
            lines.append(f"{_STYLE[check.status]} {esc(check.message)}")
            if check.cause:
                lines.append(f"       cause: {esc(check.cause)}")
            if check.fix:
                lines.append(f"       fix:   {esc(check.fix)}")
        return lines

    def summary(self) -> str:
        """One line: what was proven (after a change)."""
        held = [check.message for check in self.verdict.checks if check.status == "ok"]
        computes = [
            m.removeprefix("computes on ") for m in held if m.startswith("computes on ")
        ]
        what = (
            f"torch {self.torch_version}" if self.torch_version else str(self.variant)
        )
        return f"verified {what}: imports" + (
            f", computes on {', '.join(computes)}" if computes else ""
        )

    def failure_message(self, *, debug: bool = False) -> str:
        """Plain text for an error: the first failure, its cause and fix, then the rest."""
        failures = self.verdict.failures
        if not failures:
            return ""
        lines: list[str] = []
        for check in failures:
            lines.append(check.message)
            if check.cause:
                lines.append(f"Cause: {check.cause}.")
            if check.fix:
                lines.append(f"Fix: {check.fix}.")
        if debug:
            lines += self.tracebacks()
        elif self.tracebacks():
            lines.append("(-vvv shows the traceback of the check.)")
        return "\n".join(lines)

    def to_json(self, *, configured: Variant, debug: bool = False) -> dict[str, Any]:
        """``verify --json``: stable keys, ``null`` for what is unknown."""
        report = self.run.report or {}
        torch = report.get("torch") or {}
        packages = {}
        for name in self.packages:
            entry = self._package(name) or {}
            version = entry.get("version")
            packages[name] = {
                "installed": bool(entry.get("installed")),
                "version": version,
                "label": _label(version),
                "imports": entry.get("imports"),
                "error": entry.get("error"),
                "traceback": entry.get("traceback") if debug else None,
            }

        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "configured": configured.name,
            "variant": self.variant.name,
            "python": report.get("python"),
            "error": self.run.error,
            "packages": packages,
            "torch": {
                "version": torch.get("version"),
                "cuda": torch.get("cuda"),
                "hip": torch.get("hip"),
                "cudnn": torch.get("cudnn"),
                "arch_list": list(torch.get("arch_list") or []),
                "is_available": torch.get("is_available"),
                "devices": [
                    {
                        "index": device.get("index"),
                        "name": device.get("name"),
                        "capability": _capability(device.get("capability")),
                    }
                    for device in torch.get("devices") or []
                ],
            }
            if torch
            else None,
            "compute": [
                {
                    "device": result.get("device"),
                    "ok": bool(result.get("ok")),
                    "error": result.get("error"),
                }
                for result in report.get("compute") or []
            ],
            "torchvision_op": report.get("torchvision_op"),
            "checks": [check.to_json() for check in self.verdict.checks],
            "machine": self.machine.to_json(),
        }

    def _package(self, name: str) -> dict[str, Any] | None:
        report = self.run.report or {}
        entry = (report.get("packages") or {}).get(name)
        return entry if isinstance(entry, dict) else None

    def first_failure(self) -> Check | None:
        """The failing check that leads the message."""
        failures = self.verdict.failures
        return failures[0] if failures else None


def prove(
    env: Env,
    config: TorchCudaConfig,
    variant: Variant,
    *,
    machine: Machine | None = None,
    hashes: bool = False,
) -> Proof:
    """Run the probe in ``env`` and judge it against ``variant`` and the machine.

    Every file the torch family's ``RECORD`` lists must exist (and, with
    ``hashes``, have its recorded sha256).
    """
    packages = tuple(
        dict.fromkeys(canonicalize_name(req.name) for req in config.packages)
    )
    if machine is None:
        from poetry_torch_cuda.machine.resolution import probe

        machine = probe(env)
    run = run_probe(str(env.python), list(packages), config.verify_timeout)
    verdict = judge(run.report, run.error, variant, machine, packages)
    damaged = tuple(
        Check(
            "files",
            "fail",
            problem,
            "a removal or an interrupted install left it incomplete",
            "`poetry torch-cuda sync --force` reinstalls the build",
        )
        for problem in family_problems(env, packages, hashes=hashes)
    )
    if damaged:
        verdict = Verdict((*damaged, *verdict.checks))
    return Proof(variant, machine, packages, run, verdict)


def _label(version: object) -> str | None:
    if not isinstance(version, str) or "+" not in version:
        return None
    return version.partition("+")[2]


def _capability(value: object) -> str | None:
    if isinstance(value, list) and len(value) == 2:
        return f"{value[0]}.{value[1]}"
    return None

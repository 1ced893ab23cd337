"""Prove that an environment's build runs: probe it, judge it, say it.

:func:`prove` is what ``verify`` and the checks after every change share;
:class:`Proof` renders the result as lines, as one error message and as the
stable JSON of ``verify --json`` (``schema`` changes if it does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.install.sweep import family_problems
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.proof.run import ProbeRun
from poetry_torch_cuda.proof.run import run_probe
from poetry_torch_cuda.proof.verdict import Check
from poetry_torch_cuda.proof.verdict import Verdict
from poetry_torch_cuda.proof.verdict import judge
from poetry_torch_cuda.proof.verdict import local_label


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping

    from poetry.utils.env import Env

    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.project.config import TorchCudaConfig
    from poetry_torch_cuda.project.variants import Variant

#: The version of ``verify --json``'s layout.
SCHEMA = 1
_STYLE = {
    "fail": "<error>FAIL</>",
    "unchecked": "<warning>????</>",
    "ok": "<info> ok </>",
    "note": "<comment>note</>",
}


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
        """Whether no check failed (a check that could not finish is no failure)."""
        return self.verdict.ok

    @property
    def verified(self) -> bool:
        """Whether every check ran and held."""
        return self.verdict.ok and self.verdict.checked

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
        """One line: what was proven after a change (or why it could not be)."""
        checks = self.verdict.checks
        if not self.verdict.checked:
            check = next(c for c in checks if c.status == "unchecked")
            return f"warning: {check.message}; {check.fix}"
        held = [c.message for c in checks if c.status == "ok"]
        computes = [m[12:] for m in held if m.startswith("computes on ")]
        notes = [c.message for c in checks if c.status == "note" and c.name == "gpu"]
        what = f"torch {self.torch_version}" if self.torch_version else self.variant
        return (
            f"verified {what}: imports"
            + (f", computes on {', '.join(computes)}" if computes else "")
            + "".join(f" (note: {note})" for note in notes)
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
        keys = ("installed", "version", "imports", "error", "traceback")
        packages = {}
        for name in self.packages:
            entry = {key: (self._package(name) or {}).get(key) for key in keys}
            entry["installed"] = bool(entry["installed"])
            entry["label"] = local_label(entry["version"] or "")
            entry["traceback"] = entry["traceback"] if debug else None
            packages[name] = entry
        fields = ("version", "cuda", "hip", "cudnn", "is_available")
        devices = [
            {**{k: d.get(k) for k in ("index", "name")}, "capability": _dotted(d)}
            for d in torch.get("devices") or []
        ]
        compute = [
            {
                "device": r.get("device"),
                "ok": bool(r.get("ok")),
                "error": r.get("error"),
            }
            for r in report.get("compute") or []
        ]
        return {
            "schema": SCHEMA,
            "ok": self.verified,
            "checked": self.verdict.checked,
            "configured": configured.name,
            "variant": self.variant.name,
            "python": report.get("python"),
            "error": self.run.error,
            "packages": packages,
            "torch": {
                **{k: torch.get(k) for k in fields},
                "arch_list": list(torch.get("arch_list") or []),
                "devices": devices,
            }
            if torch
            else None,
            "compute": compute,
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
    required: Mapping[str, str] | None = None,
    alternative: Callable[[], str | None] | None = None,
    exists: bool = True,
    hashes: bool = False,
) -> Proof:
    """Run the probe in ``env`` (nothing to run if it does not ``exist``) and judge
    it against ``variant`` and the machine (see :func:`.verdict.judge`).

    Every file the torch family's ``RECORD`` lists must exist (and, with
    ``hashes``, have its recorded sha256).
    """
    packages = tuple(
        dict.fromkeys(canonicalize_name(req.name) for req in config.packages)
    )
    if machine is None:
        from poetry_torch_cuda.machine.resolution import probe

        machine = probe(env)
    run = (
        run_probe(str(env.python), list(packages), config.verify_timeout)
        if exists
        else ProbeRun({"packages": {}}, None)
    )
    verdict = judge(
        run.report,
        run.error,
        variant,
        machine,
        packages,
        timed_out=run.timed_out,
        required=required,
        auto=config.variant.kind == "auto",
        alternative=alternative,
    )
    damaged = tuple(
        Check(
            "files",
            "fail",
            problem,
            "a removal or an interrupted install left it incomplete",
            "`poetry torch-cuda sync --force` reinstalls the build",
        )
        for problem in (family_problems(env, packages, hashes=hashes) if exists else ())
    )
    if damaged:
        verdict = Verdict((*damaged, *verdict.checks))
    return Proof(variant, machine, packages, run, verdict)


def _dotted(device: dict[str, Any]) -> str | None:
    value = device.get("capability")
    return (
        f"{value[0]}.{value[1]}"
        if isinstance(value, list) and len(value) == 2
        else None
    )

"""Prove that an environment's build runs: run the child, judge its report, say it.

:func:`prove` is what ``verify`` and the checks after every change share;
:class:`Proof` renders the result as lines, as one error message and as the
stable JSON of ``verify --json`` (``schema`` changes if it does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

from packaging.utils import canonicalize_name

from poetry_torch_cuda.install.sweep import family_problems
from poetry_torch_cuda.machine.resolution import probe
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.variants import label_of
from poetry_torch_cuda.proof.run import ChildRun
from poetry_torch_cuda.proof.run import run_child
from poetry_torch_cuda.proof.verdict import SYNC_FORCE
from poetry_torch_cuda.proof.verdict import BuildVerdict
from poetry_torch_cuda.proof.verdict import Check
from poetry_torch_cuda.proof.verdict import judge


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
    run: ChildRun
    verdict: BuildVerdict

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
        """The installed torch's version as the child saw it."""
        return self._package("torch").get("version")

    def tracebacks(self) -> list[str]:
        """The child's tracebacks and stderr (shown with ``-vvv`` only)."""
        found = [
            f"{name}:\n{trace.rstrip()}"
            for name in self.packages
            if (trace := self._package(name).get("traceback"))
        ]
        if self.run.report is None and self.run.stderr.strip():
            found.append(self.run.stderr.rstrip())
        return found

    def lines(self) -> list[str]:
        """The checks as styled lines, failures first, each with cause and fix."""
        lines = []
        for check in self.verdict.ordered():
            lines.append(f"{_STYLE[check.status]} {esc(check.message)}")
            lines += [f"       cause: {esc(check.cause)}"] if check.cause else []
            lines += [f"       fix:   {esc(check.fix)}"] if check.fix else []
        return lines

    def summary(self) -> str:
        """One line: what was proven after a change (or why it could not be)."""
        checks = self.verdict.checks
        for check in checks:
            if check.status == "unchecked":
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
        """Plain text for an error: every failure with its cause and fix."""
        lines: list[str] = []
        for check in self.verdict.failures:
            lines.append(check.message)
            lines += [f"Cause: {check.cause}."] if check.cause else []
            lines += [f"Fix: {check.fix}."] if check.fix else []
        if debug:
            lines += self.tracebacks()
        elif self.tracebacks():
            lines.append("(-vvv shows the traceback of the check.)")
        return "\n".join(lines)

    def to_json(self, *, configured: Variant, debug: bool = False) -> dict[str, Any]:
        """``verify --json``: stable keys, ``null`` for what is unknown."""
        report = self.run.report or {}
        packages = {}
        for name in self.packages:
            entry = self._package(name)
            packages[name] = {
                **dict.fromkeys(("version", "imports", "error")),
                **entry,
                "installed": bool(entry.get("installed")),
                "label": label_of(entry.get("version") or ""),
                "traceback": entry.get("traceback") if debug else None,
            }
        torch = report.get("torch")
        if torch:  # a device's capability as "8.9"
            devices = [dict(device) for device in torch["devices"]]
            for device in devices:
                capability = device["capability"]
                device["capability"] = ".".join(map(str, capability or ())) or None
            torch = {**torch, "devices": devices}
        return {
            "schema": SCHEMA,
            "ok": self.verified,
            "checked": self.verdict.checked,
            "configured": configured.name,
            "variant": self.variant.name,
            "python": report.get("python"),
            "error": self.run.error,
            "packages": packages,
            "torch": torch or None,
            "compute": report.get("compute") or [],
            "torchvision_op": report.get("torchvision_op"),
            "checks": [dataclasses.asdict(check) for check in self.verdict.checks],
            "machine": self.machine.to_json(),
        }

    def _package(self, name: str) -> dict[str, Any]:
        entry = ((self.run.report or {}).get("packages") or {}).get(name)
        return entry if isinstance(entry, dict) else {}


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
    """Run the child in ``env`` (nothing to run if it does not ``exist``) and judge
    its report against ``variant`` and the machine (see :func:`.verdict.judge`).

    Every file the torch family's ``RECORD`` lists must exist (and, with
    ``hashes``, have its recorded sha256).
    """
    packages = tuple(dict.fromkeys(canonicalize_name(r.name) for r in config.packages))
    machine = machine or probe(env)
    run = ChildRun({"packages": {}})
    if exists:
        run = run_child(str(env.python), list(packages), config.verify_timeout)
    auto = config.variant.kind == "auto"
    verdict = judge(
        run.report,
        run.error,
        variant,
        machine,
        packages,
        timed_out=run.timed_out,
        required=required,
        auto=auto,
        alternative=alternative,
    )
    damage = "a removal or an interrupted install left it incomplete"
    damaged = tuple(
        Check("files", "fail", problem, damage, SYNC_FORCE)
        for problem in (family_problems(env, packages, hashes=hashes) if exists else ())
    )
    checks = BuildVerdict((*damaged, *verdict.checks))
    return Proof(variant, machine, packages, run, checks)

"""Judge the child's report (:mod:`.child`) against the variant and this machine into
a :class:`Proof`. Pure. A failure says what, why and what to do; no GPU, hidden or
unreachable GPUs, a GPU ``auto`` left out are notes."""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from poetry_torch_cuda.install.undo import DAMAGED
from poetry_torch_cuda.install.undo import SYNC_FORCE
from poetry_torch_cuda.install.undo import repair
from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.resolution import left_to_pypi
from poetry_torch_cuda.output import esc
from poetry_torch_cuda.project.variants import label_of
from poetry_torch_cuda.project.variants import public_version
from poetry_torch_cuda.proof.child import BROKEN
from poetry_torch_cuda.proof.child import MASKS


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping

    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.machine.probe import NvidiaGpu
    from poetry_torch_cuda.project.variants import Variant
    from poetry_torch_cuda.proof.run import ChildRun

#: ``unchecked``: could not check (a timeout, a kill, a busy GPU); no proof nor failure.
Status = Literal["ok", "fail", "note", "unchecked"]
_LIBRARY_ERROR = re.compile(
    r"(?i)cannot open shared object file|DLL load failed|undefined symbol|"
    r"cannot load library|image not found|version `GLIBC"
)
_OTHER_TORCH = re.compile("does not exist|undefined symbol")  # built for another
_OTHER_BUILD = "was built for another torch (or another variant)"
_BUSY = re.compile(r"busy or unavailable|out of memory", re.IGNORECASE)
_ARCH = re.compile(r"(sm|compute)_(\d+?)(\d)a?$")


@dataclass(frozen=True)
class Check:
    """One line of the verdict; ``machine``: a failure of this machine (driver, GPU,
    system libraries), not of the install: ``auto`` moves on from it."""

    name: str
    status: Status
    message: str
    cause: str | None = None
    fix: str | None = None
    machine: bool = False


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
    """One verification of an environment against a variant: its checks, in order."""

    variant: Variant
    machine: Machine
    packages: tuple[str, ...]
    run: ChildRun
    checks: tuple[Check, ...]

    @property
    def failures(self) -> tuple[Check, ...]:
        """The failing checks."""
        return tuple(check for check in self.checks if check.status == "fail")

    @property
    def ok(self) -> bool:
        """Whether no check failed (a check that could not finish is no failure)."""
        return not self.failures

    @property
    def checked(self) -> bool:
        """Whether the check ran to its end."""
        return all(check.status != "unchecked" for check in self.checks)

    @property
    def verified(self) -> bool:
        """Whether every check ran and held."""
        return self.ok and self.checked

    @property
    def machine_reason(self) -> bool:
        """Whether the build fails because of this machine (another build may run)."""
        return bool(self.failures) and all(check.machine for check in self.failures)

    @property
    def torch_version(self) -> str | None:
        """The installed torch's version as the child saw it."""
        return self._package("torch").get("version")

    def lines(self) -> list[str]:
        """The checks as styled lines, failures first, each with cause and fix."""
        rank = {"fail": 0, "unchecked": 0, "ok": 1, "note": 2}
        lines = []
        for check in sorted(self.checks, key=lambda check: rank[check.status]):
            lines.append(f"{_STYLE[check.status]} {esc(check.message)}")
            lines += [f"       cause: {esc(check.cause)}"] if check.cause else []
            lines += [f"       fix:   {esc(check.fix)}"] if check.fix else []
        return lines

    def summary(self) -> str:
        """One line: what was proven after a change (or why it could not be)."""
        if unchecked := [c for c in self.checks if c.status == "unchecked"]:
            return f"warning: {unchecked[0].message}; {unchecked[0].fix}"
        held = [c.message for c in self.checks if c.status == "ok"]
        computes = [m[12:] for m in held if m.startswith("computes on ")]
        notes = [c.message for c in self.checks if c.name in ("gpu", "probe")]
        what = f"torch {self.torch_version}" if self.torch_version else self.variant
        return (
            f"verified {what}: imports"
            + (f", computes on {', '.join(computes)}" if computes else "")
            + "".join(f" (note: {note})" for note in notes)
        )

    def failure_message(self, *, debug: bool = False) -> str:
        """Plain text for an error: every failure with its cause and fix."""
        lines: list[str] = []
        for check in self.failures:
            lines.append(check.message)
            lines += [f"Cause: {check.cause}."] if check.cause else []
            lines += [f"Fix: {check.fix}."] if check.fix else []
        return "\n".join(lines + self.trace_lines(debug=debug))

    def trace_lines(self, *, debug: bool) -> list[str]:
        """With ``debug`` the child's tracebacks and stderr; else, for a failure
        that has them, the line that says how to see them."""
        traces = [
            f"{name}:\n{trace.rstrip()}"
            for name in self.packages
            if (trace := self._package(name).get("traceback"))
        ]
        if self.run.report is None and self.run.stderr.strip():
            traces.append(self.run.stderr.rstrip())
        if not debug and traces and not self.ok:
            return ["(-vvv shows the traceback of the check.)"]
        return traces if debug else []

    def to_json(self, *, configured: Variant, debug: bool = False) -> dict[str, Any]:
        """``verify --json``: stable keys, ``null`` for what is unknown."""
        report = self.run.report or {}
        packages = {}
        for name in self.packages:
            entry = self._package(name)
            packages[name] = {
                **dict.fromkeys(("version", "imports", "error")),
                **entry,
                "installed": bool(entry.get("installed")) if report else None,
                "label": label_of(entry.get("version") or ""),
                "traceback": entry.get("traceback") if debug else None,
            }
        return {
            "schema": SCHEMA,
            "ok": self.verified,
            "checked": self.checked,
            "configured": configured.name,
            "variant": self.variant.name,
            "python": report.get("python"),
            "error": self.run.error,
            "packages": packages,
            "torch": report.get("torch") or None,
            "compute": report.get("compute") or [],
            "torchvision_op": report.get("torchvision_op"),
            "checks": [dataclasses.asdict(check) for check in self.checks],
            "machine": self.machine.to_json(),
        }

    def _package(self, name: str) -> dict[str, Any]:
        entry = ((self.run.report or {}).get("packages") or {}).get(name)
        return entry if isinstance(entry, dict) else {}


def judge(
    run: ChildRun,
    variant: Variant,
    machine: Machine,
    packages: Iterable[str],
    *,
    required: Mapping[str, str] | None = None,
    unmoved: Mapping[str, tuple[str, str, str]] = {},
    install: str = "`poetry install`",
    auto: bool = False,
    alternative: Callable[[], Variant | None] | None = None,
    damaged: Iterable[tuple[str, str | None, str]] = (),
    absent: Callable[[str], str] | None = None,
) -> Proof:
    """The proof the child's ``run`` gives. ``required``: name -> locked version of
    what ``install`` (words) puts here (``None``: unknown; ``absent`` says why not);
    ``unmoved``: ``Plan.unmoved``; ``auto``: GPUs its rule leaves out are notes;
    ``alternative``: ``auto``'s other choice, asked only for a fix; ``damaged``: what
    is wrong with the installed files or requirements, cause, fix (failures first)."""
    packages, report = tuple(packages), run.report
    files = [Check("files", "fail", *problem) for problem in damaged]
    if report is None:  # how it ended, in run.py's words (trace_lines: its stderr)
        message = f"could not check the build: {run.error or 'no report'}"
        status: Status = "unchecked" if run.unchecked else "fail"  # a timeout, a kill
        probe = Check("probe", status, message, *(run.unchecked or ()))
        return Proof(variant, machine, packages, run, (*files, probe))
    answer = functools.cache(alternative or (lambda: None))

    def switch(what: str) -> str:  # the fix names auto's next choice, asked once
        if (name := answer()) is None:
            return "`poetry torch-cuda detect` shows which build runs here"
        how = f"`poetry torch-cuda {'sync' if auto else f'switch {name}'}` installs"
        if name.kind == "cpu":  # no GPU build is left: not "a build for it"
            return (
                f"{how} the CPU-only build (auto finds no other GPU build here; "
                "`poetry torch-cuda detect` says why)"
            )
        return f"{how} {what}" + (f", {name}, auto's next choice here" if auto else "")

    checks = [Check("probe", "note", run.error)] if run.error else []  # a hang at exit
    for name in packages:
        entry = (report.get("packages") or {}).get(name) or {}
        checks += _package(name, entry, variant, required, install, absent, unmoved)
    if pypi := left_to_pypi(variant, machine.sys_platform):  # no label to check
        checks = [check for check in checks if not check.name.startswith("label ")]
        checks.append(Check("label", "note", pypi))
    if not any(c.status in ("ok", "fail") for c in checks):  # only "not installed"
        message = "no configured package is installed: there is no build to verify"
        fix = f"{install} installs it"
        advice = fix if required is None else None  # installs none: the notes say why
        checks.append(Check("probe", "unchecked", message, None, advice))
    torch = report.get("torch")
    if isinstance(torch, dict):
        version = str(torch.get("version"))
        left_out = assess(variant, machine, version).uncovered if auto else ()
        checks += _build(torch, version, variant)
        masks = report.get("masks") or {}
        checks += _gpus(torch, version, variant, machine, masks, left_out, switch)
        checks += _computes(report, torch, version, left_out, repair("torch", unmoved))
        checks += _operator(report.get("torchvision_op"))
    return Proof(variant, machine, packages, run, (*files, *checks))


def _package(
    name: str,
    entry: dict[str, Any],
    variant: Variant,
    required: Mapping[str, str] | None,
    install: str,
    absent: Callable[[str], str] | None,
    unmoved: Mapping[str, tuple[str, str, str]],
) -> list[Check]:
    """Installed (if locked here), imports, has the variant's label and version."""
    check, version = f"import {name}", str(entry.get("version"))
    locked = (required or {}).get(name)
    if not entry.get("installed") and locked is None:
        why = f" ({absent(name)})" if absent else ""
        return [Check(check, "note", f"{name} is not installed{why}")]
    if not entry.get("installed"):
        message = f"{name} is not installed, though {install} installs "
        message += f"{name} {locked} here"
        cause = "the last install did not finish, or the package was removed"
        return [Check(check, "fail", message, cause, f"{install} installs it")]
    if not entry.get("imports"):
        error = str(entry.get("error"))
        other = name != "torch" and bool(_OTHER_TORCH.search(error))
        library, damaged = bool(_LIBRARY_ERROR.search(error)), BROKEN in error
        gpu = variant.kind in ("cuda", "rocm") and not (damaged or other)
        cause = DAMAGED if damaged else "the package fails while it is imported"
        if library:
            cause = "a library the build needs cannot be loaded: the install is "
            cause += "damaged or incomplete"
            cause += ", or this machine lacks what the build needs" if gpu else ""
        cause = f"{name} {_OTHER_BUILD}" if other else cause
        fix = repair(name, unmoved)
        if gpu:
            fix += "; if that does not help, `poetry torch-cuda detect` shows a "
            fix += "build this machine runs"
        message = f"{name} {version} does not import: {error}"
        return [Check(check, "fail", message, cause, fix, library and gpu)]
    checks = [Check(check, "ok", f"{name} {version} imports")]
    fix = "`poetry torch-cuda sync` installs it"  # a build not the variant's or locked
    cause = f"the environment does not hold the configured variant {variant}"
    if name in unmoved:  # neither sync nor an install moves it (Plan.unmoved)
        _, cause, fix = unmoved[name]
    if (label := label_of(version)) != variant.name:
        built = f"the +{label} build" if label else "a build without a label"
        message = f"{name} {version} is {built}, not the {variant} build"
        checks.append(Check(f"label {name}", "fail", message, cause, fix))
    if locked is not None and public_version(version) != public_version(locked):
        message = f"{name} {version} is installed, but poetry.lock locks "
        message += f"{name} {locked}"
        cause = "the environment does not hold the locked version"
        checks.append(Check(f"version {name}", "fail", message, cause, fix))
    return checks


def _build(torch: dict[str, Any], version: str, variant: Variant) -> list[Check]:
    """What the build says it is; a failure when its CUDA/HIP is not the variant's."""
    cuda, hip, cudnn = torch.get("cuda"), torch.get("hip"), torch.get("cudnn")
    archs = " ".join(str(arch) for arch in torch.get("arch_list") or [])
    build = f"CUDA {cuda}" if cuda else f"ROCm (HIP {hip})" if hip else "CPU-only"
    detail = f"{build} build" + (f", cuDNN {cudnn}" if cudnn else "")
    detail += f", compiled for {archs}" if archs else ""
    checks = [Check("build", "ok", f"torch {version}: {detail}")]
    family = {"cuda": "CUDA", "rocm": "ROCm"}.get(variant.kind)
    if family is not None:
        wanted = variant.cuda_version or tables.rocm_version(variant.name)
        release = f"{wanted[0]}.{wanted[1]}"
        found = cuda if variant.kind == "cuda" else hip
        matches = f"{found}.".startswith(f"{release}.")  # 13.0, HIP 6.4.43482-0f2d
        expected = f"the {family} {release} build {variant} names"
    elif variant.kind == "cpu":
        matches = not (cuda or hip)
        expected = "the CPU-only build cpu names"
    else:
        return checks
    if not matches and label_of(version) == variant.name:  # else the label fails
        message = f"torch {version} is a {build} build, not {expected}"
        cause = f"its files are not the build its +{variant} label names: another "
        cause += "build was installed over them, or the index serves a mislabelled "
        cause += "wheel"
        fix = f"{SYNC_FORCE}; if the check still fails, index-url serves a mislabelled "
        fix += f"{variant} wheel: ask whoever runs the index"
        checks.append(Check("build", "fail", message, cause, fix))
    return checks


def _gpus(
    torch: dict[str, Any],
    version: str,
    variant: Variant,
    machine: Machine,
    masks: Mapping[str, object],
    left_out: tuple[NvidiaGpu, ...],
    switch: Callable[[str], str],
) -> list[Check]:
    """The GPUs the machine reports against those the build sees and is built for."""
    cuda, hip = torch.get("cuda"), torch.get("hip")
    available = torch.get("is_available")
    nvidia, rocm = machine.nvidia, tuple(machine.rocm.gpus if machine.rocm else ())
    count = len(rocm if hip else nvidia.gpus if nvidia else ()) or 1 << 16
    hidden = ", ".join(  # CUDA and HIP stop at the first entry that is no GPU
        f"{n}={v!r}"
        for n, v in masks.items()
        if (hip or n == MASKS[0])
        and not (one := str(v).split(",")[0].strip()).startswith(("GPU-", "MIG-"))
        and not (one.isdigit() and int(one) < count)
    )
    cannot = f"torch {version} cannot use the GPU"
    skipped = "the GPU checks were skipped"
    if ((cuda and nvidia) or (hip and rocm)) and not available and hidden:
        note = f"GPUs hidden by {hidden}: torch sees none, {skipped}"
        return [Check("gpu", "note", note)]
    if hip and rocm and not available and not (cuda and nvidia):
        message = f"{cannot}: rocminfo lists {', '.join(map(str, rocm))} "
        message += "but torch.cuda.is_available() is False"
        cause = "the ROCm build does not reach the GPU (ROCm version or permissions)"
        fix = "check that your user may use the GPU (groups video and render) and that "
        fix += "the variant matches the installed ROCm; `poetry torch-cuda detect` "
        fix += "shows which one does"
        return [Check("gpu", "fail", message, cause, fix, True)]
    if variant.kind in ("cuda", "rocm") and not (rocm if hip else nvidia):
        why = "; ".join(machine.notes) or "no driver found"
        note = f"no GPU on this machine ({why})"
        if machine.smi_failure:  # a broken driver, or no GPU: nothing tells them apart
            note = f"the GPU cannot be checked ({why})"
        if others := ", ".join(map(str, rocm or (nvidia.gpus if nvidia else ()))):
            note = f"the {variant} build uses none of this machine's GPUs ({others})"
        return [Check("gpu", "note", f"{note}: {skipped}")]
    if not cuda or nvidia is None:
        return []
    if not available and not nvidia.reachable:
        message = f"GPU not reachable from here: driver {nvidia.version} is known only "
        message += f"from {nvidia.source} and there is no /dev/nvidia* device (a "
        message += f"container without GPU access?): {skipped}"
        return [Check("gpu", "note", message)]
    if not available:
        rule = assess(variant, machine, version)
        if not rule.driver_ok:
            message = f"{cannot}: " + "; ".join(rule.reasons)
            cause = "the NVIDIA driver is too old for this build"
            fix = "update the driver, or " + switch("a build it runs")
            return [Check("gpu", "fail", message, cause, fix, True)]
        listed = ", ".join(str(gpu) for gpu in nvidia.gpus) or "a GPU"
        message = f"{cannot}: {nvidia.source} reports {listed} "
        message += "but torch.cuda.is_available() is False"
        cause = "the CUDA build does not reach the GPU the driver reports "
        cause += "(a driver/runtime mismatch or a broken driver install)"
        fix = "check that `nvidia-smi` works; " + switch("another build")
        return [Check("gpu", "fail", message, cause, fix, True)]
    archs = parse_archs(str(arch) for arch in torch.get("arch_list") or [])
    if not archs and nvidia.gpus:
        unlisted = f"torch {version} lists no compiled GPU architectures; not checked"
        return [Check("architectures", "note", unlisted)]
    checks = []
    for gpu in nvidia.gpus:
        capability = gpu.compute_capability
        if capability is None:
            unknown = f"{gpu}: compute capability unknown"
            checks.append(Check("architectures", "note", unknown))
        elif tables.runs_on(archs, capability) is not None:
            continue
        elif gpu in left_out:
            note = f"{gpu} is left out: no variant serves every GPU, and auto chose "
            note += "this build knowing it is not built for it"
            checks.append(Check("architectures", "note", note))
        else:
            built = tables.describe_archs(archs)
            message = f"torch {version} is not built for {gpu}: it builds {built}"
            cause = f"the build has no kernels for {gpu.sm}; every CUDA operation on "
            cause += "this GPU fails with 'no kernel image is available'"
            fix = switch("a build for it")
            checks.append(Check("architectures", "fail", message, cause, fix, True))
    return checks


def _computes(
    report: dict[str, Any],
    torch: dict[str, Any],
    version: str,
    left_out: tuple[NvidiaGpu, ...],
    repair: str,
) -> list[Check]:
    """The small computation on each device; a GPU ``auto`` left out may fail it."""
    skipped = {tables.dotted(gpu.compute_capability) for gpu in left_out}
    devices = {f"cuda:{d.get('index')}": d for d in torch.get("devices") or []}
    checks, broken = [], None  # broken: the CPU's error, which a GPU's repeats
    for result in report.get("compute") or []:
        device, error = str(result.get("device")), str(result.get("error"))
        seen = devices.get(device, {})
        where = f"GPU {seen.get('index')} ({seen.get('name')})" if seen else device
        where = "the CPU" if device == "cpu" else where
        name = f"compute {device}"
        message = f"torch {version} cannot compute on {where}: {error}"
        if result.get("ok"):
            checks.append(Check(name, "ok", f"computes on {where}"))
        elif error == broken:  # the build's failure, not the GPU's: said once
            continue
        elif device == "cpu":
            broken, cause = error, "the installed torch is broken"
            checks.append(Check(name, "fail", message, cause, repair))
        elif seen.get("capability") in skipped:
            checks.append(Check(name, "note", f"{where} left out by auto: {error}"))
        elif _BUSY.search(error):  # the build may be fine: neither proof nor failure
            cause = "another process holds the GPU (exclusive mode) or its memory"
            fix = "run `poetry torch-cuda verify` once the GPU is free"
            checks.append(Check(name, "unchecked", message, cause, fix))
        else:
            cause = "the GPU is visible but does not run the build's code"
            if "no kernel image" in error:
                cause = "the build has no kernels for this GPU"
            fix = "`poetry torch-cuda detect` shows a variant built for this GPU"
            checks.append(Check(name, "fail", message, cause, fix, True))
    return checks


def _operator(operator: object) -> list[Check]:
    """torchvision's C++ operator must run with this torch."""
    if not isinstance(operator, dict):
        return []
    name, error = operator.get("name"), str(operator.get("error"))
    if operator.get("ok"):
        return [Check("torchvision operator", "ok", f"{name} runs")]
    cause = "torchvision's operators do not run with this torch"
    cause = f"torchvision {_OTHER_BUILD}" if _OTHER_TORCH.search(error) else cause
    fix = SYNC_FORCE + " (torch and torchvision from the same variant)"
    return [Check("torchvision operator", "fail", f"{name} fails: {error}", cause, fix)]


def parse_archs(names: Iterable[str]) -> tuple[tables.Arch, ...]:
    """``["sm_75", "compute_90"]`` -> :class:`tables.Arch` (``compute_XY`` is PTX)."""
    found: dict[tuple[int, int], bool] = {}
    for name in names:
        match = _ARCH.fullmatch(name.strip())
        if match is not None:
            key = (int(match.group(2)), int(match.group(3)))
            found[key] = found.get(key, False) or match.group(1) == "compute"
    return tuple(tables.Arch(*key, ptx) for key, ptx in sorted(found.items()))

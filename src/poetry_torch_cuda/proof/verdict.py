"""Judge the child's report (:mod:`.child`) against the variant and this machine.

Pure. A failure says what, why and what to do; ``machine`` marks this machine's
failures (``auto`` moves on from those). No GPU, hidden GPUs, a GPU not reachable
from a container and a GPU ``auto`` left out are notes.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.machine.detection import assess as assess_variant


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable
    from collections.abc import Mapping

    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.machine.probe import NvidiaGpu
    from poetry_torch_cuda.project.variants import Variant

#: ``unchecked``: the check could not finish (a timeout); neither proof nor failure.
Status = Literal["ok", "fail", "note", "unchecked"]
SYNC_FORCE = "`poetry torch-cuda sync --force` reinstalls the build"
_LIBRARY_ERROR = re.compile(
    r"cannot open shared object file|DLL load failed|undefined symbol|"
    r"cannot load library|image not found|version `GLIBC",
    re.IGNORECASE,
)
_ARCH = re.compile(r"(sm|compute)_(\d+?)(\d)a?$")


@dataclass(frozen=True)
class Check:
    """One line of the verdict."""

    name: str
    status: Status
    message: str
    cause: str | None = None
    fix: str | None = None
    #: A failure of this machine (driver, GPU, system libraries), not of the install.
    machine: bool = False

    def to_json(self) -> dict[str, Any]:
        """The check as it appears in ``verify --json``."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Verdict:
    """Every check, in the order they were made."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Whether no check failed."""
        return not self.failures

    @property
    def failures(self) -> tuple[Check, ...]:
        """The failing checks."""
        return tuple(check for check in self.checks if check.status == "fail")

    @property
    def checked(self) -> bool:
        """Whether the check ran to its end."""
        return all(check.status != "unchecked" for check in self.checks)

    @property
    def machine_reason(self) -> bool:
        """Whether the build fails because of this machine (another build may run)."""
        return bool(self.failures) and all(check.machine for check in self.failures)

    def ordered(self) -> tuple[Check, ...]:
        """Failures first, then what held, then notes."""
        rank = {"fail": 0, "unchecked": 0, "ok": 1, "note": 2}
        return tuple(sorted(self.checks, key=lambda check: rank[check.status]))


def judge(
    report: dict[str, Any] | None,
    error: str | None,
    variant: Variant,
    machine: Machine,
    packages: Iterable[str],
    *,
    timed_out: bool = False,
    required: Mapping[str, str] | None = None,
    auto: bool = False,
    alternative: Callable[[], str | None] | None = None,
) -> Verdict:
    """The verdict on ``report`` (or ``error``). ``required``: name -> locked version
    of what ``poetry install`` puts here; ``auto``: the GPUs ``auto``'s rule leaves
    out are notes; ``alternative``: ``auto``'s other choice, asked only for a fix."""
    if report is None:
        if timed_out:
            cause = (
                "importing torch or starting the GPU takes longer than verify-timeout "
                "(a first CUDA import from a network filesystem can)"
            )
            fix = (
                "the build stays installed; raise verify-timeout in "
                "[tool.poetry-torch-cuda] and run `poetry torch-cuda verify`"
            )
            message = f"could not check the build: {error}"
            return Verdict((Check("probe", "unchecked", message, cause, fix),))
        cause = "the environment's Python could not run the check to its end"
        fix = "run `poetry torch-cuda verify -vvv` to see the check's own output"
        message = f"could not check the build: {error or 'no report'}"
        return Verdict((Check("probe", "fail", message, cause, fix),))
    switch = _Fix(alternative)
    checks: list[Check] = []
    entries: dict[str, Any] = report.get("packages") or {}
    for name in packages:
        entry = entries.get(name) or {}
        checks += _package_checks(name, entry, variant, (required or {}).get(name))
    torch = report.get("torch")
    if isinstance(torch, dict):
        left_out: tuple[NvidiaGpu, ...] = ()
        if auto and variant.kind == "cuda":
            public = _public(str(torch.get("version")))
            left_out = assess_variant(variant, machine, public).uncovered
        checks += _torch_checks(torch, report, variant, machine, left_out, switch)
    return Verdict(tuple(checks))


class _Fix:
    """The ``switch`` a fix names: ``auto``'s next choice, asked at most once."""

    def __init__(self, alternative: Callable[[], str | None] | None) -> None:
        self._alternative = alternative
        self._asked = False
        self._answer: str | None = None

    def switch(self, what: str) -> str:
        if not self._asked and self._alternative is not None:
            self._asked, self._answer = True, self._alternative()
        if self._answer is None:
            return "`poetry torch-cuda detect` shows which build runs here"
        if self._answer == "cpu":  # no GPU build is left: not "a build for it"
            return (
                "`poetry torch-cuda switch cpu` installs the CPU-only build (auto "
                "finds no other GPU build here; `poetry torch-cuda detect` says why)"
            )
        return f"`poetry torch-cuda switch {self._answer}` installs {what}"


def _package_checks(
    name: str, entry: dict[str, Any], variant: Variant, locked: str | None
) -> list[Check]:
    if not entry.get("installed"):
        if locked is None:
            return [Check(f"import {name}", "note", f"{name} is not installed")]
        return [
            Check(
                f"import {name}",
                "fail",
                f"{name} is not installed, though `poetry install` installs "
                f"{name} {locked} here",
                "the last install did not finish, or the package was removed",
                "`poetry install` (or `poetry torch-cuda sync`) installs it",
            )
        ]
    version = str(entry.get("version"))
    if not entry.get("imports"):
        error = str(entry.get("error"))
        library = bool(_LIBRARY_ERROR.search(error))
        gpu_build = variant.kind in ("cuda", "rocm")
        if library:
            cause = (
                "a library the build needs cannot be loaded: the install is damaged "
                "or incomplete"
                + (", or this machine lacks what the build needs" if gpu_build else "")
            )
        else:
            cause = "the package fails while it is imported"
        fix = SYNC_FORCE + (
            "; if that does not help, `poetry torch-cuda detect` shows a build "
            "this machine runs"
            if gpu_build
            else ""
        )
        return [
            Check(
                f"import {name}",
                "fail",
                f"{name} {version} does not import: {error}",
                cause,
                fix,
                machine=library and gpu_build,
            )
        ]
    checks = [Check(f"import {name}", "ok", f"{name} {version} imports")]
    label = local_label(version)
    if label != variant.local_label:
        built = f"the +{label} build" if label else "a build without a label"
        checks.append(
            Check(
                f"label {name}",
                "fail",
                f"{name} {version} is {built}, not the {variant} build",
                f"the environment does not hold the configured variant {variant}",
                "`poetry torch-cuda sync` installs it",
            )
        )
    return checks


def _build_check(
    version: str, cuda: str | None, hip: str | None, variant: Variant
) -> Check | None:
    """A build whose CUDA/HIP version is not its variant's, whatever its label says."""
    if variant.kind == "cuda":
        wanted = variant.cuda_version
        if cuda and _version_tuple(cuda) == wanted:
            return None
        what = f"a CUDA {cuda} build" if cuda else "not a CUDA build"
        expected = f"the CUDA {tables.dotted(wanted)} build {variant} names"
    elif variant.kind == "rocm":
        wanted = _version_tuple(variant.name.removeprefix("rocm"))
        if hip and _version_tuple(hip) == wanted:
            return None
        what = f"a ROCm (HIP {hip}) build" if hip else "not a ROCm build"
        expected = f"the ROCm {tables.dotted(wanted)} build {variant} names"
    elif variant.kind == "cpu" and (cuda or hip):
        what = f"a CUDA {cuda} build" if cuda else f"a ROCm (HIP {hip}) build"
        expected = "the CPU-only build cpu names"
    else:
        return None
    return Check(
        "build",
        "fail",
        f"torch {version} is {what}, not {expected}",
        "the installed torch is not the variant's build (its label says otherwise)",
        SYNC_FORCE,
    )


def _torch_checks(
    torch: dict[str, Any],
    report: dict[str, Any],
    variant: Variant,
    machine: Machine,
    left_out: tuple[NvidiaGpu, ...],
    fix: _Fix,
) -> list[Check]:
    version = str(torch.get("version"))
    cuda, hip = torch.get("cuda"), torch.get("hip")
    build = f"CUDA {cuda}" if cuda else f"ROCm (HIP {hip})" if hip else "CPU-only"
    cudnn = torch.get("cudnn")
    archs = [str(arch) for arch in torch.get("arch_list") or []]
    detail = f"{build} build" + (f", cuDNN {cudnn}" if cudnn else "")
    if archs:
        detail += f", compiled for {' '.join(archs)}"
    checks = [Check("build", "ok", f"torch {version}: {detail}")]
    wrong = _build_check(version, cuda, hip, variant)
    if wrong is not None:
        checks.append(wrong)
    available = bool(torch.get("is_available"))
    masks = report.get("masks") or {}
    hidden = ", ".join(f"{name}={value!r}" for name, value in masks.items())
    nvidia = machine.nvidia
    rocm_gpus = tuple(machine.rocm.gpus) if machine.rocm is not None else ()
    if (
        ((cuda and nvidia is not None) or (hip and rocm_gpus))
        and not available
        and hidden
    ):
        checks.append(
            Check(
                "gpu",
                "note",
                f"GPUs hidden by {hidden}: torch sees none, the GPU checks were skipped",
            )
        )
    elif cuda and nvidia is not None:
        if not available:
            checks.append(_not_visible(version, variant, machine, fix))
        elif nvidia.gpus:
            checks += _coverage(version, archs, nvidia.gpus, left_out, fix)
    elif hip and rocm_gpus and not available:
        listed = ", ".join(str(gpu) for gpu in rocm_gpus)
        checks.append(
            Check(
                "gpu",
                "fail",
                f"torch {version} cannot use the GPU: rocminfo lists {listed} but "
                "torch.cuda.is_available() is False",
                "the ROCm build does not reach the GPU (ROCm version or permissions)",
                "check that your user may use the GPU (groups video and render) and "
                "that the variant matches the installed ROCm; `poetry torch-cuda "
                "detect` shows which one does",
                machine=True,
            )
        )
    elif nvidia is None and not rocm_gpus and variant.kind in ("cuda", "rocm"):
        why = "; ".join(machine.notes) or "no driver found"
        checks.append(
            Check(
                "gpu",
                "note",
                f"no GPU on this machine ({why}): the GPU checks were skipped",
            )
        )
    skipped = {gpu.compute_capability for gpu in left_out}
    checks += _compute_checks(report.get("compute") or [], torch, version, skipped)
    operator = report.get("torchvision_op")
    if isinstance(operator, dict):
        checks.append(_operator_check(operator))
    return checks


def _not_visible(version: str, variant: Variant, machine: Machine, fix: _Fix) -> Check:
    nvidia = machine.nvidia
    assert nvidia is not None
    if not nvidia.reachable:
        return Check(
            "gpu",
            "note",
            f"GPU not reachable from here: driver {nvidia.version} is known only from "
            f"{nvidia.source} and there is no /dev/nvidia* device (a container "
            "without GPU access?): the GPU checks were skipped",
        )
    verdict = assess_variant(variant, machine, _public(version))
    if not verdict.driver_ok:
        return Check(
            "gpu",
            "fail",
            f"torch {version} cannot use the GPU: " + "; ".join(verdict.reasons),
            "the NVIDIA driver is too old for this build",
            "update the driver, or " + fix.switch("a build it runs"),
            machine=True,
        )
    listed = ", ".join(str(gpu) for gpu in nvidia.gpus) or "a GPU"
    return Check(
        "gpu",
        "fail",
        f"torch {version} cannot use the GPU: {nvidia.source} reports {listed} "
        "but torch.cuda.is_available() is False",
        "the CUDA build does not reach the GPU the driver reports "
        "(a driver/runtime mismatch or a broken driver install)",
        "check that `nvidia-smi` works; " + fix.switch("another build"),
        machine=True,
    )


def _coverage(
    version: str,
    archs: list[str],
    gpus: tuple[NvidiaGpu, ...],
    left_out: tuple[NvidiaGpu, ...],
    fix: _Fix,
) -> list[Check]:
    parsed = parse_archs(archs)
    if not parsed:
        return [
            Check(
                "architectures",
                "note",
                f"torch {version} lists no compiled GPU architectures; not checked",
            )
        ]
    checks = []
    for gpu in gpus:
        if gpu.compute_capability is None:
            checks.append(
                Check("architectures", "note", f"{gpu}: compute capability unknown")
            )
        elif tables.runs_on(parsed, gpu.compute_capability) is not None:
            continue
        elif gpu in left_out:
            checks.append(
                Check(
                    "architectures",
                    "note",
                    f"{gpu} is left out: no variant serves every GPU, and auto chose "
                    "this build knowing it is not built for it",
                )
            )
        else:
            checks.append(
                Check(
                    "architectures",
                    "fail",
                    f"torch {version} is not built for {gpu}: it builds "
                    f"{tables.describe_archs(parsed)}",
                    f"the build has no kernels for {gpu.sm}; every CUDA operation on "
                    "this GPU fails with 'no kernel image is available'",
                    fix.switch("a build for it"),
                    machine=True,
                )
            )
    return checks


def _compute_checks(
    compute: list[dict[str, Any]],
    torch: dict[str, Any],
    version: str,
    skipped: set[tuple[int, int] | None],
) -> list[Check]:
    devices = {f"cuda:{d.get('index')}": d for d in torch.get("devices") or []}
    checks = []
    for result in compute:
        device = str(result.get("device"))
        seen = devices.get(device, {})
        where = (
            "the CPU"
            if device == "cpu"
            else f"GPU {seen.get('index')} ({seen.get('name')})"
            if seen
            else device
        )
        if result.get("ok"):
            checks.append(Check(f"compute {device}", "ok", f"computes on {where}"))
            continue
        error = str(result.get("error"))
        on_gpu = device != "cpu"
        capability = seen.get("capability")
        if on_gpu and capability and tuple(capability) in skipped:
            checks.append(
                Check(f"compute {device}", "note", f"{where} left out by auto: {error}")
            )
            continue
        kernel = "no kernel image" in error
        checks.append(
            Check(
                f"compute {device}",
                "fail",
                f"torch {version} cannot compute on {where}: {error}",
                "the build has no kernels for this GPU"
                if kernel
                else "the GPU is visible but does not run the build's code"
                if on_gpu
                else "the installed torch is broken",
                "`poetry torch-cuda detect` shows a variant built for this GPU"
                if on_gpu
                else SYNC_FORCE,
                machine=on_gpu,
            )
        )
    return checks


def _operator_check(operator: dict[str, Any]) -> Check:
    name = str(operator.get("name"))
    if operator.get("ok"):
        return Check("torchvision operator", "ok", f"{name} runs")
    error = str(operator.get("error"))
    return Check(
        "torchvision operator",
        "fail",
        f"{name} fails: {error}",
        "torchvision was built for another torch (or another variant)"
        if "does not exist" in error or "undefined symbol" in error
        else "torchvision's operators do not run with this torch",
        SYNC_FORCE + " (torch and torchvision from the same variant)",
    )


def parse_archs(names: Iterable[str]) -> tuple[tables.Arch, ...]:
    """``["sm_75", "compute_90"]`` -> :class:`tables.Arch` (``compute_XY`` is PTX)."""
    found: dict[tuple[int, int], bool] = {}
    for name in names:
        match = _ARCH.fullmatch(name.strip())
        if match is None:
            continue
        key = (int(match.group(2)), int(match.group(3)))
        found[key] = found.get(key, False) or match.group(1) == "compute"
    return tuple(
        tables.Arch(major, minor, ptx) for (major, minor), ptx in sorted(found.items())
    )


def local_label(version: str) -> str | None:
    """``cu130`` for ``2.14.1+cu130``; ``None`` without a label or for no version."""
    try:
        return Version(version).local
    except InvalidVersion:
        return None


def _public(version: str) -> str | None:
    try:
        return Version(version).public
    except InvalidVersion:
        return None


def _version_tuple(text: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text)
    return None if match is None else (int(match.group(1)), int(match.group(2)))

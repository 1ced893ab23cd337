"""Judge the probe's report against the configured variant and this machine.

Pure: the report is the child's JSON (:mod:`poetry_torch_cuda.proof.child`),
the machine comes from :mod:`poetry_torch_cuda.machine.probe`. Every failing
check says what failed, why, and what to do; ``machine`` marks the failures
that belong to this machine rather than to the install (``auto`` moves on
from those). No GPU on the machine is a note, never a failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.machine import tables


if TYPE_CHECKING:
    from collections.abc import Iterable

    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.machine.probe import NvidiaGpu
    from poetry_torch_cuda.project.variants import Variant

Status = Literal["ok", "fail", "note"]
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
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "cause": self.cause,
            "fix": self.fix,
            "machine": self.machine,
        }


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
    def machine_reason(self) -> bool:
        """Whether the build fails because of this machine (another build may run)."""
        return bool(self.failures) and all(check.machine for check in self.failures)

    def ordered(self) -> tuple[Check, ...]:
        """Failures first, then what held, then notes."""
        rank = {"fail": 0, "ok": 1, "note": 2}
        return tuple(sorted(self.checks, key=lambda check: rank[check.status]))


def judge(
    report: dict[str, Any] | None,
    error: str | None,
    variant: Variant,
    machine: Machine,
    packages: Iterable[str],
) -> Verdict:
    """The verdict on ``report`` (or on ``error`` when the probe gave none)."""
    if report is None:
        return Verdict(
            (
                Check(
                    "probe",
                    "fail",
                    f"could not check the build: {error or 'no report'}",
                    "the environment's Python could not run the check to its end",
                    "run `poetry torch-cuda verify -vvv` to see the check's own "
                    "output; raise verify-timeout if the machine is just slow",
                ),
            )
        )
    checks: list[Check] = []
    entries: dict[str, Any] = report.get("packages") or {}
    for name in packages:
        checks += _package_checks(name, entries.get(name) or {}, variant)
    torch = report.get("torch")
    if isinstance(torch, dict):
        checks += _torch_checks(torch, report, variant, machine)
    elif not (entries.get("torch") or {}).get("installed"):
        checks.append(Check("torch", "note", "torch is not installed"))
    return Verdict(tuple(checks))


def _package_checks(name: str, entry: dict[str, Any], variant: Variant) -> list[Check]:
    if not entry.get("installed"):
        return [Check(f"import {name}", "note", f"{name} is not installed")]
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
    label = _label(version)
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


def _torch_checks(
    torch: dict[str, Any], report: dict[str, Any], variant: Variant, machine: Machine
) -> list[Check]:
    checks: list[Check] = []
    version = str(torch.get("version"))
    cuda, hip = torch.get("cuda"), torch.get("hip")
    build = f"CUDA {cuda}" if cuda else f"ROCm (HIP {hip})" if hip else "CPU-only"
    cudnn = torch.get("cudnn")
    archs = [str(arch) for arch in torch.get("arch_list") or []]
    detail = f"{build} build" + (f", cuDNN {cudnn}" if cudnn else "")
    if archs:
        detail += f", compiled for {' '.join(archs)}"
    checks.append(Check("build", "ok", f"torch {version}: {detail}"))
    if variant.kind == "cuda" and not cuda:
        checks.append(
            Check(
                "build",
                "fail",
                f"torch {version} is not a CUDA build although the variant is {variant}",
                "the installed torch is not the variant's build",
                SYNC_FORCE,
            )
        )
    available = bool(torch.get("is_available"))
    nvidia = machine.nvidia
    gpus = tuple(nvidia.gpus) if nvidia is not None else ()
    rocm_gpus = tuple(machine.rocm.gpus) if machine.rocm is not None else ()
    if cuda and nvidia is not None:
        if not available:
            checks.append(_not_visible(version, str(cuda), variant, machine))
        elif gpus:
            checks += _coverage(version, archs, gpus, variant, machine)
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
    checks += _compute_checks(report.get("compute") or [], torch, version)
    operator = report.get("torchvision_op")
    if isinstance(operator, dict):
        checks.append(_operator_check(operator))
    return checks


def _not_visible(version: str, cuda: str, variant: Variant, machine: Machine) -> Check:
    nvidia = machine.nvidia
    assert nvidia is not None
    build_cuda = _cuda_tuple(cuda) or variant.cuda_version
    newest = tables.newest_cuda(nvidia.version, machine.sys_platform)
    alternative = suggest(variant, machine, version)
    instead = f" or `poetry torch-cuda switch {alternative}`" if alternative else ""
    if build_cuda is not None and (newest is None or newest < build_cuda):
        needed = tables.minimum_driver(build_cuda, machine.sys_platform)
        family = (
            f"the CUDA {newest[0]} family (up to {tables.dotted(newest)})"
            if newest
            else "no CUDA release in the driver table"
        )
        return Check(
            "gpu",
            "fail",
            f"torch {version} cannot use the GPU: driver {nvidia.version} belongs "
            f"to {family} and a CUDA {tables.dotted(build_cuda)} build needs driver "
            f"{needed or '(unknown)'} or newer",
            "the NVIDIA driver is too old for this build",
            f"update the driver{instead}",
            machine=True,
        )
    listed = ", ".join(str(gpu) for gpu in nvidia.gpus) or "a GPU"
    return Check(
        "gpu",
        "fail",
        f"torch {version} cannot use the GPU: {nvidia.source} reports {listed} "
        "but torch.cuda.is_available() is False",
        "the CUDA build does not reach the GPU the driver reports "
        "(CUDA_VISIBLE_DEVICES, a driver/runtime mismatch or a broken driver install)",
        "check CUDA_VISIBLE_DEVICES and that `nvidia-smi` works"
        + (
            f"; {instead.removeprefix(' or ')} installs a build for it"
            if instead
            else ""
        ),
        machine=True,
    )


def _coverage(
    version: str,
    archs: list[str],
    gpus: tuple[NvidiaGpu, ...],
    variant: Variant,
    machine: Machine,
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
            continue
        if tables.runs_on(parsed, gpu.compute_capability) is not None:
            continue
        alternative = suggest(variant, machine, version)
        checks.append(
            Check(
                "architectures",
                "fail",
                f"torch {version} is not built for {gpu}: it builds "
                f"{tables.describe_archs(parsed)}",
                f"the build has no kernels for {gpu.sm}; every CUDA operation on "
                "this GPU fails with 'no kernel image is available'",
                f"`poetry torch-cuda switch {alternative}` installs a build for it"
                if alternative
                else "no configured variant is built for this GPU; use cpu",
                machine=True,
            )
        )
    return checks


def _compute_checks(
    compute: list[dict[str, Any]], torch: dict[str, Any], version: str
) -> list[Check]:
    names = {
        f"cuda:{device.get('index')}": f"GPU {device.get('index')} ({device.get('name')})"
        for device in torch.get("devices") or []
    }
    checks = []
    for result in compute:
        device = str(result.get("device"))
        where = "the CPU" if device == "cpu" else names.get(device, device)
        if result.get("ok"):
            checks.append(Check(f"compute {device}", "ok", f"computes on {where}"))
            continue
        error = str(result.get("error"))
        on_gpu = device != "cpu"
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
    """``["sm_75", "sm_90", "compute_90"]`` -> :class:`tables.Arch` entries.

    ``compute_XY`` is PTX for ``sm_XY``; unknown names are left out.
    """
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


def suggest(variant: Variant, machine: Machine, torch_version: str) -> str | None:
    """The newest other variant whose builds run on ``machine`` (by the tables), or cpu."""
    from poetry_torch_cuda.machine.detection import assess
    from poetry_torch_cuda.project.variants import Variant as VariantType

    public = _public(torch_version)
    for name in tables.CUDA_VARIANTS:
        if name == variant.name:
            continue
        if assess(VariantType(name, "cuda"), machine, public).usable:
            return name
    return None if variant.kind == "cpu" else "cpu"


def _label(version: str) -> str | None:
    try:
        return Version(version).local
    except InvalidVersion:
        return None


def _public(version: str) -> str | None:
    try:
        return Version(version).public
    except InvalidVersion:
        return None


def _cuda_tuple(text: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", text)
    return None if match is None else (int(match.group(1)), int(match.group(2)))

"""Facts about CUDA builds: which driver runs which CUDA, which GPUs each variant builds for.

Pure data and lookups, no I/O. Every table names its source and the day it
was read; update them when NVIDIA or PyTorch publish new releases.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion
from packaging.version import Version


#: CUDA toolkit -> the oldest driver that runs it, "CUDA Toolkit and Corresponding
#: Driver Versions" (Table 3, GA rows, "Toolkit Driver Version") of NVIDIA's CUDA
#: Toolkit release notes, docs.nvidia.com/cuda/cuda-toolkit-release-notes, read
#: 2026-11-27. These are the full-support minimums, not the older "minor version
#: compatibility" ones (525.60.13 for all of 12.x): PTX JIT and newer runtime
#: features fail below them, which is why uv's choice from the latter misfires.
LINUX_DRIVERS: tuple[tuple[tuple[int, int], str], ...] = (
    ((11, 8), "520.61.05"),
    ((12, 0), "525.60.13"),
    ((12, 1), "530.30.02"),
    ((12, 2), "535.54.03"),
    ((12, 3), "545.23.06"),
    ((12, 4), "550.54.14"),
    ((12, 5), "555.42.02"),
    ((12, 6), "560.28.03"),
    ((12, 8), "570.26"),
    ((12, 9), "575.51.03"),
    ((13, 0), "580.65.06"),
)

#: The Windows column of the same table, same source and day. For 13.0 the
#: table no longer names a bundled Windows driver (the toolkit stopped shipping
#: one); 580.88, the first Windows R580 release, stands in for it.
WINDOWS_DRIVERS: tuple[tuple[tuple[int, int], str], ...] = (
    ((11, 8), "520.06"),
    ((12, 0), "527.41"),
    ((12, 1), "531.14"),
    ((12, 2), "536.25"),
    ((12, 3), "545.84"),
    ((12, 4), "551.61"),
    ((12, 5), "555.85"),
    ((12, 6), "560.76"),
    ((12, 8), "570.65"),
    ((12, 9), "576.02"),
    ((13, 0), "580.88"),
)

#: Variant -> [(oldest torch release the list applies to, TORCH_CUDA_ARCH_LIST)],
#: newest first, for PyTorch's Linux x86_64 wheels. Sources, read 2026-11-27:
#: - cu126, cu128 (torch >= 2.8), cu129, cu130: pytorch/pytorch
#:   .ci/manywheel/build_cuda.sh at 799d09f2 (CUDA 13.0 era).
#: - cu128 for torch 2.7: the same script before sm_70 came back
#:   (pytorch/pytorch issue 157517): "7.5;8.0;8.6;9.0;10.0;12.0+PTX".
#: - cu118, cu121, cu124: pytorch/builder manywheel/build_cuda.sh (torch 2.1-2.6
#:   era): base "5.0;6.0;7.0;7.5;8.0;8.6" plus "3.7;9.0" (11.8), "9.0" (12.1),
#:   "9.0+PTX" (12.4).
ARCH_LISTS: dict[str, tuple[tuple[str, str], ...]] = {
    "cu130": (("0", "7.5;8.0;8.6;9.0;10.0;12.0+PTX"),),
    "cu129": (("0", "7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX"),),
    "cu128": (
        ("2.8", "7.0;7.5;8.0;8.6;9.0;10.0;12.0"),
        ("0", "7.5;8.0;8.6;9.0;10.0;12.0+PTX"),
    ),
    "cu126": (("0", "5.0;6.0;7.0;7.5;8.0;8.6;9.0"),),
    "cu124": (("0", "5.0;6.0;7.0;7.5;8.0;8.6;9.0+PTX"),),
    "cu121": (("0", "5.0;6.0;7.0;7.5;8.0;8.6;9.0"),),
    "cu118": (("0", "3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0"),),
}

#: On aarch64 the same script drops what no ARM board has (build_cuda.sh's
#: filter_aarch64_archs, same commit): sm_50..sm_75 and sm_86.
AARCH64_DROPPED = frozenset({"5.0", "6.0", "7.0", "7.5", "8.6"})

#: CUDA variants ``auto`` considers, newest first (the keys of ARCH_LISTS).
CUDA_VARIANTS: tuple[str, ...] = tuple(ARCH_LISTS)

#: ROCm variants ``variants`` asks the index about, newest first. rocm6.2.4 and
#: rocm6.3: ROCM_ARCHES in pytorch/pytorch .github/scripts/
#: generate_binary_build_matrix.py at 00018c94 (torch 2.7); the others from
#: PyTorch's release notes for torch 2.4-2.9; read 2026-11-27. A name missing
#: here costs nothing but a line: ``auto`` also tries ``rocm<X.Y>`` from the
#: machine's own ROCm version, and ``variants NAME`` asks about any variant.
ROCM_VARIANTS: tuple[str, ...] = (
    "rocm7.0",
    "rocm6.4",
    "rocm6.3",
    "rocm6.2.4",
    "rocm6.2",
    "rocm6.1",
)


@dataclass(frozen=True, order=True)
class Arch:
    """One entry of an arch list: ``8.6`` is ``Arch(8, 6)``; ``12.0+PTX`` adds PTX."""

    major: int
    minor: int
    ptx: bool = False

    def __str__(self) -> str:
        return f"sm_{self.major}{self.minor}" + ("+PTX" if self.ptx else "")


def parse_arch_list(text: str) -> tuple[Arch, ...]:
    """``"7.5;8.0;12.0+PTX"`` -> the :class:`Arch` entries, in order."""
    archs = []
    for item in text.split(";"):
        item = item.strip()
        ptx = item.endswith("+PTX")
        major, _, minor = item.removesuffix("+PTX").partition(".")
        archs.append(Arch(int(major), int(minor or 0), ptx))
    return tuple(archs)


def arch_list(
    variant: str, torch_version: str | None = None, machine: str = "x86_64"
) -> tuple[Arch, ...] | None:
    """The GPU architectures ``variant``'s torch wheels are built for, or ``None``.

    ``None`` means the variant is not in :data:`ARCH_LISTS` (not CUDA, or
    unknown). Without ``torch_version`` the newest list is used.
    """
    entries = ARCH_LISTS.get(variant)
    if entries is None:
        return None
    chosen = entries[0][1]
    if torch_version is not None:
        release = _release(torch_version)
        for since, text in entries:
            if release is None or release >= _release_or_zero(since):
                chosen = text
                break
    if machine.lower() in ("aarch64", "arm64"):
        chosen = ";".join(
            item
            for item in chosen.split(";")
            if item.removesuffix("+PTX") not in AARCH64_DROPPED
        )
    return parse_arch_list(chosen)


def runs_on(archs: tuple[Arch, ...], capability: tuple[int, int]) -> Arch | None:
    """The entry of ``archs`` that runs on a GPU of compute ``capability``, or ``None``.

    CUDA binaries (SASS) run on GPUs of the same major version and an equal or
    higher minor one (sm_86 code runs on sm_89); PTX is compiled at load time
    for any GPU at least as new.
    """
    major, minor = capability
    for arch in sorted(archs, reverse=True):
        if arch.major == major and arch.minor <= minor:
            return arch
    for arch in sorted(archs, reverse=True):
        if arch.ptx and (arch.major, arch.minor) <= capability:
            return arch
    return None


def describe_archs(archs: tuple[Arch, ...]) -> str:
    """``sm_70..sm_120+PTX`` for a list, for messages."""
    if not archs:
        return "no GPU architecture"
    ordered = sorted(archs)
    if len(ordered) == 1:
        return str(ordered[0])
    return f"{ordered[0]}..{ordered[-1]}"


def driver_table(sys_platform: str) -> tuple[tuple[tuple[int, int], str], ...]:
    """The toolkit/driver table of ``sys_platform`` (Windows has its own column)."""
    return WINDOWS_DRIVERS if sys_platform.startswith("win") else LINUX_DRIVERS


def newest_cuda(driver_version: str, sys_platform: str) -> tuple[int, int] | None:
    """The newest CUDA the driver fully supports, or ``None`` if older than all rows."""
    driver = _driver_key(driver_version)
    if driver is None:
        return None
    best = None
    for cuda, minimum in driver_table(sys_platform):
        key = _driver_key(minimum)
        if key is not None and driver >= key:
            best = cuda
    return best


def minimum_driver(cuda: tuple[int, int], sys_platform: str) -> str | None:
    """The oldest driver that runs CUDA ``cuda`` (12.7 falls back to 12.8's row)."""
    for version, minimum in driver_table(sys_platform):
        if version >= cuda:
            return minimum
    return None


def _driver_key(version: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in version.strip().split("."))
    except ValueError:
        return None


def _release(version: str) -> tuple[int, ...] | None:
    try:
        return Version(version).release
    except InvalidVersion:
        return None


def _release_or_zero(version: str) -> tuple[int, ...]:
    return _release(version) or (0,)

"""Facts about CUDA builds: which driver runs which CUDA, which GPUs each variant builds for.

Pure data and lookups. Every row names its source; what the rows do not know (a
``cu133`` next year) is decided by :func:`arch_list_for` and :func:`compat_floor`.

Sources (all read 2026-11-27):

- [NV-RN] NVIDIA CUDA Toolkit release notes, CUDA 13.2 Update 2 edition,
  docs.nvidia.com/cuda/cuda-toolkit-release-notes, section 2.2 "CUDA Driver":
  Table 2 (minimum driver for minor-version compatibility) and Table 3
  (toolkit driver versions, Linux x86_64 and Windows x86_64 columns).
- [NV-COMPAT] NVIDIA CUDA Compatibility guide, "Minor Version Compatibility",
  docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html:
  13.x >= 580, 12.x >= 525, 11.x >= 450; no PTX JIT below the toolkit's driver.
- [NV-RN-11.8] the CUDA 11.8 / 12.x-era release notes' Table 2, as quoted by
  light-the-torch (pmeier/light-the-torch light_the_torch/_cb.py at 33397cbe,
  2024-12-15) and uv (astral-sh/uv crates/uv-torch/src/backend.rs at 26a9dd4b,
  2026-08-21): the exact floors 525.60.13 / 528.33 (12.x) and 450.80.02 /
  452.39 (11.x). uv uses 580 for cu130 and cu132 on both platforms.
- [PT-REL] pytorch/pytorch RELEASE.md, "Release Compatibility Matrix" and
  "PyTorch CUDA Support Matrix" as of PR 197555 (2026-09-18; 2.14 added by
  PR 194367, 2026-08-21).
- [PT-RFC-2.11] pytorch/pytorch issue 172352 (sm_70 dropped from cu128 in
  2.11) and issue 172663 / PR 175253 (2.11 matrix).
- [PT-RFC-2.12] pytorch/pytorch issue 178665 and PR 182849 (cu128 dropped,
  cu132 experimental), PR 179072 (cu128 builds removed, 2026-04-01).
- [PT-RFC-2.14] pytorch/pytorch issue 190355 (cu132 the default, on PyPI).
- [PT-RFC-2.15] pytorch/pytorch issue 190385 (cu126 removed: no Maxwell,
  Pascal, Volta), PR 196249 and pytorch/test-infra PR 8739 (2026-09-06/08).
- [PT-BUILD] pytorch/pytorch .ci/manywheel/build_cuda.sh at 799d09f2 and
  pytorch/builder manywheel/build_cuda.sh (the torch 2.1-2.9 lists).
- [PT-ROCM] pytorch/test-infra PR 8451 (2026-08-05, ROCm 7.2/7.14) and
  pytorch/pytorch PR 190276 (rocm7.14 wheels).
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.project.variants import arch
from poetry_torch_cuda.project.variants import parse_variant


#: The day every table below was last checked against its sources.
READ_ON = "2026-11-27"
#: What to tell a user whose variant is newer than the tables.
UPDATE_HINT = (
    f"the tables were read on {READ_ON}; upgrade poetry-torch-cuda for newer facts"
)


@dataclass(frozen=True)
class DriverRow:
    """The driver NVIDIA ships with a CUDA toolkit (GA release), per platform;
    ``windows`` ``None`` from CUDA 13.0 (Table 3 reads "N/A", [NV-RN] footnote **)."""

    cuda: tuple[int, int]
    linux: str
    windows: str | None
    source: str


#: Table 3 of [NV-RN], GA rows, oldest first: the full-support minimums (PTX JIT too).
DRIVER_ROWS: tuple[DriverRow, ...] = (
    DriverRow((10, 0), "410.48", "411.31", "NV-RN Table 3"),
    DriverRow((10, 1), "418.39", "418.96", "NV-RN Table 3"),
    DriverRow((10, 2), "440.33", "441.22", "NV-RN Table 3"),
    DriverRow((11, 0), "450.36.06", "451.22", "NV-RN Table 3 (11.0.1 RC)"),
    DriverRow((11, 1), "455.23", "456.38", "NV-RN Table 3"),
    DriverRow((11, 2), "460.27.03", "460.82", "NV-RN Table 3"),
    DriverRow((11, 3), "465.19.01", "465.89", "NV-RN Table 3"),
    DriverRow((11, 4), "470.42.01", "471.11", "NV-RN Table 3"),
    DriverRow((11, 5), "495.29.05", "496.04", "NV-RN Table 3"),
    DriverRow((11, 6), "510.39.01", "511.23", "NV-RN Table 3"),
    DriverRow((11, 7), "515.43.04", "516.01", "NV-RN Table 3"),
    DriverRow((11, 8), "520.61.05", "520.06", "NV-RN Table 3"),
    DriverRow((12, 0), "525.60.13", "527.41", "NV-RN Table 3"),
    DriverRow((12, 1), "530.30.02", "531.14", "NV-RN Table 3"),
    DriverRow((12, 2), "535.54.03", "536.25", "NV-RN Table 3"),
    DriverRow((12, 3), "545.23.06", "545.84", "NV-RN Table 3"),
    DriverRow((12, 4), "550.54.14", "551.61", "NV-RN Table 3"),
    DriverRow((12, 5), "555.42.02", "555.85", "NV-RN Table 3"),
    DriverRow((12, 6), "560.28.03", "560.76", "NV-RN Table 3"),
    DriverRow((12, 8), "570.26", "570.65", "NV-RN Table 3"),
    DriverRow((12, 9), "575.51.03", "576.02", "NV-RN Table 3"),
    DriverRow((13, 0), "580.65.06", None, "NV-RN Table 3 (Windows: N/A)"),
    DriverRow((13, 1), "590.44.01", None, "NV-RN Table 3 (Windows: N/A)"),
    DriverRow((13, 2), "595.45.04", None, "NV-RN Table 3 (Windows: N/A)"),
)
# CUDA 13.3 GA (610.43.02) appears only in secondary sources read the same day;
# until NVIDIA's own table is read, cu133 is decided by the 13.x floor rule.


@dataclass(frozen=True)
class CompatFloor:
    """The oldest driver that runs any build of a CUDA major: SASS only, PTX JIT and
    some newer APIs need :data:`DRIVER_ROWS` ([NV-COMPAT], "Limitations")."""

    major: int
    linux: str
    windows: str
    source: str


#: [NV-RN] Table 2 names branches (13.x >= 580, 12.x >= 525, 11.x >= 450); the
#: stricter exact 12.x/11.x floors are [NV-RN-11.8]'s. 13.x: any R580 (as uv).
COMPAT_FLOORS: tuple[CompatFloor, ...] = (
    CompatFloor(11, "450.80.02", "452.39", "NV-RN-11.8 Table 2; NV-RN Table 2"),
    CompatFloor(12, "525.60.13", "528.33", "NV-RN-11.8 Table 2; NV-RN Table 2"),
    CompatFloor(13, "580", "580", "NV-RN Table 2; NV-COMPAT; uv backend.rs"),
)


@dataclass(frozen=True)
class ArchRow:
    """TORCH_CUDA_ARCH_LIST of one variant from torch ``since`` on; ``None``: as Linux
    (aarch64 without :data:`AARCH64_DROPPED`)."""

    since: str
    linux: str
    windows: str | None
    aarch64: str | None
    source: str


_CU13_X86 = "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
_CU13_WINDOWS = "7.5;8.0;8.6;9.0;10.0;12.0"  # "+PTX available on linux builds only"
_CU13_ARM = "8.0;9.0;10.0;11.0;12.0+PTX"
_CU128_211 = "7.5;8.0;8.6;9.0;10.0;12.0"
_CU126 = "5.0;6.0;7.0;7.5;8.0;8.6;9.0"

#: Variant -> rows, newest torch first. Per-release variants: :data:`TORCH_RELEASES`.
ARCH_LISTS: dict[str, tuple[ArchRow, ...]] = {
    "cu132": (ArchRow("2.12", _CU13_X86, _CU13_WINDOWS, _CU13_ARM, "PT-REL"),),
    "cu130": (
        ArchRow("2.11", _CU13_X86, _CU13_WINDOWS, _CU13_ARM, "PT-REL"),
        ArchRow("2.9", _CU13_X86, _CU13_WINDOWS, _CU13_ARM, "PT-RFC-2.11 (13.0.0)"),
    ),
    "cu129": (
        ArchRow("2.8", "7.0;7.5;8.0;8.6;9.0;10.0;12.0+PTX", None, None, "PT-BUILD"),
    ),
    "cu128": (
        ArchRow("2.11", _CU128_211, None, "8.0;9.0;10.0;12.0", "PT-RFC-2.11"),
        ArchRow("2.8", "7.0;7.5;8.0;8.6;9.0;10.0;12.0", None, None, "PT-BUILD"),
        ArchRow("0", "7.5;8.0;8.6;9.0;10.0;12.0+PTX", None, None, "PT-BUILD (2.7)"),
    ),
    "cu126": (
        ArchRow("2.11", _CU126, None, "8.0;9.0", "PT-REL; PT-RFC-2.11"),
        ArchRow("0", _CU126, None, None, "PT-BUILD"),
    ),
    "cu124": (ArchRow("0", "5.0;6.0;7.0;7.5;8.0;8.6;9.0+PTX", None, None, "PT-BUILD"),),
    "cu121": (ArchRow("0", "5.0;6.0;7.0;7.5;8.0;8.6;9.0", None, None, "PT-BUILD"),),
    "cu118": (ArchRow("0", "3.7;5.0;6.0;7.0;7.5;8.0;8.6;9.0", None, None, "PT-BUILD"),),
}

#: On aarch64 PyTorch's script drops what no ARM board has (build_cuda.sh's
#: filter_aarch64_archs, [PT-BUILD]): sm_50..sm_75 and sm_86.
AARCH64_DROPPED = frozenset({"5.0", "6.0", "7.0", "7.5", "8.6"})

#: CUDA variants ``auto`` considers, newest first (the keys of ARCH_LISTS).
CUDA_VARIANTS: tuple[str, ...] = tuple(ARCH_LISTS)


@dataclass(frozen=True)
class TorchRelease:
    """The variants one torch release publishes on download.pytorch.org."""

    release: str
    cuda: tuple[str, ...]
    rocm: tuple[str, ...]
    source: str


#: Newest first, stable and experimental builds. 2.15: the RFC and the PRs that
#: removed cu126. 2.14's ROCm: RELEASE.md says 7.14, test-infra PR 8451 7.2 too.
TORCH_RELEASES: tuple[TorchRelease, ...] = (
    TorchRelease("2.15", ("cu132", "cu130"), (), "PT-RFC-2.15"),
    TorchRelease(
        "2.14",
        ("cu132", "cu130", "cu126"),
        ("rocm7.14", "rocm7.2"),
        "PT-REL; PT-RFC-2.14; PT-ROCM",
    ),
    TorchRelease("2.13", ("cu132", "cu130", "cu126"), ("rocm7.2",), "PT-REL"),
    TorchRelease(
        "2.12",
        ("cu132", "cu130", "cu126"),
        ("rocm7.2",),
        "PT-REL; PT-RFC-2.12",
    ),
    TorchRelease(
        "2.11",
        ("cu130", "cu128", "cu126"),
        ("rocm7.2",),
        "PT-REL; PT-RFC-2.11",
    ),
    TorchRelease("2.10", ("cu130", "cu128", "cu126"), ("rocm7.1",), "PT-REL"),
    TorchRelease("2.9", ("cu130", "cu128", "cu126"), ("rocm6.4",), "PT-REL"),
    TorchRelease("2.8", ("cu129", "cu128", "cu126"), ("rocm6.4",), "PT-REL"),
    TorchRelease("2.7", ("cu128", "cu126", "cu118"), ("rocm6.3",), "PT-REL"),
    TorchRelease("2.6", ("cu126", "cu124", "cu118"), ("rocm6.2.4",), "PT-REL"),
    TorchRelease("2.5", ("cu124", "cu121", "cu118"), ("rocm6.2",), "PT-REL"),
    TorchRelease("2.4", ("cu124", "cu121", "cu118"), ("rocm6.1",), "PT-REL"),
)


def rocm_version(variant: str) -> tuple[int, ...]:
    """``(6, 2, 4)`` for ``rocm6.2.4`` (and for ROCm's own ``6.2.4``)."""
    return tuple(int(part) for part in variant.removeprefix("rocm").split("."))


#: ROCm variants asked about, newest first: :data:`TORCH_RELEASES`' plus rocm7.0
#: (torch 2.9 nightlies; uv's list). ``auto`` also tries the machine's ``rocm<X.Y>``.
_ROCMS = {name for row in TORCH_RELEASES for name in row.rocm} | {"rocm7.0"}
ROCM_VARIANTS: tuple[str, ...] = tuple(sorted(_ROCMS, key=rocm_version, reverse=True))


@dataclass(frozen=True, order=True)
class Arch:
    """One entry of an arch list: ``8.6`` is ``Arch(8, 6)``; ``12.0+PTX`` adds PTX."""

    major: int
    minor: int
    ptx: bool = False

    def __str__(self) -> str:
        return f"sm_{self.major}{self.minor}" + ("+PTX" if self.ptx else "")


def dotted(version: tuple[int, int] | None) -> str:
    """``"12.9"`` for a CUDA version or compute capability ``(12, 9)``; ``"?"`` if unknown."""
    return "?" if version is None else f"{version[0]}.{version[1]}"


def parse_arch_list(text: str) -> tuple[Arch, ...]:
    """``"7.5;8.0;12.0+PTX"`` -> the :class:`Arch` entries, in order."""
    archs = []
    for item in text.split(";"):
        item = item.strip()
        ptx = item.endswith("+PTX")
        major, _, minor = item.removesuffix("+PTX").partition(".")
        archs.append(Arch(int(major), int(minor or 0), ptx))
    return tuple(archs)


def is_known_variant(variant: str) -> bool:
    """Whether the tables have rows for ``variant`` (CUDA or ROCm)."""
    return variant in ARCH_LISTS or variant in ROCM_VARIANTS


def nearest_known(variant: str) -> str | None:
    """The known CUDA variant of the same major closest to ``variant`` (``cu133`` ->
    cu132); ties go to the older one, whose list is the smaller promise."""
    cuda = parse_variant(variant).cuda_version
    if cuda is None:
        return None
    same_major = [
        (abs(known[1] - cuda[1]), known[1], name)
        for name in ARCH_LISTS
        if (known := parse_variant(name).cuda_version) and known[0] == cuda[0]
    ]
    return min(same_major)[2] if same_major else None


def arch_list_for(
    variant: str, torch_version: str | None, machine: str, sys_platform: str
) -> tuple[Arch, ...] | None:
    """What ``variant``'s wheels are built for here (the newest list without
    ``torch_version``; an unknown variant takes :func:`nearest_known`'s), or ``None``."""
    name = variant if variant in ARCH_LISTS else nearest_known(variant)
    if name is None:
        return None
    rows, release = ARCH_LISTS[name], _release(torch_version or "")
    chosen = rows[0]
    if release is not None:
        since = (row for row in rows if release >= (_release(row.since) or (0,)))
        chosen = next(since, rows[-1])
    text = (sys_platform.startswith("win") and chosen.windows) or chosen.linux
    if arch(machine) == "aarch64":
        text = chosen.aarch64 or ";".join(
            item
            for item in chosen.linux.split(";")
            if item.removesuffix("+PTX") not in AARCH64_DROPPED
        )
    return parse_arch_list(text)


def sass_for(archs: tuple[Arch, ...], capability: tuple[int, int]) -> Arch | None:
    """The entry whose SASS runs on ``capability`` (same major, minor <=), or ``None``."""
    major, minor = capability
    fits = (a for a in archs if a.major == major and a.minor <= minor)
    return max(fits, default=None)


def ptx_for(archs: tuple[Arch, ...], capability: tuple[int, int]) -> Arch | None:
    """The ``+PTX`` entry the driver can JIT-compile for ``capability``, or ``None``."""
    jit = (a for a in archs if a.ptx and (a.major, a.minor) <= capability)
    return max(jit, default=None)


def runs_on(archs: tuple[Arch, ...], capability: tuple[int, int]) -> Arch | None:
    """The entry that runs on a GPU of ``capability``: SASS, else PTX (JIT), else ``None``."""
    return sass_for(archs, capability) or ptx_for(archs, capability)


def describe_archs(archs: tuple[Arch, ...]) -> str:
    """``sm_70..sm_120+PTX`` for a list, for messages."""
    if not archs:
        return "no GPU architecture"
    low, high = min(archs), max(archs)
    return str(low) if low == high else f"{low}..{high}"


def _driver_table(sys_platform: str) -> list[tuple[tuple[int, int], str]]:
    windows = sys_platform.startswith("win")
    rows = ((row.cuda, row.windows if windows else row.linux) for row in DRIVER_ROWS)
    return [(cuda, driver) for cuda, driver in rows if driver is not None]


def newest_cuda(driver_version: str, sys_platform: str) -> tuple[int, int] | None:
    """The newest CUDA the driver fully supports, or ``None`` if older than all rows."""
    rows = _driver_table(sys_platform)
    return max((c for c, low in rows if at_least(driver_version, low)), default=None)


def minimum_driver(cuda: tuple[int, int], sys_platform: str) -> str | None:
    """The oldest driver that fully runs CUDA ``cuda`` (12.7 takes 12.8's row);
    ``None`` beyond the table, and for CUDA 13.x on Windows (NVIDIA lists none)."""
    for version, minimum in _driver_table(sys_platform):
        if version >= cuda and version[0] == cuda[0]:
            return minimum
    return None


def compat_floor(major: int, sys_platform: str) -> str | None:
    """The minor-version-compatibility floor of CUDA ``major``, or ``None`` if unknown."""
    for floor in COMPAT_FLOORS:
        if floor.major == major:
            return floor.windows if sys_platform.startswith("win") else floor.linux
    return None


def compat_major(driver_version: str, sys_platform: str) -> int | None:
    """The newest CUDA major whose every minor runs on this driver through SASS."""
    floors = ((f.major, compat_floor(f.major, sys_platform)) for f in COMPAT_FLOORS)
    runs = [major for major, low in floors if at_least(driver_version, low)]
    return max(runs, default=None)


def torch_release(torch_version: str | None) -> TorchRelease | None:
    """The :data:`TORCH_RELEASES` row of ``2.14.1`` (by major.minor), or ``None``."""
    release = _release(torch_version or "") or ()
    key = ".".join(str(part) for part in release[:2])
    return next((row for row in TORCH_RELEASES if row.release == key), None)


def at_least(driver: str, minimum: str | None) -> bool:
    """Whether ``driver`` is ``minimum`` or newer (never for no minimum)."""
    have, need = _release(driver), _release(minimum or "")
    return have is not None and need is not None and have >= need


def _release(version: str) -> tuple[int, ...] | None:
    try:
        return Version(version).release
    except InvalidVersion:
        return None

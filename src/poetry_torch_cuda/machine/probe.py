"""What GPUs, drivers and toolkits this machine has: nvidia-smi, rocminfo, nvcc. Each
probe runs one executable with an argument list and a timeout, never a shell, and
never fails: what could not be learnt becomes a note that says why."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from poetry_torch_cuda.machine.tables import dotted
from poetry_torch_cuda.machine.tables import newest_cuda


if TYPE_CHECKING:
    from collections.abc import Sequence

TIMEOUT_SECONDS = 15.0
#: Drivers older than R510 know no ``compute_cap`` field: asked again without it.
SMI_FIELDS = ("driver_version,compute_cap,name", "driver_version,name")
#: Where /proc, /dev and /etc are looked up: ``/`` except in tests (a container's view).
ROOT_VARIABLE = "POETRY_TORCH_CUDA_SYSTEM_ROOT"
SMI_FAILED = "nvidia-smi failed"


@dataclass(frozen=True)
class NvidiaGpu:
    """One NVIDIA GPU; ``compute_capability`` is ``(8, 9)`` or ``None`` if unknown."""

    index: int
    name: str
    compute_capability: tuple[int, int] | None

    @property
    def capability(self) -> str | None:
        """``"8.9"``, or ``None`` when the compute capability is unknown."""
        cc = self.compute_capability
        return None if cc is None else dotted(cc)

    @property
    def sm(self) -> str:
        """``sm_89``, or ``sm_?`` when the compute capability is unknown."""
        return "sm_" + (self.capability or "?").replace(".", "")

    def __str__(self) -> str:
        return f"GPU {self.index} ({self.name}, {self.sm})"


@dataclass(frozen=True)
class NvidiaDriver:
    """The NVIDIA driver and its GPUs (none when read from /proc); ``reachable``:
    False when only /proc knows it and no /dev/nvidia* exists."""

    version: str
    source: str
    gpus: tuple[NvidiaGpu, ...] = ()
    reachable: bool = True


@dataclass(frozen=True)
class RocmGpu:
    """One AMD GPU agent as rocminfo lists it."""

    index: int
    gfx: str
    name: str

    def __str__(self) -> str:
        return f"GPU {self.index} ({self.name}, {self.gfx})"


@dataclass(frozen=True)
class Rocm:
    """The ROCm install: its version (from the version file) and GPU agents."""

    version: str | None
    gpus: tuple[RocmGpu, ...] = ()


@dataclass(frozen=True)
class Jetson:
    """An NVIDIA Jetson board: its L4T release (``/etc/nv_tegra_release``) and model."""

    l4t: tuple[int, int] | None
    model: str | None

    def __str__(self) -> str:
        release = f"L4T R{self.l4t[0]}.{self.l4t[1]}" if self.l4t else "L4T unknown"
        return f"NVIDIA Jetson ({self.model or 'model unknown'}, {release})"


@dataclass(frozen=True)
class Machine:
    """What the probes found; ``notes`` say why something is missing."""

    sys_platform: str
    machine: str
    nvidia: NvidiaDriver | None = None
    rocm: Rocm | None = None
    notes: tuple[str, ...] = ()
    jetson: Jetson | None = None

    @property
    def smi_failure(self) -> str | None:
        """Why an nvidia-smi on PATH gave no answer (hang, error, garbage), or ``None``."""
        return next((n for n in self.notes if n.startswith(SMI_FAILED)), None)

    def to_json(self) -> dict[str, Any]:
        """What the probes found, as JSON (``status --json``, ``detect --json``)."""
        nvidia, rocm = self.nvidia, self.rocm
        newest = nvidia and newest_cuda(nvidia.version, self.sys_platform)
        return {
            "platform": self.sys_platform,
            "machine": self.machine,
            "nvidia_driver": nvidia
            and {
                "version": nvidia.version,
                "source": nvidia.source,
                "max_cuda": newest and dotted(newest),
                "reachable": nvidia.reachable,
            },
            "gpus": [
                {"index": g.index, "name": g.name, "compute_capability": g.capability}
                for g in (nvidia.gpus if nvidia else ())
            ],
            "rocm": rocm
            and {
                "version": rocm.version,
                "gpus": [{"name": gpu.name, "gfx": gpu.gfx} for gpu in rocm.gpus],
            },
            "jetson": None if self.jetson is None else str(self.jetson),
            "notes": list(self.notes),
            "nvidia_smi_failure": self.smi_failure,
        }


def run_tool(args: Sequence[str]) -> tuple[str, str | None]:
    """The output of ``args`` and why it failed (``None``: it exited 0)."""
    try:
        process = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "", f"did not answer within {TIMEOUT_SECONDS:g} s"
    except OSError as error:
        return "", error.strerror or str(error)
    out, code = process.stdout, process.returncode
    return out, None if code == 0 else _first_line(process.stderr or out, code)


def parse_nvidia_smi(text: str) -> tuple[str, tuple[NvidiaGpu, ...]] | None:
    """The driver and GPUs in ``driver_version,compute_cap,name`` (or without
    ``compute_cap``) CSV lines; ``None`` when no line parses."""
    driver = None
    gpus: list[NvidiaGpu] = []
    for line in text.splitlines():
        fields = [part.strip() for part in line.split(",")]
        if len(fields) < 2 or not re.fullmatch(r"\d+\.\d+(?:\.\d+)?", fields[0]):
            continue
        capability = None
        name = ", ".join(fields[1:])
        if len(fields) >= 3:
            match = re.fullmatch(r"(\d+)\.(\d+)", fields[1])
            capability = (int(match[1]), int(match[2])) if match else None
            if capability is not None or fields[1] in ("[N/A]", "N/A"):
                name = ", ".join(fields[2:])
        driver = driver or fields[0]
        gpus.append(NvidiaGpu(len(gpus), name, capability))
    return None if driver is None else (driver, tuple(gpus))


def parse_rocminfo(text: str) -> tuple[RocmGpu, ...]:
    """The GPU agents (``Device Type: GPU``) in ``rocminfo`` output."""
    gpus: list[RocmGpu] = []
    agents = re.split(r"^\*+\s*\n\s*Agent \d+\s*\n\*+\s*$", text, flags=re.MULTILINE)
    for block in agents[1:]:
        values: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.strip().partition(":")
            if sep and key not in values:
                values[key.strip()] = value.strip()
        gfx = values.get("Name", "")
        if values.get("Device Type") == "GPU" and gfx.startswith("gfx"):
            gpus.append(RocmGpu(len(gpus), gfx, values.get("Marketing Name") or gfx))
    return tuple(gpus)


def probe_nvidia() -> tuple[NvidiaDriver | None, list[str]]:
    """Ask nvidia-smi (once; twice on pre-R510 drivers), else read /proc; notes say what failed."""
    notes: list[str] = []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        notes.append("nvidia-smi not found on PATH")
    else:
        for fields in SMI_FIELDS:
            query = [smi, f"--query-gpu={fields}", "--format=csv,noheader"]
            out, failure = run_tool(query)
            if failure is None or "compute_cap" not in out + failure:
                break
        parsed = parse_nvidia_smi(out)
        if parsed is not None:  # listed despite a warning (exit code 14: infoROM)
            notes += [f"nvidia-smi warned: {failure}"] if failure else []
            return NvidiaDriver(parsed[0], "nvidia-smi", parsed[1]), notes
        notes.append(
            f"{SMI_FAILED}: {failure or _first_line(out, 0)}; fix the NVIDIA driver "
            "until `nvidia-smi` answers (after a driver update: reboot)"
        )
    proc_version = system_root() / "proc/driver/nvidia/version"
    if (text := _read(proc_version)) is None:
        notes.append(f"{proc_version} does not exist (no NVIDIA kernel driver loaded)")
        return None, notes
    version = re.search(r"NVRM version:.*?\s(\d{3,}\.\d+(?:\.\d+)?)\s", text)
    if version is None:
        notes.append(f"{proc_version} names no driver version")
        return None, notes
    # /proc/driver is not namespaced: a container without GPU access sees the host's.
    reachable = any((system_root() / "dev").glob("nvidia*"))
    return NvidiaDriver(version[1], str(proc_version), reachable=reachable), notes


def probe_rocm() -> tuple[Rocm | None, list[str]]:
    """Read the ROCm version file and list GPU agents with rocminfo."""
    notes: list[str] = []
    root = Path(os.environ.get("ROCM_PATH") or "/opt/rocm")
    version_file = root / ".info/version"
    found = re.match(r"\s*(\d+\.\d+(?:\.\d+)?)", _read(version_file) or "")
    version = found[1] if found else None  # "6.4.1-120" is ROCm 6.4.1
    bundled = root / "bin" / "rocminfo"
    rocminfo = shutil.which("rocminfo") or (str(bundled) if bundled.is_file() else None)
    if rocminfo is None:
        notes.append("rocminfo not found on PATH")
        if version is not None:
            notes.append(f"ROCm {version} is installed but its GPUs cannot be listed")
        return None, notes
    out, failure = run_tool([rocminfo])
    if failure is not None:
        notes.append(f"rocminfo failed: {failure}")
        return None, notes
    if not (gpus := parse_rocminfo(out)):
        notes.append("rocminfo lists no GPU agent")
        return None, notes
    if version is None:
        notes.append(f"no ROCm version file at {version_file}")
    return Rocm(version, gpus), notes


def probe_nvcc() -> str | None:
    """The CUDA version of ``nvcc`` on PATH, in ``$CUDA_HOME/bin`` or ``%CUDA_PATH%``."""
    homes = [os.environ.get(variable) for variable in ("CUDA_HOME", "CUDA_PATH")]
    found = [Path(h, "bin", exe) for h in homes if h for exe in ("nvcc", "nvcc.exe")]
    nvcc = shutil.which("nvcc") or next((str(p) for p in found if p.is_file()), None)
    if nvcc is None:
        return None
    out, failure = run_tool([nvcc, "--version"])
    release = re.search(r"release (\d+\.\d+)", out)
    return release[1] if failure is None and release else None


def probe_jetson(root: Path | None = None) -> Jetson | None:
    """A Jetson board, from ``/etc/nv_tegra_release`` or a ``-tegra`` kernel; else ``None``."""
    root = root or system_root()
    release = _read(root / "etc/nv_tegra_release")
    kernel = _read(root / "proc/sys/kernel/osrelease") or ""
    if release is None and "tegra" not in kernel:
        return None
    model = (_read(root / "proc/device-tree/model") or "").replace("\x00", "").strip()
    # "# R36 (release), REVISION: 4.0, GCID: ..." is L4T R36.4
    found = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)", release or "")
    l4t = None if found is None else (int(found[1]), int(found[2]))
    return Jetson(l4t, model or None)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def system_root() -> Path:
    """``/``, or the directory :data:`ROOT_VARIABLE` names."""
    return Path(os.environ.get(ROOT_VARIABLE) or "/")


_PROBED: dict[tuple[object, ...], Machine] = {}


def probe_machine(*, machine: str | None = None) -> Machine:
    """Probe this machine (not on macOS): NVIDIA first, ROCm only when no NVIDIA
    driver answers; once per process for the same PATH and roots."""
    arch = machine or platform.machine()
    if sys.platform == "darwin":
        return Machine(sys.platform, arch)
    key = (arch, *map(os.environ.get, ("PATH", ROOT_VARIABLE, "ROCM_PATH")))
    if key not in _PROBED:
        nvidia, notes = probe_nvidia()
        rocm = None
        if nvidia is None and sys.platform.startswith("linux"):
            rocm, rocm_notes = probe_rocm()
            notes += rocm_notes
        _PROBED[key] = Machine(
            sys.platform, arch, nvidia, rocm, tuple(notes), probe_jetson()
        )
    return _PROBED[key]


def _first_line(text: str, code: int) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{line} (exit code {code})" if line else f"exit code {code}"

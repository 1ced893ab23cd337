"""What a variant name means (its kind, its label, where it has builds), the one home
of the platforms' words (:data:`SYSTEMS`, :data:`PLATFORMS`, :func:`arch`), and the
version helpers: a version's public part and its sort key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.markers import Marker
from packaging.version import InvalidVersion
from packaging.version import Version

from poetry_torch_cuda.errors import ConfigError


_CUDA = re.compile(r"cu(?P<major>1[0-9])(?P<minor>[0-9])")
_ROCM = re.compile(r"rocm[0-9]+\.[0-9]+(?:\.[0-9]+)?")

ALLOWED_VARIANTS = (
    '"cu118" … "cu13x", "cpu", "rocmX.Y[.Z]" (e.g. "rocm6.4"), "xpu" or "auto"'
)

#: Each OS in PEP 508's markers, by ``sys_platform`` (PyTorch's builds: Variant.built).
SYSTEMS: dict[str, dict[str, str]] = {
    name: {"sys_platform": name, "platform_system": system, "os_name": os_name}
    for name, system, os_name in [
        ("linux", "Linux", "posix"),
        ("win32", "Windows", "nt"),
        ("darwin", "Darwin", "posix"),
    ]
}
#: A fleet target's ``platform``: its OS, and its machine as ``platform.machine()`` says.
PLATFORMS: dict[str, dict[str, str]] = {
    "linux-x86_64": {**SYSTEMS["linux"], "platform_machine": "x86_64"},
    "linux-aarch64": {**SYSTEMS["linux"], "platform_machine": "aarch64"},
    "windows-x86_64": {**SYSTEMS["win32"], "platform_machine": "AMD64"},
}


def arch(machine: str) -> str:
    """``platform_machine`` in Linux's words: Windows' ``AMD64`` is ``x86_64``, macOS'
    (and Windows') ``arm64`` is ``aarch64``."""
    machine = machine.lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


@dataclass(frozen=True)
class Variant:
    """A PyTorch build variant such as ``cu129``, ``cpu`` or ``rocm6.4``."""

    #: Also the local version label of the variant's wheels (``2.8.0+cu129``).
    name: str
    kind: Literal["cuda", "rocm", "cpu", "xpu", "auto"]

    @property
    def cuda_version(self) -> tuple[int, int] | None:
        """``(12, 9)`` for ``cu129``; ``None`` for anything that is not CUDA."""
        match = _CUDA.fullmatch(self.name)
        return None if match is None else (int(match["major"]), int(match["minor"]))

    def built(self, name: str = "platform_system") -> str:
        """The marker of where PyTorch publishes the variant's builds (macOS only gets
        PyPI's default build, ROCm wheels are Linux-only), as PyTorch writes its own;
        the same in ``sys_platform``'s words."""
        system = SYSTEMS["linux" if self.kind == "rocm" else "darwin"][name]
        return f'{name} {"==" if self.kind == "rocm" else "!="} "{system}"'

    def not_built_for(self, sys_platform: str, shown: str | None = None) -> str | None:
        """``PyTorch publishes no cu129 builds for darwin`` (``sys_platform``, named
        ``shown`` if given), else ``None``: the one gate and wording for every command
        and hook, by :attr:`built`."""
        if Marker(self.built("sys_platform")).evaluate({"sys_platform": sys_platform}):
            return None
        what = "CUDA or ROCm" if self.kind == "auto" else self.name
        return f"PyTorch publishes no {what} builds for {shown or sys_platform}"

    def __str__(self) -> str:
        return self.name


def parse_variant(value: str) -> Variant:
    """The :class:`Variant` ``value`` names; a ``ValueError`` lists the allowed ones."""
    if (kind := _kind(value)) is not None:
        return Variant(value, kind)  # type: ignore[arg-type]
    lower = value.strip().lower()
    hint = f' (did you mean "{lower}"?)' if lower != value and _kind(lower) else ""
    raise ValueError(f"expected {ALLOWED_VARIANTS}{hint}")


def _kind(value: str) -> str | None:
    if value in ("cpu", "xpu", "auto"):
        return value
    if _CUDA.fullmatch(value):
        return "cuda"
    return "rocm" if _ROCM.fullmatch(value) else None


def variant_argument(value: str, origin: str = "") -> Variant:
    """The variant an argument (or the setting ``origin``) names; else a ConfigError."""
    try:
        return parse_variant(value)
    except ValueError as error:
        shown = f"{origin} = {value!r}" if origin else repr(value)
        raise ConfigError(f"{shown} is not a variant: {error}.") from None


def _parsed(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def public_version(version: str) -> str | None:
    """``2.9.0`` for ``2.9.0+cu129``; ``None``: not a version."""
    return None if (parsed := _parsed(version)) is None else parsed.public


def label_of(version: str) -> str | None:
    """``cu130`` for ``2.9.0+cu130``; ``None`` without a label or a version."""
    return None if (parsed := _parsed(version)) is None else parsed.local


def version_key(version: str) -> tuple[int, Version | str]:
    """A sort key for versions; one that does not parse sorts first."""
    return (0, version) if (parsed := _parsed(version)) is None else (1, parsed)

"""``[[tool.poetry-torch-cuda.targets]]``: the machines (driver, GPUs, platform) a
project must run on, checked by :func:`poetry_torch_cuda.machine.resolution.check_project_fleet`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.errors import describe_value


ORIGIN = "[[tool.poetry-torch-cuda.targets]]"
#: ``platform`` value -> (``sys.platform``, ``platform.machine()``).
PLATFORMS: dict[str, tuple[str, str]] = {
    "linux-x86_64": ("linux", "x86_64"),
    "linux-aarch64": ("linux", "aarch64"),
    "windows-x86_64": ("win32", "AMD64"),
}
_KEYS = ("name", "driver", "gpus", "platform")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DRIVER = re.compile(r"[1-9][0-9]{2,3}(?:\.[0-9]{1,3}){0,2}")
_CAPABILITY = re.compile(r"([1-9][0-9]?)\.([0-9])")
EXAMPLE = (
    f'{ORIGIN}\nname = "training"\ndriver = "570.124.06"\ngpus = ["9.0"]\n'
    'platform = "linux-x86_64"'
)


@dataclass(frozen=True)
class FleetTarget:
    """One declared machine: its driver, GPUs (compute capabilities) and platform."""

    name: str
    driver: str
    gpus: tuple[tuple[int, int], ...]
    platform: str = "linux-x86_64"

    @property
    def sys_platform(self) -> str:
        """``linux`` or ``win32``."""
        return PLATFORMS[self.platform][0]

    @property
    def machine(self) -> str:
        """``x86_64``, ``aarch64`` or ``AMD64``."""
        return PLATFORMS[self.platform][1]

    def describe(self) -> str:
        """``training (driver 570.124.06, sm_90, linux-x86_64)``."""
        sms = ", ".join(f"sm_{major}{minor}" for major, minor in self.gpus)
        return f"{self.name} (driver {self.driver}, {sms}, {self.platform})"


def find_target(targets: tuple[FleetTarget, ...], name: str) -> FleetTarget:
    """The target called ``name``; names are unique regardless of case.

    Raises:
        TorchCudaError: no target has that name (the message lists them).
    """
    for target in targets:
        if target.name.lower() == name.strip().lower():
            return target
    declared = ", ".join(t.name for t in targets) or "none"
    raise TorchCudaError(f"no target named {name!r} in {ORIGIN}; declared: {declared}.")


def parse_targets(value: Any) -> tuple[FleetTarget, ...]:
    """Validate the ``targets`` array of tables.

    Raises:
        ConfigError: anything is missing, unknown or malformed; the message
            names the entry, the key and an example.
    """
    if not isinstance(value, list):
        raise ConfigError(
            f"{ORIGIN} must be an array of tables, got {describe_value(value)}; write each "
            f"machine as:\n\n{EXAMPLE}"
        )
    targets: dict[str, FleetTarget] = {}
    for number, entry in enumerate(value, start=1):
        target = _target(number, entry)
        if target.name.lower() in targets:
            raise ConfigError(f"{ORIGIN} names {target.name!r} twice.")
        targets[target.name.lower()] = target
    return tuple(targets.values())


def _target(number: int, entry: Any) -> FleetTarget:
    where = f"{ORIGIN} entry {number}"
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{where} must be a table, got {describe_value(entry)}:\n\n{EXAMPLE}"
        )
    name = entry.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        where = f"{ORIGIN} {name!r}"
    unknown = sorted(str(key) for key in set(entry) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{where} has unknown key {unknown[0]!r}; allowed keys are "
            f"{', '.join(_KEYS)}."
        )
    missing = [key for key in ("name", "driver", "gpus") if key not in entry]
    if missing:
        raise ConfigError(f"{where} needs {missing[0]}; e.g.\n\n{EXAMPLE}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where} name must be letters, digits, '.', '_' or '-' (at most 64, "
            f'starting with a letter or digit), got {describe_value(name)}; e.g. "training".'
        )
    driver = entry["driver"]
    if not isinstance(driver, str) or not _DRIVER.fullmatch(driver.strip()):
        raise ConfigError(
            f"{where} driver must be an NVIDIA driver version as a string, such as "
            f'"570.124.06" or "535.104.05", got {describe_value(driver)}.'
        )
    gpus = entry["gpus"]
    if not isinstance(gpus, list) or not gpus:
        raise ConfigError(
            f"{where} gpus must be a non-empty array of compute capabilities, such "
            f'as ["9.0"] or ["8.0", "8.6"], got {describe_value(gpus)}.'
        )
    capabilities: list[tuple[int, int]] = []
    for gpu in gpus:
        match = _CAPABILITY.fullmatch(gpu.strip()) if isinstance(gpu, str) else None
        if match is None:
            raise ConfigError(
                f"{where} gpus entries must be compute capabilities such as "
                f'"8.6" (nvidia-smi --query-gpu=compute_cap), got {describe_value(gpu)}.'
            )
        capabilities.append((int(match[1]), int(match[2])))
    platform = entry.get("platform", "linux-x86_64")
    if platform not in PLATFORMS:
        raise ConfigError(
            f"{where} platform must be one of {', '.join(PLATFORMS)}, got "
            f"{describe_value(platform)}."
        )
    return FleetTarget(name, driver.strip(), tuple(capabilities), platform)

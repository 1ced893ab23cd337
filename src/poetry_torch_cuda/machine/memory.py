"""Builds that failed verification here, per environment (``<env>/`` :data:`FILE_NAME`),
keyed on the driver and the GPUs so a driver update starts afresh; ``auto`` skips them."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from poetry_torch_cuda.environment.envlock import state_dir
from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.tempfiles import write_json


if TYPE_CHECKING:
    from collections.abc import Callable

    from poetry_torch_cuda.machine.probe import Machine
    from poetry_torch_cuda.project.variants import Variant

FILE_NAME = ".poetry-torch-cuda-memory.json"
SCHEMA = 1


@dataclass(frozen=True)
class Failure:
    """One remembered failure: which build, when, and the verification's finding."""

    variant: str
    torch: str | None
    reason: str
    when: str
    machine: str

    def to_json(self) -> dict[str, Any]:
        """As stored and as ``detect --json`` shows it."""
        return dataclasses.asdict(self)


def machine_key(machine: Machine) -> str | None:
    """``driver 575.51.03; GPU 0 (NVIDIA GeForce GTX 1080, sm_61)``, or ``None`` without a GPU driver."""
    if machine.nvidia is not None:
        gpus = "; ".join(str(gpu) for gpu in machine.nvidia.gpus) or "GPUs unknown"
        return f"NVIDIA driver {machine.nvidia.version}; {gpus}"
    if machine.rocm is not None:
        gpus = "; ".join(str(gpu) for gpu in machine.rocm.gpus)
        return f"ROCm {machine.rocm.version or '?'}; {gpus}"
    return None


def memory_path(env_path: Path) -> Path:
    """Where an environment's memory lives."""
    return state_dir(Path(env_path)) / FILE_NAME


def failures(env_path: Path, machine: Machine | None = None) -> list[Failure]:
    """The remembered failures, all of them or those for ``machine`` only."""
    key = None if machine is None else machine_key(machine)
    if machine is not None and key is None:
        return []
    found = []
    for entry in _read(memory_path(env_path)):
        try:
            failure = Failure(
                **{f.name: entry[f.name] for f in dataclasses.fields(Failure)}
            )
        except (KeyError, TypeError):
            continue
        if key is None or failure.machine == key:
            found.append(failure)
    return found


def remember(
    env_path: Path, machine: Machine, variant: Variant, torch: str | None, reason: str
) -> bool:
    """Record that ``variant`` failed here; ``False`` when the machine has no key."""
    key = machine_key(machine)
    if key is None:
        return False
    path = memory_path(env_path)
    entries = [
        entry
        for entry in _read(path)
        if not (entry.get("machine") == key and entry.get("variant") == variant.name)
    ]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    entries.append(Failure(variant.name, torch, reason, when, key).to_json())
    write_json(path, {"schema": SCHEMA, "failures": entries})
    return True


def forget(env_path: Path) -> int:
    """Clear the memory; returns how many failures it held."""
    path = memory_path(env_path)
    count = len(_read(path))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return count


def remembering(
    offers: Callable[[Variant], Offer], env_path: Path, machine: Machine
) -> Callable[[Variant], Offer]:
    """``offers`` that answers "no" for builds that failed here before."""
    failed = {failure.variant: failure for failure in failures(env_path, machine)}
    if not failed:
        return offers

    def offer(variant: Variant) -> Offer:
        failure = failed.get(variant.name)
        if failure is None:
            return offers(variant)
        return Offer(
            False,
            f"failed verification in this environment ({failure.when}): "
            f"{failure.reason} (`poetry torch-cuda detect --forget` tries it again)",
            remembered=True,
        )

    return offer


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = data.get("failures") if isinstance(data, dict) else None
    return [entry for entry in entries or [] if isinstance(entry, dict)]

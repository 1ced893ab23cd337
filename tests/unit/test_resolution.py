"""``machine/resolution.choose``: the one call that makes ``auto``'s decision."""

from __future__ import annotations

from typing import TYPE_CHECKING

from poetry.utils.env import MockEnv

from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import NvidiaDriver
from poetry_torch_cuda.machine.probe import NvidiaGpu
from poetry_torch_cuda.machine.resolution import choose
from poetry_torch_cuda.machine.resolution import remember


if TYPE_CHECKING:
    from pathlib import Path

    from poetry_torch_cuda.project.variants import Variant

RTX = Machine(
    "linux",
    "x86_64",
    NvidiaDriver("580.95.05", "nvidia-smi", (NvidiaGpu(0, "RTX 4090", (8, 9)),)),
)


def offered(variant: Variant) -> Offer:
    return Offer(True, "on the index")


def test_an_env_remembers_failed_builds_a_target_does_not(tmp_path: Path) -> None:
    newest = choose(RTX, offered, "2.14.1").variant
    assert newest.kind == "cuda"
    assert remember(tmp_path, RTX, newest, f"2.14.1+{newest}", "no kernel")
    env = MockEnv(path=tmp_path)
    again = choose(RTX, offered, "2.14.1", env=env)
    assert again.variant != newest
    assert again.variant.kind == "cuda"
    skipped = next(o for v, o in again.candidates if v.variant == newest)
    assert skipped is not None and "failed verification" in skipped.detail
    # a declared target (no env) has no memory: the same machine picks as before
    assert choose(RTX, offered, "2.14.1").variant == newest

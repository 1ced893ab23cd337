"""``machine/resolution.choose``: the one call that makes ``auto``'s decision."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from poetry.utils.env import MockEnv

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import NvidiaDriver
from poetry_torch_cuda.machine.probe import NvidiaGpu
from poetry_torch_cuda.machine.resolution import choose
from poetry_torch_cuda.machine.resolution import left_to_pypi
from poetry_torch_cuda.machine.resolution import remember
from poetry_torch_cuda.machine.resolution import require_builds
from poetry_torch_cuda.project.variants import parse_variant


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
    (tmp_path / "pyvenv.cfg").write_text("")  # a virtualenv: its memory is inside
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


def test_a_variant_without_builds_here_has_one_wording() -> None:
    # status's note, the hooks' warning and switch/sync's refusal all say this.
    assert left_to_pypi(parse_variant("cu130"), "linux") is None
    said = (
        "PyTorch publishes no rocm6.4 builds for win32; "
        "Poetry installs PyPI's default build here"
    )
    assert left_to_pypi(parse_variant("rocm6.4"), "win32") == said
    with pytest.raises(TorchCudaError) as raised:
        require_builds(parse_variant("rocm6.4"), "win32")
    assert str(raised.value) == f"{said}."

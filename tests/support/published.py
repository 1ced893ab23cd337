"""A fake universe holding the builds PyTorch publishes today, for the README and demo.

PyTorch 2.14 (released 2026-09-02) is built for CUDA 12.6, 13.0 and 13.2 and
for the CPU; torchvision 0.29.1 goes with it, and torchaudio stopped at 2.11.
Sources: pytorch/pytorch RELEASE.md (PR 194367, "Add 2.14 to the release
compatibility and CUDA support matrices") and pytorch.org's published
versions (torch 2.14: CUDA 13.2; 13.0; 12.6; its 2.14.1 patch release with
torchvision 0.29.1 is the newest on PyPI). The README's examples and the
demo use only these pairs, so what they show exists on download.pytorch.org.

Wheels are the tiny ``py3-none-any`` fakes of :mod:`tests.support.catalog`,
with the dependency shapes of the real builds: PyPI's torch needs the CUDA 13
wheels, the cu126 build the ``-cu12`` ones, the cu130 build suffix-less CUDA 13
ones (cu132 reuses the CUDA 13.0 wheels: only the label matters here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.catalog import CUBLAS_13
from tests.support.catalog import CUBLAS_CU12
from tests.support.catalog import CUDA_RUNTIME_13
from tests.support.catalog import CUDNN_CU12
from tests.support.catalog import CUDNN_CU13
from tests.support.catalog import FILELOCK
from tests.support.catalog import PYPI
from tests.support.catalog import TRITON
from tests.support.catalog import Universe
from tests.support.catalog import WheelSpec
from tests.support.catalog import build_universe
from tests.support.catalog import cuda_toolkit
from tests.support.catalog import torch_requires


if TYPE_CHECKING:
    from pathlib import Path


__all__ = ["TORCH", "TORCHVISION", "VARIANTS", "build_published_universe"]

TORCH = "2.14.1"
TORCHVISION = "0.29.1"
#: The variant indexes that have torch 2.14.1.
VARIANTS = ("cpu", "cu126", "cu130", "cu132")


def _torch_requires(variant: str | None) -> tuple[str, ...]:
    # cu132 reuses the CUDA 13.0 wheels: only the label matters here.
    return torch_requires("cu130" if variant == "cu132" else variant)


def _family(variant: str | None) -> list[WheelSpec]:
    label = f"+{variant}" if variant else ""
    return [
        WheelSpec("torch", TORCH + label, _torch_requires(variant)),
        WheelSpec("torchvision", TORCHVISION + label, (f"torch=={TORCH}",)),
    ]


def published_specs() -> dict[str, list[WheelSpec]]:
    """Index name (``"pypi"`` or a variant) -> wheels."""
    filelock = WheelSpec("filelock", FILELOCK)
    triton = WheelSpec("triton", TRITON)
    cublas13 = WheelSpec("nvidia-cublas", CUBLAS_13)
    cudnn13 = WheelSpec("nvidia-cudnn-cu13", CUDNN_CU13, ("nvidia-cublas",))
    cublas12 = WheelSpec("nvidia-cublas-cu12", CUBLAS_CU12["cu126"])
    cudnn12 = WheelSpec("nvidia-cudnn-cu12", CUDNN_CU12, ("nvidia-cublas-cu12",))
    cuda13 = [filelock, triton, cublas13, cudnn13]
    return {
        PYPI: [
            *_family(None),
            *cuda13,
            WheelSpec("nvidia-cuda-runtime", CUDA_RUNTIME_13),
            cuda_toolkit(),
            cublas12,
            cudnn12,
        ],
        "cpu": [*_family("cpu"), filelock],
        "cu126": [*_family("cu126"), filelock, triton, cublas12, cudnn12],
        "cu130": [*_family("cu130"), *cuda13],
        "cu132": [*_family("cu132"), *cuda13],
        # Older variants stop at older releases: cu129 was built for 2.8 only, and
        # cu128 left the matrix after 2.11 (RELEASE.md's compatibility matrix).
        "cu129": [WheelSpec("torch", "2.8.0+cu129", ("filelock",)), filelock],
        "cu128": [WheelSpec("torch", "2.11.0+cu128", ("filelock",)), filelock],
    }


def build_published_universe(root: Path) -> Universe:
    """Build :func:`published_specs` under ``root``."""
    return build_universe(root, published_specs())

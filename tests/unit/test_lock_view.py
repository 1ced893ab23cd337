"""What ``poetry lock`` says a variant needs: the oldest driver under each rule, the GPUs."""

from __future__ import annotations

import pytest

from poetry_torch_cuda.project.variants import parse_variant
from poetry_torch_cuda.reports.lock_view import requirements


@pytest.mark.parametrize(
    ("variant", "torch", "machine", "platform", "expected"),
    [
        (
            "cu126",
            "2.14.1",
            "x86_64",
            "linux",
            (
                "needs driver >= 525.60.13 (CUDA 12.x minor-version compatibility) "
                "or >= 560.28.03 (full CUDA 12.6 support); GPUs sm_50..sm_90"
            ),
        ),
        (
            "cu132",
            "2.14.1",
            "aarch64",
            "linux",
            (
                "needs driver >= 580 (CUDA 13.x minor-version compatibility) or "
                ">= 595.45.04 (full CUDA 13.2 support); GPUs sm_80..sm_120+PTX"
            ),
        ),
        (
            "cu130",
            "2.14.1",
            "AMD64",
            "win32",
            (
                "needs driver >= 580 (CUDA 13.x minor-version compatibility); "
                "GPUs sm_75..sm_120"
            ),
        ),
        (
            "cu133",
            "2.16.0",
            "x86_64",
            "linux",
            (
                "needs driver >= 580 (CUDA 13.x minor-version compatibility); "
                "GPUs sm_75..sm_120+PTX; "
                "the tables predate cu133 (the tables were read on 2026-11-27; upgrade "
                "poetry-torch-cuda for newer facts); the CUDA 13.x floor 580 applies, "
                "GPU list taken from cu132"
            ),
        ),
    ],
)
def test_requirements(
    variant: str, torch: str, machine: str, platform: str, expected: str
) -> None:
    assert requirements(parse_variant(variant), torch, machine, platform) == expected


def test_non_cuda_variants_need_nothing_of_the_driver() -> None:
    assert requirements(parse_variant("cpu"), "2.14.1", "x86_64", "linux") == ""


def test_a_variant_without_a_gpu_list_says_so_once() -> None:
    needs = requirements(parse_variant("cu140"), "2.16.0", "x86_64", "linux")
    assert needs.startswith(
        "needs a driver with full CUDA 14.0 support (none in the table); "
        "GPUs unknown; the tables predate cu140"
    )

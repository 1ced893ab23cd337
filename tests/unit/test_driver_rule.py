"""The driver rule (NVIDIA CUDA Compatibility guide, "Minor Version Compatibility"):

a build runs when the driver is at least its CUDA major's floor and its SASS
covers every GPU, or when the driver fully supports its CUDA version and SASS
or PTX covers every GPU. Boundaries 524 / 525.60.13 / 535 / 560 / 580 against
real GPUs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.machine.detection import COMPAT_RULE
from poetry_torch_cuda.machine.detection import FULL_RULE
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.detection import decide
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.project.variants import parse_variant
from tests.support.machines import nvidia_machine as machine


if TYPE_CHECKING:
    from collections.abc import Callable

    from poetry_torch_cuda.project.variants import Variant

A100 = ("NVIDIA A100-SXM4-80GB", (8, 0))
H100 = ("NVIDIA H100 80GB HBM3", (9, 0))
L4 = ("NVIDIA L4", (8, 9))
GTX_1080_TI = ("NVIDIA GeForce GTX 1080 Ti", (6, 1))
V100 = ("Tesla V100-SXM2-16GB", (7, 0))
RTX_5090 = ("NVIDIA GeForce RTX 5090", (12, 0))
B200 = ("NVIDIA B200", (10, 0))
FUTURE = ("a GPU newer than every list", (13, 0))


def torch_214(variant: Variant) -> Offer:
    """torch 2.14 publishes cu126, cu130 and cu132 (RELEASE.md, RFC 190355)."""
    has = variant.name in ("cpu", "cu126", "cu130", "cu132")
    return Offer(has, f"{'has' if has else 'no'} torch 2.14.1+{variant}")


@pytest.mark.parametrize(
    ("driver", "gpus", "picked", "rule"),
    [
        # The R535 LTS cluster of the issue: an A100 used to get cpu.
        ("535.104.05", [A100], "cu126", COMPAT_RULE),
        ("524.0", [A100], "cpu", None),
        ("525.60.12", [A100], "cpu", None),
        ("525.60.13", [A100], "cu126", COMPAT_RULE),
        ("560.28.02", [A100], "cu126", COMPAT_RULE),
        ("560.28.03", [A100], "cu126", FULL_RULE),
        ("579.99", [H100], "cu126", FULL_RULE),
        ("580", [H100], "cu132", COMPAT_RULE),
        ("580.65.06", [H100, L4], "cu132", COMPAT_RULE),
        ("595.45.04", [H100], "cu132", FULL_RULE),
        ("535.104.05", [GTX_1080_TI], "cu126", COMPAT_RULE),
        ("580.95.05", [GTX_1080_TI], "cu126", FULL_RULE),
        ("535.104.05", [V100, A100], "cu126", COMPAT_RULE),
        # sm_120 SASS is only in the 13.x builds of 2.14: below the floor, cpu.
        ("575.51.03", [RTX_5090], "cpu", None),
        ("580.65.06", [RTX_5090, B200], "cu132", COMPAT_RULE),
        # PTX must be JIT-compiled: only the full-support driver will do.
        ("590.48.01", [FUTURE], "cu130", FULL_RULE),
        ("595.45.04", [FUTURE], "cu132", FULL_RULE),
        ("580.0", [FUTURE], "cpu", None),
    ],
)
def test_the_newest_usable_build_wins_and_says_which_rule(
    driver: str, gpus: list[tuple[str, tuple[int, int]]], picked: str, rule: str | None
) -> None:
    decision = decide(machine(driver, *gpus), torch_214, "2.14.1")
    assert decision.variant.name == picked
    chosen = [
        verdict for verdict, _ in decision.candidates if verdict.variant.name == picked
    ]
    if rule is None:
        assert picked == "cpu"
    else:
        assert chosen[0].rule == rule
        assert any(
            step.startswith(f"{picked}: chosen by {rule}") for step in decision.steps
        )


def test_the_compat_rule_states_what_it_gives_up() -> None:
    verdict = assess(parse_variant("cu126"), machine("535.104.05", A100), "2.14.1")
    assert verdict.usable is True
    assert verdict.rule == COMPAT_RULE
    assert verdict.reasons == (
        "driver 535.104.05 >= 525.60.13, the CUDA 12.x minor-version-compatibility floor",
        (
            "SASS in sm_50..sm_90 covers every GPU, so nothing is JIT-compiled "
            "(features that need a CUDA 12.6 driver are unavailable)"
        ),
    )


def test_ptx_only_coverage_needs_the_full_driver_and_says_so() -> None:
    verdict = assess(parse_variant("cu132"), machine("580.95.05", FUTURE), "2.14.1")
    assert verdict.usable is False
    assert verdict.reasons == (
        (
            "sm_130 (a GPU newer than every list) has only PTX in sm_75..sm_120+PTX; "
            "JIT-compiling it needs driver >= 595.45.04 (full CUDA 13.2 support); "
            "driver 580.95.05 supports CUDA 13.0"
        ),
    )


def test_unknown_gpus_count_only_under_full_support() -> None:
    verdict = assess(
        parse_variant("cu126"), machine("535.104.05", ("Tesla ?", None)), "2.14.1"
    )
    assert verdict.usable is False
    assert "GPU architectures unknown" in verdict.reasons[0]
    full = assess(parse_variant("cu126"), machine("560.35.03", ("Tesla ?", None)))
    assert (full.usable, full.rule) == (True, FULL_RULE)


def test_windows_has_no_ptx_in_13x_builds() -> None:
    # RELEASE.md: "+PTX available on linux builds only".
    verdict = assess(
        parse_variant("cu132"), machine("600.0", FUTURE, platform="win32"), "2.14.1"
    )
    assert verdict.usable is False
    assert "not built for sm_130" in verdict.reasons[0]


def offered(*names: str) -> Callable[[Variant], Offer]:
    def offers(variant: Variant) -> Offer:
        return Offer(variant.name in names, f"asked about {variant}")

    return offers


def test_an_unknown_variant_is_decided_by_rule_with_a_warning() -> None:
    verdict = assess(parse_variant("cu133"), machine("580.65.06", H100), "2.16.0")
    assert verdict.usable is True
    assert verdict.rule == COMPAT_RULE
    assert verdict.reasons[0].startswith(
        "the tables predate cu133 (the tables were read on"
    )
    assert (
        "the CUDA 13.x floor 580 applies, GPU list taken from cu132"
        in (verdict.reasons[0])
    )


def test_a_new_major_cannot_be_told() -> None:
    verdict = assess(parse_variant("cu140"), machine("700.0", H100))
    assert verdict.usable is None
    assert "the tables predate cu140" in verdict.reasons[0]


def rocm_machine(version: str) -> Machine:
    from poetry_torch_cuda.machine.probe import Rocm
    from poetry_torch_cuda.machine.probe import RocmGpu

    return Machine(
        "linux", "x86_64", rocm=Rocm(version, (RocmGpu(0, "gfx942", "MI300X"),))
    )


def test_an_unknown_rocm_is_decided_by_version_with_a_warning() -> None:
    verdict = assess(parse_variant("rocm7.3"), rocm_machine("7.3.1"))
    assert verdict.usable is True
    assert verdict.reasons[0].startswith("the tables predate rocm7.3")
    assert not assess(parse_variant("rocm8.0"), rocm_machine("7.3.1")).usable


def test_auto_takes_an_unknown_rocm_only_when_the_index_has_it() -> None:
    machine = rocm_machine("7.3.1")
    assert decide(machine, offered("rocm7.3", "rocm7.2")).variant.name == "rocm7.3"
    unsure = decide(
        machine,
        lambda v: Offer(None if v.name == "rocm7.3" else v.name == "rocm7.2", "?"),
    )
    assert unsure.variant.name == "rocm7.2"

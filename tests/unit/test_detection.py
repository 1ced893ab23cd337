"""What ``auto`` picks, for machines described directly (the probes have their own tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.machine.detection import assess
from poetry_torch_cuda.machine.detection import cpu_fallback_warning
from poetry_torch_cuda.machine.detection import decide
from poetry_torch_cuda.machine.probe import Machine
from poetry_torch_cuda.machine.probe import Rocm
from poetry_torch_cuda.machine.probe import RocmGpu
from poetry_torch_cuda.project.variants import parse_variant
from tests.support.machines import nvidia_machine as nvidia


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterable

    from poetry_torch_cuda.project.variants import Variant

GTX_1080 = ("NVIDIA GeForce GTX 1080", (6, 1))
T4 = ("Tesla T4", (7, 5))
RTX_4090 = ("NVIDIA GeForce RTX 4090", (8, 9))
RTX_5090 = ("NVIDIA GeForce RTX 5090", (12, 0))


def index_with(*names: str) -> Callable[[Variant], Offer]:
    """An index that has the locked builds for exactly ``names``."""

    def offers(variant: Variant) -> Offer:
        if variant.name in names:
            return Offer(True, f"has torch 2.14.1+{variant}")
        return Offer(False, f"has no torch 2.14.1+{variant}")

    return offers


EVERYTHING = index_with("cpu", "cu118", "cu126", "cu128", "cu129", "cu130", "rocm6.4")


@pytest.mark.parametrize(
    ("machine", "offered", "expected"),
    [
        (nvidia("580.95.05", RTX_5090), EVERYTHING, "cu130"),
        (nvidia("575.51.03", RTX_5090), EVERYTHING, "cu129"),
        # Below 12.9's own driver, cu129's sm_120 SASS still runs (12.x floor)
        (nvidia("570.86.10", RTX_5090), EVERYTHING, "cu129"),
        (nvidia("560.35.03", RTX_5090), EVERYTHING, "cu129"),
        (nvidia("575.51.03", RTX_4090), EVERYTHING, "cu129"),
        (nvidia("580.65.06", T4), EVERYTHING, "cu130"),
        (nvidia("575.51.03", GTX_1080), EVERYTHING, "cu126"),  # uv issue 14742
        (nvidia("580.65.06", GTX_1080), index_with("cpu", "cu129", "cu130"), "cpu"),
        (nvidia("520.61.05", RTX_4090), EVERYTHING, "cu118"),
        (nvidia("470.82.01", RTX_4090), EVERYTHING, "cu118"),  # 11.x floor 450.80.02
        (nvidia("450.80.01", RTX_4090), EVERYTHING, "cpu"),  # below every floor
        (nvidia("575.51.03", RTX_4090), index_with("cpu", "cu126"), "cu126"),
        (nvidia("576.02", RTX_4090, platform="win32"), EVERYTHING, "cu129"),
        (nvidia("528.33", RTX_4090, platform="win32"), EVERYTHING, "cu129"),
        (nvidia("528.32", RTX_4090, platform="win32"), EVERYTHING, "cu118"),
    ],
)
def test_auto_picks(
    machine: Machine, offered: Callable[[Variant], Offer], expected: str
) -> None:
    assert decide(machine, offered, "2.14.1").variant.name == expected


def test_the_reasons_name_every_skipped_variant() -> None:
    decision = decide(nvidia("575.51.03", GTX_1080), index_with("cpu", "cu126"))
    assert decision.variant.name == "cu126"
    assert decision.steps == (
        (
            "NVIDIA driver 575.51.03 (from nvidia-smi) fully supports CUDA 12.9 and "
            "older; runs any CUDA 12.x build whose SASS covers the GPUs "
            "(minor-version compatibility)"
        ),
        "GPU 0 (NVIDIA GeForce GTX 1080, sm_61): compute capability 6.1",
        (
            "cu132: skipped, needs driver >= 580 (CUDA 13.x minor-version "
            "compatibility) or >= 595.45.04 (full CUDA 13.2 support); driver "
            "575.51.03 supports CUDA 12.9"
        ),
        (
            "cu130: skipped, needs driver >= 580 (CUDA 13.x minor-version "
            "compatibility) or >= 580.65.06 (full CUDA 13.0 support); driver "
            "575.51.03 supports CUDA 12.9"
        ),
        (
            "cu129: skipped, not built for sm_61 (NVIDIA GeForce GTX 1080): "
            "builds sm_70..sm_120+PTX"
        ),
        (
            "cu128: skipped, not built for sm_61 (NVIDIA GeForce GTX 1080): "
            "builds sm_75..sm_120"
        ),
        (
            "cu126: chosen by full support, driver 575.51.03 fully supports CUDA "
            "12.6; builds sm_50..sm_90, which covers every GPU"
        ),
    )
    assert decision.forced_by == (
        "GPU 0 (NVIDIA GeForce GTX 1080, sm_61) forced cu126: newer variants are "
        "not built for it"
    )


def test_what_the_index_lacks_is_skipped_and_said() -> None:
    decision = decide(nvidia("575.51.03", GTX_1080), index_with("cpu"), "2.14.1")
    assert decision.variant.name == "cpu"
    assert (
        "cu126: skipped, has no torch 2.14.1+cu126; it would run by full support"
        in decision.steps
    )
    assert decision.steps[-1] == "cpu: no CUDA variant fits"


def test_several_gpus_must_all_be_served() -> None:
    machine = nvidia("575.51.03", RTX_4090, GTX_1080)
    decision = decide(machine, EVERYTHING)
    assert decision.variant.name == "cu126"
    assert decision.forced_by is not None
    assert decision.forced_by.startswith("GPU 1 (NVIDIA GeForce GTX 1080, sm_61)")


def test_gpus_no_variant_serves_together_say_who_is_left_out() -> None:
    machine = nvidia("580.65.06", ("Tesla K40", (3, 5)), RTX_5090)
    decision = decide(machine, EVERYTHING)
    # no build has sm_35: the newest serving the 5090 wins
    assert decision.variant.name == "cu130"
    assert decision.forced_by == (
        "GPU 0 (Tesla K40, sm_35) cannot be served together with the other GPUs"
    )
    assert decision.steps[-1].startswith("no variant builds for every GPU; cu130")
    # cu126 serves only the 1080, cu128+ only the 5090, cu124 (PTX) both but the
    # index lacks it: the GPU is left out for a skipped build, not for want of one
    decision = decide(nvidia("580.65.06", GTX_1080, RTX_5090), EVERYTHING)
    assert decision.variant.name == "cu130"
    assert decision.forced_by == (
        "GPU 0 (NVIDIA GeForce GTX 1080, sm_61) is left out: every variant built "
        "for every GPU is skipped"
    )


def test_no_pick_serves_the_rest_only_by_a_jit_the_driver_lacks() -> None:
    # cu124 leaves the K40 out and reaches the B200 only by PTX JIT, which needs
    # full CUDA 12.4 support (550.54.14); a 12.x floor driver cannot JIT it.
    machine = nvidia("530.30.02", ("Tesla K40", (3, 5)), ("NVIDIA B200", (10, 0)))
    decision = decide(machine, index_with("cpu", "cu118", "cu121", "cu124"))
    assert decision.variant.name == "cpu"
    assert decision.left_out == ()
    assert decision.steps[-1] == (
        "cpu: no CUDA variant fits; a driver >= 550.54.14 runs cu124"
    )
    verdict = assess(parse_variant("cu124"), machine, "2.4.1")
    assert not verdict.usable and not verdict.driver_ok
    warning = cpu_fallback_warning(decision, machine)
    assert warning is not None
    assert "update the NVIDIA driver (>= 550.54.14 runs cu124)" in warning


def test_the_driver_fix_names_a_build_the_locked_torch_publishes() -> None:
    # torch 2.14 publishes cu126, cu130, cu132: a driver that runs cu118 (older
    # than the lowest 2.14 asks, 525.60.13) would leave auto at cpu.
    machine = nvidia("390.48", GTX_1080)
    decision = decide(machine, index_with("cpu", "cu126", "cu130"), "2.14.1")
    assert decision.variant.name == "cpu"
    warning = cpu_fallback_warning(decision, machine)
    assert warning is not None
    assert "update the NVIDIA driver (>= 525.60.13 runs cu126)" in warning
    # A GPU no published build is built for: no driver helps.
    kepler = nvidia("390.48", ("NVIDIA GeForce GTX 780", (3, 5)))
    decision = decide(kepler, EVERYTHING, "2.14.1")
    warning = cpu_fallback_warning(decision, kepler)
    assert warning is not None
    assert "update the NVIDIA driver" not in warning
    assert "`poetry torch-cuda detect`" in warning


@pytest.mark.parametrize(
    ("driver", "torch"),
    [
        ("520.61.05", "2.14.1"),  # a mirror without cu126, which torch 2.14 publishes
        ("418.39", "2.16.0"),  # a torch newer than the tables: cu118 is not on it
    ],
)
def test_the_driver_fix_names_a_build_the_index_has(driver: str, torch: str) -> None:
    offers = index_with("cpu", "cu130", "cu132")
    decision = decide(nvidia(driver, RTX_4090), offers, torch)
    assert decision.variant.name == "cpu"
    warning = cpu_fallback_warning(decision, nvidia(driver, RTX_4090))
    assert warning is not None
    assert "update the NVIDIA driver (>= 580 runs cu132)" in warning, warning
    # Following the advice makes it auto's pick.
    assert decide(nvidia("580", RTX_4090), offers, torch).variant.name == "cu132"


def test_an_unreachable_index_leaves_out_no_gpu_for_a_build_the_release_lacks() -> None:
    # No build serves a GTX 1080, a V100 and an RTX 5090 together. cu129 would
    # leave out only the GTX 1080, but torch 2.14 publishes no cu129: with the
    # index unreachable auto takes cu126 (leaving the RTX 5090 out), as it does
    # when the index answers.
    machine = nvidia("580.95.05", GTX_1080, ("Tesla V100", (7, 0)), RTX_5090)
    unreachable = lambda variant: Offer(None, "could not ask the index")
    decision = decide(machine, unreachable, "2.14.1")
    assert decision.variant.name == "cu126", decision.steps
    assert [gpu.name for gpu in decision.left_out] == ["NVIDIA GeForce RTX 5090"]
    torch_2_14 = index_with("cpu", "cu126", "cu130", "cu132")
    assert decide(machine, torch_2_14, "2.14.1").variant.name == "cu126"


def test_an_unreachable_index_is_not_assumed_to_have_what_the_release_lacks() -> None:
    # torch 2.11 publishes cu130, cu128, cu126: with the index unreachable, auto
    # assumes it has the build, but never one PyTorch's release matrix lacks.
    unreachable = lambda variant: Offer(None, "could not ask the index")
    decision = decide(nvidia("600.10", RTX_4090), unreachable, "2.11.0")
    assert decision.variant.name == "cu130"
    assert any(
        step.startswith("cu132: skipped, torch 2.11 does not publish it")
        for step in decision.steps
    ), decision.steps
    # A torch newer than the tables: nothing to go by but the index.
    assert decide(nvidia("600.10", RTX_4090), unreachable, "9.0.0").variant.name == (
        "cu132"
    )


def test_unknown_compute_capability_is_not_held_against_a_variant() -> None:
    decision = decide(nvidia("575.51.03", ("Tesla K80", None)), EVERYTHING)
    assert decision.variant.name == "cu129"
    assert any("compute capability unknown" in step for step in decision.steps)


def test_an_unreachable_index_is_assumed_to_have_the_build() -> None:
    decision = decide(
        nvidia("575.51.03", RTX_4090), lambda _: Offer(None, "could not ask")
    )
    assert decision.variant.name == "cu129"
    # the pick says it, and is the last step (a step after it repeated the variant)
    assert decision.steps[-1].startswith("cu129: chosen by full support, ")
    assert decision.steps[-1].endswith("; could not ask; assuming it has it")


def test_no_gpu_means_cpu_with_the_probes_notes() -> None:
    machine = Machine("linux", "x86_64", notes=("nvidia-smi not found on PATH",))
    decision = decide(machine, EVERYTHING)
    assert decision.variant.name == "cpu"
    assert decision.steps[0] == "nvidia-smi not found on PATH"
    assert "cpu: no GPU to build for" in decision.steps


def test_macos_gets_pypis_build() -> None:
    decision = decide(Machine("darwin", "arm64"), EVERYTHING)
    assert decision.variant.name == "cpu"
    assert "PyPI's default build" in decision.steps[0]


def rocm(version: str | None) -> Machine:
    return Machine(
        "linux", "x86_64", rocm=Rocm(version, (RocmGpu(0, "gfx1100", "RX 7900 XTX"),))
    )


@pytest.mark.parametrize(
    ("version", "offered", "expected"),
    [
        ("6.4.1", EVERYTHING, "rocm6.4"),
        ("6.4.1", index_with("cpu", "rocm6.3", "rocm6.2"), "rocm6.3"),
        ("6.2.4", index_with("cpu", "rocm6.2.4", "rocm6.4"), "rocm6.2.4"),
        ("7.0.2", index_with("cpu", "rocm6.4"), "cpu"),  # another major
        (None, index_with("cpu", "rocm6.3"), "rocm6.3"),
    ],
)
def test_rocm(
    version: str | None, offered: Callable[[Variant], Offer], expected: str
) -> None:
    assert decide(rocm(version), offered).variant.name == expected


def test_auto_settling_for_cpu_next_to_an_amd_gpu_says_so() -> None:
    # ROCm 6.0: torch 2.4 publishes rocm6.1, newer than this machine's ROCm.
    machine = rocm("6.0.2")
    decision = decide(machine, index_with("cpu", "rocm6.1"), "2.4.1")
    assert decision.variant.name == "cpu"
    assert "rocm6.1: skipped, does not match ROCm 6.0.2" in decision.steps
    warning = cpu_fallback_warning(decision, machine)
    assert warning is not None
    assert warning.startswith(
        "auto installs the CPU build next to RX 7900 XTX (ROCm 6.0.2): "
        "not on the index for this torch: rocm6.0"
    ), warning


def test_assess_explains_each_variant() -> None:
    machine = nvidia("575.51.03", GTX_1080)

    def usable(names: Iterable[str]) -> list[bool | None]:
        return [assess(parse_variant(name), machine).usable for name in names]

    assert usable(["cpu", "cu126", "cu129", "cu130", "rocm6.4", "xpu"]) == [
        True,
        True,
        False,
        False,
        False,
        None,
    ]
    verdict = assess(parse_variant("cu129"), Machine("linux", "x86_64"))
    assert verdict.reasons == ("no NVIDIA driver found",)
    assert not assess(parse_variant("rocm6.4"), Machine("win32", "AMD64")).usable

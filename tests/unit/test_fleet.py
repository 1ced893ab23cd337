"""``[[tool.poetry-torch-cuda.targets]]``: validation (examples and a fuzz) and fleet checks."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.index.client import wheel_fits
from poetry_torch_cuda.index.offers import Offer
from poetry_torch_cuda.machine.detection import COMPAT_RULE
from poetry_torch_cuda.machine.detection import FULL_RULE
from poetry_torch_cuda.machine.resolution import check_target
from poetry_torch_cuda.project.config import FleetTarget
from poetry_torch_cuda.project.config import load_config
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from poetry_torch_cuda.project.variants import Variant


def config_with(targets: Any, variant: str = "cu130") -> dict[str, Any]:
    return {"tool": {"poetry-torch-cuda": {"variant": variant, "targets": targets}}}


TRAINING = {"name": "training", "driver": "570.124.06", "gpus": ["9.0"]}
LAB = {
    "name": "lab",
    "driver": "550.54.14",
    "gpus": ["6.1"],
    "platform": "linux-x86_64",
}


def test_targets_parse() -> None:
    config = load_config(config_with([TRAINING, LAB]), environ={})
    assert config is not None
    assert config.targets == (
        FleetTarget("training", "570.124.06", ((9, 0),)),
        FleetTarget("lab", "550.54.14", ((6, 1),), "linux-x86_64"),
    )
    assert config.targets[1].describe() == "lab (driver 550.54.14, sm_61, linux-x86_64)"


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"name": "x"}, "must be a non-empty array of tables, got a table"),
        (
            [],
            "non-empty array of tables, got an array; leave the key out for none",
        ),
        (["training"], "entry 1 must be a table, got a string 'training'"),
        ([{"driver": "570.1", "gpus": ["9.0"]}], "entry 1 needs name"),
        ([{**TRAINING, "gpu": ["9.0"]}], "'training' has unknown key 'gpu'"),
        ([{**TRAINING, "driver": 570}], "driver must be an NVIDIA driver version"),
        ([{**TRAINING, "driver": "latest"}], "got a string 'latest'"),
        ([{**TRAINING, "gpus": []}], "gpus must be a non-empty array"),
        ([{**TRAINING, "gpus": ["sm_90"]}], 'compute capabilities such as "8.6"'),
        ([{**TRAINING, "gpus": [9.0]}], "got a float 9.0"),
        ([{**TRAINING, "platform": "macos"}], "platform must be one of linux-x86_64"),
        ([{**TRAINING, "platform": ["linux-x86_64"]}], "platform must be one of"),
        ([{**TRAINING, "name": "a b"}], "name must be letters, digits"),
        ([TRAINING, {**LAB, "name": "Training"}], "names 'Training' twice"),
    ],
)
def test_bad_targets_say_what_and_where(targets: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(config_with(targets), environ={})
    assert message in str(raised.value)
    assert "[[tool.poetry-torch-cuda.targets]]" in str(raised.value)


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["570.124.06", "9.0", "6.1", "linux-aarch64", "lab", "sm_90"])
    | st.dates()
    | st.times().map(lambda t: datetime.datetime.combine(datetime.date.today(), t)),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "driver", "gpus", "platform", "other"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(values)
def test_targets_parse_or_raise_config_error_never_anything_else(value: Any) -> None:
    try:
        config = load_config(config_with(value), environ={})
    except ConfigError as error:
        assert "targets" in str(error)
        return
    assert config is not None
    for target in config.targets:
        assert target.gpus and target.driver and target.name


def has(*names: str) -> Any:
    def offers(variant: Variant) -> Offer:
        return Offer(variant.name in names, f"has torch 2.14.1+{variant}")

    return offers


TORCH_214 = has("cpu", "cu126", "cu130", "cu132")
PASCAL = FleetTarget("lab", "550.54.14", ((6, 1),))
HOPPER = FleetTarget("training", "570.124.06", ((9, 0),))


def test_a_pascal_target_cannot_run_a_cu130_lock() -> None:
    check = check_target(PASCAL, parse_variant("cu130"), "2.14.1", TORCH_214)
    assert check.ok is False
    assert check.summary() == (
        "lab (driver 550.54.14, sm_61, linux-x86_64): cu130 cannot run there: "
        "needs driver >= 580 (CUDA 13.x minor-version compatibility) or >= "
        "580.65.06 (full CUDA 13.0 support); driver 550.54.14 supports CUDA 12.4"
    )
    newer_driver = FleetTarget("lab", "580.95.05", ((6, 1),))
    check = check_target(newer_driver, parse_variant("cu130"), "2.14.1", TORCH_214)
    assert check.ok is False
    assert check.reasons == (
        "not built for sm_61 (declared GPU 0): builds sm_75..sm_120+PTX",
    )


def test_a_windows_target_is_refused_rocm_and_runs_cu129() -> None:
    """ROCm's builds are Linux's (``platform_system == "Linux"``): a Windows target
    cannot run them; CUDA's are published for Windows too."""
    windows = FleetTarget("desk", "580.97", ((8, 9),), "windows-x86_64")
    offers = has("cu129", "rocm6.4")
    rocm = check_target(windows, parse_variant("rocm6.4"), "2.14.1", offers)
    assert (rocm.ok, rocm.reasons) == (
        False,
        ("PyTorch publishes no rocm6.4 builds for windows-x86_64",),
    )
    cuda = check_target(windows, parse_variant("cu129"), "2.14.1", offers)
    assert (cuda.ok, cuda.reasons) == (
        True,
        (
            "driver 580.97 fully supports CUDA 12.9",
            "builds sm_70..sm_120+PTX, which covers every GPU",
        ),
    )


def test_a_hopper_target_on_r535_runs_cu126_by_minor_version_compatibility() -> None:
    lts = FleetTarget("lts", "535.104.05", ((9, 0),))
    check = check_target(lts, parse_variant("cu126"), "2.14.1", TORCH_214)
    assert (check.ok, check.rule) == (True, COMPAT_RULE)
    assert check.summary().endswith("cu126 runs there (minor-version compatibility)")


def test_a_target_fails_when_the_index_lacks_the_locked_torch() -> None:
    check = check_target(HOPPER, parse_variant("cu126"), "2.14.1", has("cu130"))
    assert check.ok is False
    assert check.reasons == ("has torch 2.14.1+cu126",)


def test_auto_on_a_fleet_decides_per_machine() -> None:
    auto = parse_variant("auto")
    checks = [check_target(t, auto, "2.14.1", TORCH_214) for t in (HOPPER, PASCAL)]
    assert [(c.variant.name, c.ok, c.rule) for c in checks] == [
        ("cu126", True, FULL_RULE),  # 570 < 580: no cu13x; 570 >= 560.28.03
        ("cu126", True, COMPAT_RULE),  # Pascal: only cu126 builds sm_60; 550 < 560
    ]
    blackwell = FleetTarget("new", "595.45.04", ((12, 0),))
    assert check_target(blackwell, parse_variant("auto"), "2.14.1", TORCH_214).rule == (
        FULL_RULE
    )


def test_auto_failing_back_to_cpu_fails_the_target() -> None:
    pascal_215 = has("cpu", "cu130", "cu132")  # torch 2.15 dropped cu126
    check = check_target(PASCAL, parse_variant("auto"), "2.15.0", pascal_215)
    assert (check.variant.name, check.ok) == ("cpu", False)
    assert check.reasons[0].startswith("auto would fall back to cpu")


def test_auto_failing_back_to_cpu_on_an_old_driver_names_the_driver_there() -> None:
    old = FleetTarget("old", "418.39", ((6, 1),))
    check = check_target(old, parse_variant("auto"), "2.14.1", TORCH_214)
    assert (check.variant.name, check.ok) == ("cpu", False)
    assert check.reasons == (
        (
            "auto would fall back to cpu: no CUDA variant fits; "
            "a driver >= 525.60.13 runs cu126"
        ),
    )


def test_non_cuda_variants_fail_a_gpu_target() -> None:
    assert not check_target(HOPPER, parse_variant("cpu"), "2.14.1", TORCH_214).ok
    windows = FleetTarget("win", "600.0", ((8, 9),), "windows-x86_64")
    check = check_target(windows, parse_variant("rocm7.2"), "2.14.1", TORCH_214)
    assert check.reasons == ("PyTorch publishes no rocm7.2 builds for windows-x86_64",)


def test_a_targets_index_view_is_its_platform() -> None:
    """The markers an index page is read with for a target: its OS and machine."""
    arm = FleetTarget("gh200", "580.65.06", ((9, 0),), "linux-aarch64")
    assert arm.markers == {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "aarch64",
    }
    windows = FleetTarget("win", "580.88", ((8, 9),), "windows-x86_64")
    assert windows.markers == {
        "sys_platform": "win32",
        "platform_system": "Windows",
        "os_name": "nt",
        "platform_machine": "AMD64",
    }
    # a page read for a target keeps its wheels: this env's markers moved there
    here = {"python_version": "3.12", "sys_platform": "linux", "os_name": "posix"}
    wheel = "torch-2.9.0+cu130-cp312-cp312-{}.whl"
    assert wheel_fits(wheel.format("win_amd64"), {**here, **windows.markers})
    assert not wheel_fits(
        wheel.format("manylinux_2_28_x86_64"), {**here, **windows.markers}
    )
    assert wheel_fits(wheel.format("manylinux_2_28_aarch64"), {**here, **arm.markers})
    assert not wheel_fits(
        wheel.format("manylinux_2_28_x86_64"), {**here, **arm.markers}
    )

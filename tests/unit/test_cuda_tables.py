from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poetry_torch_cuda.machine.tables import CUDA_VARIANTS
from poetry_torch_cuda.machine.tables import DRIVER_ROWS
from poetry_torch_cuda.machine.tables import Arch
from poetry_torch_cuda.machine.tables import arch_list_for
from poetry_torch_cuda.machine.tables import describe_archs
from poetry_torch_cuda.machine.tables import minimum_driver
from poetry_torch_cuda.machine.tables import newest_cuda
from poetry_torch_cuda.machine.tables import parse_arch_list
from poetry_torch_cuda.machine.tables import runs_on
from poetry_torch_cuda.project.variants import parse_variant


@pytest.mark.parametrize(
    ("driver", "platform", "cuda"),
    [
        ("580.65.06", "linux", (13, 0)),
        ("580.95.05", "linux", (13, 0)),
        ("575.51.03", "linux", (12, 9)),
        ("575.51.02", "linux", (12, 8)),
        ("570.26", "linux", (12, 8)),
        ("570.124.06", "linux", (12, 8)),  # 124 > 26 numerically
        ("560.35.03", "linux", (12, 6)),
        ("550.54.14", "linux", (12, 4)),
        ("535.104.05", "linux", (12, 2)),
        ("520.61.05", "linux", (11, 8)),
        ("470.82.01", "linux", (11, 4)),
        ("470.57.02", "linux", (11, 4)),  # the R470 LTS branch
        ("410.47", "linux", None),
        ("576.02", "win32", (12, 9)),
        ("575.51.03", "win32", (12, 8)),  # Windows has its own column
        ("garbage", "linux", None),
    ],
)
def test_newest_cuda_follows_nvidias_table(
    driver: str, platform: str, cuda: tuple[int, int] | None
) -> None:
    assert newest_cuda(driver, platform) == cuda


def test_minimum_driver() -> None:
    assert minimum_driver((12, 9), "linux") == "575.51.03"
    assert minimum_driver((13, 0), "linux") == "580.65.06"
    assert minimum_driver((12, 7), "linux") == "570.26"  # no 12.7 toolkit: 12.8's row
    assert minimum_driver((12, 8), "win32") == "570.65"
    assert minimum_driver((14, 0), "linux") is None


_DRIVERS = st.tuples(
    st.integers(400, 700), st.integers(0, 200), st.integers(0, 20)
).map(lambda parts: ".".join(map(str, parts)))


@given(_DRIVERS, _DRIVERS)
def test_a_newer_driver_never_supports_less(a: str, b: str) -> None:
    def key(version: str) -> tuple[int, ...]:
        return tuple(map(int, version.split(".")))

    low, high = sorted((a, b), key=key)
    assert (newest_cuda(low, "linux") or (0, 0)) <= (
        newest_cuda(high, "linux") or (0, 0)
    )


@given(_DRIVERS)
def test_the_newest_cuda_is_one_the_driver_runs(driver: str) -> None:
    cuda = newest_cuda(driver, "linux")
    if cuda is not None:
        minimum = minimum_driver(cuda, "linux")
        assert minimum is not None
        assert tuple(map(int, minimum.split("."))) <= tuple(map(int, driver.split(".")))


def test_parse_arch_list() -> None:
    assert parse_arch_list("7.5;8.0;12.0+PTX") == (
        Arch(7, 5),
        Arch(8, 0),
        Arch(12, 0, ptx=True),
    )
    assert describe_archs(parse_arch_list("7.0;7.5;12.0+PTX")) == "sm_70..sm_120+PTX"


@pytest.mark.parametrize(
    ("variant", "capability", "runs"),
    [
        ("cu126", (6, 1), True),  # GTX 1080: sm_60 code runs on sm_61
        ("cu128", (6, 1), False),  # Pascal dropped: uv issue 14742
        ("cu129", (6, 1), False),
        ("cu130", (7, 0), False),  # Volta dropped in CUDA 13
        ("cu129", (7, 0), True),
        ("cu129", (8, 9), True),  # Ada via sm_86
        ("cu126", (12, 0), False),  # Blackwell needs CUDA 12.8+
        ("cu128", (12, 0), True),
        ("cu128", (12, 1), True),  # sm_120 code runs on sm_121
        ("cu129", (13, 0), True),  # a future GPU: compute_120 PTX
        ("cu128", (13, 0), False),  # no PTX in cu128's list
        ("cu118", (3, 7), True),
        ("cu126", (3, 7), False),
    ],
)
def test_which_variant_builds_for_which_gpu(
    variant: str, capability: tuple[int, int], runs: bool
) -> None:
    archs = archs_of(variant)
    assert archs is not None
    assert (runs_on(archs, capability) is not None) is runs


def test_cu128_for_torch_27_lacks_volta() -> None:
    newest = archs_of("cu128", "2.8.0")
    old = archs_of("cu128", "2.7.1")
    assert newest is not None and old is not None
    assert runs_on(newest, (7, 0)) is not None
    assert runs_on(old, (7, 0)) is None


def test_aarch64_builds_drop_what_no_arm_board_has() -> None:
    archs = archs_of("cu129", machine="aarch64")
    assert archs is not None
    assert runs_on(archs, (7, 5)) is None
    assert runs_on(archs, (9, 0)) is not None


def test_unknown_variants_borrow_the_nearest_list_of_their_major() -> None:
    assert archs_of("cu127") == archs_of("cu126")  # a tie goes to the older
    assert archs_of("cu133") == archs_of("cu132")
    assert archs_of("cu140") is None  # a major the tables have never seen
    assert archs_of("cpu") is None


def test_driver_table_is_ordered() -> None:
    versions = [row.cuda for row in DRIVER_ROWS]
    assert versions == sorted(versions)
    # auto tries the CUDA variants in this order, newest first
    cudas = [parse_variant(name).cuda_version for name in CUDA_VARIANTS]
    assert cudas == sorted(cudas, key=lambda cuda: cuda or (0, 0), reverse=True)


def archs_of(
    variant: str, torch: str | None = None, machine: str = "x86_64"
) -> tuple[Arch, ...] | None:
    return arch_list_for(variant, torch, machine, "linux")

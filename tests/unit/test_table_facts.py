"""One row per published fact the tables hold, each naming its source (read 2026-11-27).

Sources (abbreviations as in :mod:`poetry_torch_cuda.machine.tables`):
NV-RN = NVIDIA CUDA Toolkit release notes (13.2 Update 2 edition), Tables 2 and 3;
NV-RN-11.8 = the older Table 2 as quoted by light-the-torch _cb.py@33397cbe and
uv crates/uv-torch/src/backend.rs@26a9dd4b; PT-REL = pytorch/pytorch RELEASE.md
(PR 194367, PR 197555); RFC numbers are pytorch/pytorch issues.
"""

from __future__ import annotations

import pytest

from poetry_torch_cuda.machine import tables
from poetry_torch_cuda.machine.tables import Arch
from poetry_torch_cuda.machine.tables import arch_list_for
from poetry_torch_cuda.machine.tables import compat_floor
from poetry_torch_cuda.machine.tables import minimum_driver
from poetry_torch_cuda.machine.tables import newest_cuda
from poetry_torch_cuda.machine.tables import parse_arch_list
from poetry_torch_cuda.machine.tables import torch_release


@pytest.mark.parametrize(
    ("cuda", "linux", "windows", "source"),
    [
        ((13, 2), "595.45.04", None, "NV-RN Table 3: CUDA 13.2 GA, Windows N/A"),
        ((13, 1), "590.44.01", None, "NV-RN Table 3: CUDA 13.1 GA, Windows N/A"),
        ((13, 0), "580.65.06", None, "NV-RN Table 3: CUDA 13.0 GA, Windows N/A"),
        ((12, 9), "575.51.03", "576.02", "NV-RN Table 3: CUDA 12.9 GA"),
        ((12, 8), "570.26", "570.65", "NV-RN Table 3: CUDA 12.8 GA"),
        ((12, 6), "560.28.03", "560.76", "NV-RN Table 3: CUDA 12.6 GA"),
        ((12, 4), "550.54.14", "551.61", "NV-RN Table 3: CUDA 12.4 GA"),
        ((12, 2), "535.54.03", "536.25", "NV-RN Table 3: CUDA 12.2 GA"),
        ((12, 0), "525.60.13", "527.41", "NV-RN Table 3: CUDA 12.0 GA"),
        ((11, 8), "520.61.05", "520.06", "NV-RN Table 3: CUDA 11.8 GA"),
        ((11, 4), "470.42.01", "471.11", "NV-RN Table 3: CUDA 11.4.0 GA"),
        ((11, 0), "450.36.06", "451.22", "NV-RN Table 3: CUDA 11.0.1 RC"),
        ((10, 2), "440.33", "441.22", "NV-RN Table 3: CUDA 10.2.89"),
    ],
)
def test_full_support_driver_rows(
    cuda: tuple[int, int], linux: str, windows: str | None, source: str
) -> None:
    assert minimum_driver(cuda, "linux") == linux, source
    assert minimum_driver(cuda, "win32") == windows, source


@pytest.mark.parametrize(
    ("major", "linux", "windows", "source"),
    [
        (13, "580", "580", "NV-RN Table 2: 13.x >= 580; uv backend.rs cu130/cu132"),
        (12, "525.60.13", "528.33", "NV-RN-11.8 Table 2 (NV-RN Table 2: >= 525)"),
        (11, "450.80.02", "452.39", "NV-RN-11.8 Table 2 (NV-RN Table 2: >= 450)"),
    ],
)
def test_minor_version_compatibility_floors(
    major: int, linux: str, windows: str, source: str
) -> None:
    assert compat_floor(major, "linux") == linux, source
    assert compat_floor(major, "win32") == windows, source


def test_an_lts_driver_is_named_by_its_cuda() -> None:
    # NV-RN Table 3: 470.57.02 is CUDA 11.4 Update 1's driver; 535.104.05 12.2 U2's.
    assert newest_cuda("470.57.02", "linux") == (11, 4)
    assert newest_cuda("535.104.05", "linux") == (12, 2)
    assert newest_cuda("590.48.01", "linux") == (13, 1)
    assert newest_cuda("610.43.02", "linux") == (13, 2)  # 13.3 is not read yet


@pytest.mark.parametrize(
    ("variant", "torch", "platform", "machine", "expected", "source"),
    [
        (
            "cu132",
            "2.14.1",
            "linux",
            "x86_64",
            "7.5;8.0;8.6;9.0;10.0;12.0+PTX",
            "PT-REL",
        ),
        ("cu132", "2.14.1", "win32", "AMD64", "7.5;8.0;8.6;9.0;10.0;12.0", "PT-REL"),
        ("cu132", "2.14.1", "linux", "aarch64", "8.0;9.0;10.0;11.0;12.0+PTX", "PT-REL"),
        (
            "cu130",
            "2.14.1",
            "linux",
            "x86_64",
            "7.5;8.0;8.6;9.0;10.0;12.0+PTX",
            "PT-REL",
        ),
        ("cu130", "2.12.0", "win32", "AMD64", "7.5;8.0;8.6;9.0;10.0;12.0", "PT-REL"),
        ("cu130", "2.13.0", "linux", "aarch64", "8.0;9.0;10.0;11.0;12.0+PTX", "PT-REL"),
        ("cu126", "2.14.1", "linux", "x86_64", "5.0;6.0;7.0;7.5;8.0;8.6;9.0", "PT-REL"),
        ("cu126", "2.14.1", "linux", "aarch64", "8.0;9.0", "PT-REL"),
        (
            "cu128",
            "2.11.0",
            "linux",
            "x86_64",
            "7.5;8.0;8.6;9.0;10.0;12.0",
            "RFC 172352",
        ),
        ("cu128", "2.11.0", "linux", "aarch64", "8.0;9.0;10.0;12.0", "RFC 172663"),
        (
            "cu128",
            "2.10.0",
            "linux",
            "x86_64",
            "7.0;7.5;8.0;8.6;9.0;10.0;12.0",
            "build",
        ),
        ("cu128", "2.7.1", "linux", "x86_64", "7.5;8.0;8.6;9.0;10.0;12.0+PTX", "build"),
    ],
)
def test_arch_lists(
    variant: str,
    torch: str,
    platform: str,
    machine: str,
    expected: str,
    source: str,
) -> None:
    assert archs_of(variant, torch, machine, platform) == parse_arch_list(expected), (
        source
    )


@pytest.mark.parametrize(
    ("torch", "cuda", "source"),
    [
        ("2.15.0", ("cu132", "cu130"), "RFC 190385: cu126 removed in 2.15"),
        ("2.14.1", ("cu132", "cu130", "cu126"), "PT-REL; RFC 190355"),
        ("2.13.0", ("cu132", "cu130", "cu126"), "PT-REL"),
        ("2.12.0", ("cu132", "cu130", "cu126"), "PT-REL; RFC 178665"),
        ("2.11.0", ("cu130", "cu128", "cu126"), "PT-REL; RFC 172663"),
        ("2.8.0", ("cu129", "cu128", "cu126"), "PT-REL"),
    ],
)
def test_variants_per_torch_release(
    torch: str, cuda: tuple[str, ...], source: str
) -> None:
    # Which CUDA PyPI's own wheel carries is read from its metadata, not a table:
    # torch 2.14.1 requires cuda-toolkit[...]==13.0.3 (issue 24 item 6).
    row = torch_release(torch)
    assert row is not None
    assert row.cuda == cuda, source


def test_cu128_left_the_matrix_from_212() -> None:
    # RFC 178665 / PR 179072: CUDA 12.8 builds removed for 2.12.
    for row in tables.TORCH_RELEASES:
        if row.release in ("2.12", "2.13", "2.14", "2.15"):
            assert "cu128" not in row.cuda


@pytest.mark.parametrize(
    ("torch", "rocm", "source"),
    [
        ("2.14.1", ("rocm7.14", "rocm7.2"), "PT-REL: ROCm 7.14; test-infra PR 8451"),
        ("2.12.0", ("rocm7.2",), "PT-REL"),
        ("2.10.0", ("rocm7.1",), "PT-REL"),
        ("2.9.0", ("rocm6.4",), "PT-REL"),
    ],
)
def test_rocm_names(torch: str, rocm: tuple[str, ...], source: str) -> None:
    row = torch_release(torch)
    assert row is not None and row.rocm == rocm, source
    assert set(rocm) <= set(tables.ROCM_VARIANTS)


def test_every_row_names_its_source() -> None:
    assert all(row.source for row in tables.DRIVER_ROWS)
    assert all(row.source for row in tables.COMPAT_FLOORS)
    assert all(row.source for rows in tables.ARCH_LISTS.values() for row in rows)
    assert all(row.source for row in tables.TORCH_RELEASES)
    assert tables.READ_ON == "2026-11-27"


def archs_of(
    variant: str, torch: str, machine: str, platform: str
) -> tuple[Arch, ...] | None:
    return arch_list_for(variant, torch, machine, platform)

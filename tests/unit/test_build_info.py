from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.environment.installed import InstalledEnvironment
from poetry_torch_cuda.environment.installed import unlabelled_cuda
from poetry_torch_cuda.install.build_info import describe_build
from poetry_torch_cuda.install.build_info import read_builds
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    from pathlib import Path

LINUX = '; platform_system == "Linux" and platform_machine == "x86_64"'


@pytest.mark.parametrize(
    ("version", "build", "cuda"),
    [
        ("2.14.1+cu129", "CUDA 12.9 build", "12.9"),
        ("2.14.1+cu130", "CUDA 13.0 build", "13.0"),
        ("2.14.1+cpu", "CPU build", None),
        ("2.14.1+rocm6.4", "ROCm 6.4 build", None),
        ("2.14.1+xpu", "Intel XPU build", None),
        ("2.14.1+git1234", "local build +git1234", None),
    ],
)
def test_labelled_builds(version: str, build: str, cuda: str | None) -> None:
    described = describe_build(version)
    assert (described.build, described.cuda) == (build, cuda)
    assert described.label == version.split("+")[1]


@pytest.mark.parametrize(
    ("requires", "cuda"),
    [
        ([f"cuda-toolkit[cublas,cudart]==13.0.*{LINUX}"], "13.0"),
        ([f"nvidia-cuda-runtime-cu12==12.8.90{LINUX}"], "12.8"),
        ([f"nvidia-cuda-runtime==13.0.96{LINUX}"], "13.0"),
        ([f"nvidia-cublas-cu12==12.6.4.1{LINUX}"], "12.x"),
        (["filelock", "not a requirement !!"], None),
    ],
)
def test_cuda_from_requires(requires: list[str], cuda: str | None) -> None:
    assert unlabelled_cuda(requires, None) == cuda


def test_pypi_builds() -> None:
    cu13 = describe_build(
        "2.14.1", ["filelock", f"cuda-toolkit[cudart]==13.0.*{LINUX}"]
    )
    assert (cu13.label, cu13.build, cu13.cuda) == (
        None,
        "PyPI default build, CUDA 13.0",
        "13.0",
    )
    from_version_py = describe_build("2.7.1", [], "cuda: Optional[str] = '12.6'\n")
    assert from_version_py.cuda == "12.6"
    cpu = describe_build("2.7.1", [], "cuda: Optional[str] = None\n")
    assert cpu.build == "PyPI default build, CPU only"
    assert describe_build("0.29.1").build == "PyPI default build"


def test_read_builds_reads_installed_metadata(tmp_path: Path) -> None:
    import zipfile

    site = tmp_path / "site-packages"
    wheel = build_wheel(
        tmp_path / "wheels",
        "torch",
        "2.14.1",
        [f"cuda-toolkit[cudart]==13.0.*{LINUX}"],
    )
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    builds = read_builds(
        ["torch", "torchvision"], InstalledEnvironment([str(site)], {})
    )
    assert list(builds) == ["torch"]
    assert builds["torch"].build == "PyPI default build, CUDA 13.0"

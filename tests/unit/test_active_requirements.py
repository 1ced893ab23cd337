"""The installed view follows only active requirements: extras count when asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from poetry_torch_cuda.environment.installed import InstalledEnvironment
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install.planning import Target
from poetry_torch_cuda.install.planning import find_orphans
from poetry_torch_cuda.install.planning import plan_for
from poetry_torch_cuda.install.planning import protected_for
from poetry_torch_cuda.project.config import TorchCudaConfig
from poetry_torch_cuda.project.locked import LockedState
from poetry_torch_cuda.project.variants import parse_variant


if TYPE_CHECKING:
    from pathlib import Path

LINUX = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}


def write_dist(site: Path, name: str, version: str, *lines: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    head = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    (info / "METADATA").write_text("\n".join([*head, *lines]) + "\n")


def test_a_requirement_behind_an_unused_extra_is_not_followed(tmp_path: Path) -> None:
    write_dist(tmp_path, "torch", "2.14.1+cu130", "Requires-Dist: setuptools")
    write_dist(
        tmp_path,
        "setuptools",
        "80.0.0",
        "Provides-Extra: test",
        'Requires-Dist: pip; extra == "test"',
    )
    write_dist(tmp_path, "pip", "26.0")
    installed = InstalledEnvironment([str(tmp_path)], LINUX)
    config = TorchCudaConfig(parse_variant("cu130"), packages=(Requirement("torch"),))
    locked = LockedState({canonicalize_name("torch"): "2.14.1"}, {})
    # pip is no CUDA wheel of torch's: status never lists it, Poetry keeps it
    assert "pip" not in protected_for(config, locked, installed)
    assert set(installed.graph(["torch"])) == {"torch", "setuptools"}


def test_an_extra_a_requirer_asks_for_is_followed(tmp_path: Path) -> None:
    write_dist(
        tmp_path, "torch", "2.14.1", "Requires-Dist: cuda-toolkit[cublas]==13.0.*"
    )
    write_dist(
        tmp_path,
        "cuda-toolkit",
        "13.0.2",
        "Provides-Extra: cublas",
        "Provides-Extra: cufft",
        'Requires-Dist: nvidia-cublas==13.0.*; extra == "cublas"',
        'Requires-Dist: nvidia-cufft==12.0.*; extra == "cufft"',
    )
    write_dist(tmp_path, "nvidia-cublas", "13.0.2.14")
    write_dist(tmp_path, "nvidia-cufft", "12.0.0.61")
    installed = InstalledEnvironment([str(tmp_path)], LINUX)
    cuda = {canonicalize_name("nvidia-cublas"), canonicalize_name("nvidia-cufft")}
    torch = Target(canonicalize_name("torch"), Version("2.14.1"))
    # what torch asked for stays; what nobody asked for is an unused CUDA wheel
    assert find_orphans(cuda, [torch], installed) == ["nvidia-cufft"]
    graph = installed.graph(["torch"])
    assert graph[canonicalize_name("cuda-toolkit")] == {"nvidia-cublas"}
    assert "nvidia-cufft" not in graph
    # the whole environment: nothing asks for cufft, so it is nobody's requirement
    everything = installed.graph()
    assert not any("nvidia-cufft" in needs for needs in everything.values())


@pytest.mark.parametrize(
    "damaged", ["garbage\n", "Metadata-Version: 2.1\nName: torch\n"]
)
def test_a_damaged_metadata_is_named_with_the_backport_loaded(
    tmp_path: Path, damaged: str
) -> None:
    """Poetry's process loads the ``importlib_metadata`` backport (keyring needs it
    before Python 3.12), and its finder then answers too: a missing header raised
    a bare ``KeyError: 'Version'`` from status and verify instead of the message."""
    pytest.importorskip("importlib_metadata")  # its finder joins sys.meta_path
    write_dist(tmp_path, "torch", "2.14.1+cu130")
    (tmp_path / "torch-2.14.1+cu130.dist-info" / "METADATA").write_text(damaged)
    installed = InstalledEnvironment([str(tmp_path)], LINUX)
    with pytest.raises(TorchCudaError, match=r"METADATA in .* names no version"):
        installed.get("torch")
    if "Name" in damaged:
        with pytest.raises(TorchCudaError, match="names no version"):
            installed.all()
    else:  # no name: nothing to find it by, as pip sees it
        assert installed.all() == {}


def test_a_folder_pip_has_not_written_metadata_into_is_none_with_the_backport(
    tmp_path: Path,
) -> None:
    """pip creates ``torch-….dist-info`` before its METADATA: the backport Poetry
    loads on Python 3.9 reads no METADATA as ``None`` (8.x), and every run that
    looked then (a Ctrl-C'd or killed switch, the next install) failed with
    ``'NoneType' object has no attribute 'get_all'``."""
    pytest.importorskip("importlib_metadata")  # its finder joins sys.meta_path
    write_dist(tmp_path, "torchvision", "0.29.1+cu130")
    (tmp_path / "torch-2.14.1+cu130.dist-info").mkdir()
    installed = InstalledEnvironment([str(tmp_path)], LINUX)
    assert [*installed.all()] == ["torchvision"]
    with pytest.raises(TorchCudaError, match=r"METADATA in .* names no version"):
        InstalledEnvironment([str(tmp_path)], LINUX).get("torch")


def test_a_missing_wheel_behind_an_asked_extra_is_missing_to_status_and_plan(
    tmp_path: Path,
) -> None:
    """torch asks for ``cuda-toolkit[cublas]`` and nvidia-cublas is gone (a killed
    install): the plan installs torch again to add it, so status names it too."""
    write_dist(
        tmp_path, "torch", "2.14.1+cu130", "Requires-Dist: cuda-toolkit[cublas]==13.0.*"
    )
    write_dist(
        tmp_path,
        "cuda-toolkit",
        "13.0.2",
        "Provides-Extra: cublas",
        'Requires-Dist: nvidia-cublas==13.0.*; extra == "cublas"',
    )
    installed = InstalledEnvironment([str(tmp_path)], LINUX)
    config = TorchCudaConfig(parse_variant("cu130"), packages=(Requirement("torch"),))
    locked = LockedState({canonicalize_name("torch"): "2.14.1"}, {})
    made = plan_for(config, config.variant, locked, installed)
    assert [str(target) for target in made.install] == ["torch==2.14.1+cu130"]
    assert installed.missing(["torch"]) == [("cuda-toolkit 13.0.2", "nvidia-cublas")]

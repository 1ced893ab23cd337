"""Two torch versions in poetry.lock under markers (issue 20 #4): each locked
torch's closure is locked with its own pins, installs pick the environment's."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_torch_cuda_lock import read_lock
from tests.support.catalog import CUBLAS_CU12
from tests.support.catalog import TRITON
from tests.support.catalog import build_universe
from tests.support.catalog import linux
from tests.support.fixtures import served
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.catalog import Universe
    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

OLD_CUDNN = "9.5.1.17"


@pytest.fixture
def own_universe(tmp_path: Path) -> Universe:
    universe = build_universe(tmp_path / "universe")
    # The old torch pins an older cuDNN than the new one, as real releases do.
    universe.add_wheel("cu129", "nvidia-cudnn-cu12", OLD_CUDNN, ("nvidia-cublas-cu12",))
    universe.add_wheel(
        "cu129",
        "torch",
        "2.13.0+cu129",
        (
            "filelock",
            *linux(
                f"nvidia-cublas-cu12=={CUBLAS_CU12['cu129']}",
                f"nvidia-cudnn-cu12=={OLD_CUDNN}",
                f"triton=={TRITON}",
            ),
        ),
    )
    return universe


@pytest.fixture
def own_index(own_universe: Universe) -> Iterator[IndexServer]:
    yield from served(own_universe.root)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the new torch is for 3.11+")
def test_each_torch_version_is_locked_with_its_own_pins(
    tmp_path: Path, own_index: IndexServer
) -> None:
    deps = {
        "torch==2.13.0; python_version < '3.11'": "",
        "torch==2.14.1; python_version >= '3.11'": "",
    }
    project = Project.create(tmp_path, own_index, deps, 'variant = "cu129"\n')
    result = project.run("lock")
    assert "wrote torch-cuda.lock" in result.stdout, describe(result)
    (entry,) = read_lock(project)["variant"]
    versions = sorted((p["name"], p["version"]) for p in entry["package"])
    assert ("torch", "2.13.0+cu129") in versions
    assert ("torch", "2.14.1+cu129") in versions
    assert ("nvidia-cudnn-cu12", OLD_CUDNN) in versions
    assert ("nvidia-cudnn-cu12", "9.10.2.21") in versions
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check
    project.run("install")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["nvidia-cudnn-cu12"] == "9.10.2.21"


def test_a_torch_pinned_for_macos_alone_is_left_to_pypi(
    tmp_path: Path, index: IndexServer
) -> None:
    """An older torch pinned for macOS alone (Intel Macs stop at an old release),
    the variant's index without it: the plugin installs no variant build on
    macOS, yet locking wanted torch 2.13.0+cu128 too, so `poetry lock` wrote no
    torch-cuda.lock and every Linux install failed ("cannot lock
    torch==2.13.0+cu128"), and `poetry lock` advised to constrain torch. The
    macOS pin is not the variant's to lock or check."""
    deps = {
        "torch==2.13.0; sys_platform == 'darwin'": "",
        "torch==2.14.1; sys_platform == 'linux'": "",
    }
    project = Project.create(tmp_path, index, deps, 'variant = "cu128"\n')
    result = run_inprocess(project, "lock")
    assert result.returncode == 0, result
    assert "cannot lock" not in result.stderr, result
    assert "has no build of torch 2.13.0" not in result.stderr, result
    (entry,) = read_lock(project)["variant"]
    assert [p["version"] for p in entry["package"] if p["name"] == "torch"] == [
        "2.14.1+cu128"
    ]
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check
    assert run_inprocess(project, "install").returncode == 0
    assert project.installed()["torch"] == "2.14.1+cu128"

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

"""Poetry's artifact cache as the downloader leaves it (issue 20 #14, #15, #16).

A ``kill -9`` mid-download leaves a ``.part`` file the next run removes; a
cache that cannot be written is reported as a local path and its OS error,
not as the index; a damaged file already in the cache is discarded and fetched
again instead of failing every run.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.poetry_project import describe
from tests.support.processes import running
from tests.support.processes import wait_for


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
TORCH_FILE = "torch-2.14.1+cu129-py3-none-any.whl"
TORCH = f"/whl/cu129/torch/{TORCH_FILE}"


@pytest.fixture
def project(project_factory: ProjectFactory) -> Project:
    made = project_factory(DEPS, 'variant = "cu129"\n')
    made.run("lock")
    return made


def artifacts(project: Project) -> Path:
    return Path(project.env["POETRY_CACHE_DIR"]) / "artifacts"


def cached(project: Project, suffix: str) -> list[Path]:
    return sorted(p for p in artifacts(project).rglob(f"*{suffix}") if p.is_file())


def test_parts_of_a_killed_download_go_with_the_next_run(
    project: Project, index: IndexServer
) -> None:
    index.held_paths.add(TORCH)
    with running(project, "install") as process:
        wait_for(lambda: TORCH in index.requests, 120, "torch's GET")
        wait_for(lambda: bool(cached(project, ".part")), 30, "a .part file")
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    left = cached(project, ".part")
    assert left, "kill -9 left no part behind: the test proves nothing"
    index.held_paths.clear()
    result = project.run("install")
    assert project.installed()["torch"] == "2.14.1+cu129", describe(result)
    assert not [part for part in left if part.exists()]
    assert cached(project, ".part") == []


def test_an_unwritable_artifact_cache_names_the_path_and_the_os_error(
    project: Project, index: IndexServer
) -> None:
    project.run("install")  # Poetry's own packages use the cache too
    blocked = artifacts(project)
    shutil.rmtree(blocked)
    blocked.write_text("a file where Poetry's artifact cache should be\n")
    result = project.run("torch-cuda", "switch", "cu130", check=False)
    assert result.returncode == 1, describe(result)
    assert str(blocked) in result.stderr, describe(result)
    assert "Not a directory" in result.stderr, describe(result)
    assert "could not connect" not in result.stderr
    assert "Traceback" not in result.stderr
    assert project.installed()["torch"] == "2.14.1+cu129"


def test_a_damaged_file_in_the_cache_is_fetched_again(
    project: Project, index: IndexServer
) -> None:
    project.run("install")
    [entry] = cached(project, TORCH_FILE)
    data = bytearray(entry.read_bytes())
    data[-1] ^= 0xFF
    entry.write_bytes(bytes(data))
    shutil.rmtree(project.venv)
    index.clear_requests()
    result = project.run("install", check=False)
    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert TORCH in index.requests  # fetched again, not blamed on the index
    assert "(1)))" not in result.stdout + result.stderr


@pytest.mark.parametrize("clone", ["fresh cache", "no poetry.lock either"])
def test_an_install_that_locks_first_downloads_each_wheel_once(
    project: Project, index: IndexServer, clone: str
) -> None:
    """Without PEP 658 metadata the lock reads each wheel for its METADATA; the
    install that locked first then installs that same file, not a second copy. Also
    a first ``poetry install`` without poetry.lock (Poetry locks, then the plugin
    locks torch-cuda.lock and installs): it downloaded each wheel again."""
    if clone == "no poetry.lock either":
        project.lockfile.unlink()
    (project.path / "torch-cuda.lock").unlink()
    shutil.rmtree(Path(project.env["POETRY_CACHE_DIR"]) / "poetry-torch-cuda")
    index.serve_metadata = False
    index.clear_requests()
    result = project.run("install")
    assert project.installed()["torch"] == "2.14.1+cu129", describe(result)
    assert index.requests.count(TORCH) == 1, index.requests


def test_parts_of_a_killed_lock_go_with_the_next_lock(
    project: Project, index: IndexServer, tmp_path: Path
) -> None:
    """Without PEP 658 metadata ``torch-cuda lock`` streams each wheel into a
    ``.part`` file in TMPDIR; one killed mid-download left it there for ever (a
    GB per wheel of the real family), and no run removed it."""
    (project.path / "torch-cuda.lock").unlink()
    shutil.rmtree(Path(project.env["POETRY_CACHE_DIR"]) / "poetry-torch-cuda")
    temp = tmp_path / "tmp"
    temp.mkdir()
    index.serve_metadata = False
    index.held_paths.add(TORCH)
    with running(
        project, "torch-cuda", "lock", env_extra={"TMPDIR": str(temp)}
    ) as process:
        wait_for(lambda: bool(list(temp.glob("*.part"))), 120, "a .part file")
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    index.held_paths.clear()

    result = project.run("torch-cuda", "lock", env_extra={"TMPDIR": str(temp)})

    assert (project.path / "torch-cuda.lock").is_file(), describe(result)
    assert list(temp.glob("*.part")) == [], describe(result)


def test_a_relative_cache_dir_installs(project: Project) -> None:
    """``POETRY_CACHE_DIR=cache`` (relative to where Poetry runs): pip got links to
    the locked files relative to its own folder and found none of them."""
    result = project.run("install", env_extra={"POETRY_CACHE_DIR": "cache"})
    assert project.installed()["torch"] == "2.14.1+cu129", describe(result)
    assert list((project.path / "cache" / "artifacts").rglob(TORCH_FILE))

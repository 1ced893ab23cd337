"""Every install goes through the locks' files, hash-checked, and pip records it as from an index."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import tomlkit

from tests.support.catalog import FILELOCK
from tests.support.catalog import TRITON
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import describe


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

CU129 = 'variant = "cu129"\n'


def locked_hash(project: Project, name: str) -> str:
    """poetry.lock's sha256 of ``name``'s only file."""
    lock = tomlkit.parse(project.lock_text()).unwrap()
    (package,) = [p for p in lock["package"] if p["name"] == name]
    (entry,) = package["files"]
    return str(entry["hash"]).removeprefix("sha256:")


def test_sync_into_an_empty_env_checks_poetrys_packages_against_poetry_lock(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory({"torch": "*"}, CU129)
    project.run("lock")
    expected = locked_hash(project, "filelock")
    # Same name, same version, other bytes, on every index that serves it.
    index.tampered_paths.update({"/simple/filelock/", "/whl/cu129/filelock/"})
    result = project.run("torch-cuda", "sync", "--only", "main", check=False)
    assert result.returncode != 0, describe(result)
    message = result.stderr
    assert (
        f"filelock-{FILELOCK}-py3-none-any.whl: expected sha256 {expected}" in message
    )
    assert "(poetry.lock), received sha256 " in message
    assert "`git diff poetry.lock`" in message
    installed = project.installed()
    assert "filelock" not in installed
    assert "torch" not in installed  # all or nothing: the family waits for every file
    # The same sync from an honest index installs both, checked.
    index.tampered_paths.clear()
    project.run("torch-cuda", "sync", "--only", "main")
    installed = project.installed()
    assert installed["filelock"] == FILELOCK
    assert installed["torch"] == "2.14.1+cu129"


def test_pip_records_the_build_as_from_an_index_and_hides_the_cache(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory({"torch": "*"}, CU129)
    project.run("install")
    freeze = project.pip("freeze").stdout
    assert "torch==2.14.1+cu129" in freeze.splitlines(), freeze
    assert "@ file:" not in freeze
    cache = project.env["POETRY_CACHE_DIR"]
    result = project.run("torch-cuda", "switch", "cu130", "-v")
    assert "torch==2.14.1+cu130" in project.pip("freeze").stdout.splitlines()
    assert cache not in result.stdout + result.stderr
    assert "artifacts" not in result.stdout + result.stderr


def test_a_cuda_wheel_the_project_depends_on_itself_stays_poetrys(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory({"torch": "*", "triton": ">=3.6"}, CU129)
    result = project.run("install")
    assert f"Installing triton ({TRITON})" in result.stdout
    assert f"triton ({TRITON}): Skipped" not in result.stdout
    project.run("torch-cuda", "switch", "cpu")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cpu"
    assert installed["triton"] == TRITON  # never swept as an unused CUDA wheel
    assert "nvidia-cublas-cu12" not in installed
    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode == 0, status
    project.pip("uninstall", "--yes", "triton")
    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode != 0, status
    assert "triton, a dependency of the project itself, is not installed" in (
        status.stdout + status.stderr
    )
    project.run("install")
    assert project.installed()["triton"] == TRITON


def test_a_cuda_wheel_the_project_depends_on_in_a_group_left_out_comes_with_torch(
    project_factory: ProjectFactory,
) -> None:
    """The project's own nvidia-cudnn-cu12 is in dev; `poetry install --without dev`
    installs no dev, and the plugin left it to Poetry: torch came without it. Then
    `poetry sync --without dev` removed it on every run, and the plugin put it back."""
    project = project_factory({"torch": "*"}, CU129)
    project.write_pyproject(
        project.pyproject_text()
        + '\n[tool.poetry.group.dev.dependencies]\nnvidia-cudnn-cu12 = "*"\n'
    )
    project.run("install", "--without", "dev")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu129"
    assert installed.get("nvidia-cudnn-cu12") == "9.10.2.21", installed
    args = ("torch-cuda", "status", "--check", "--without", "dev")
    status = run_inprocess(project, *args)
    assert status.returncode == 0, status
    synced = project.run("sync", "--without", "dev")
    assert "Removing nvidia-cudnn-cu12" not in synced.stdout, describe(synced)
    assert project.installed() == installed


def test_a_source_asking_to_retry_at_a_date_is_worded_not_crashed_on(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    """Poetry's own retry reads ``Retry-After`` as seconds only: a 503 that gives an
    HTTP date (RFC 9110) for poetry.lock's source raised from float() and the sync
    said only "could not convert string to float: …"."""
    project = project_factory({"torch": "*"}, CU129)
    project.run("lock")
    index.fail_paths["/simple/filelock/"] = 503
    index.fail_retry_after = "Thu, 01 Jan 1970 00:00:00 GMT"
    result = project.run("torch-cuda", "sync", "--only", "main", check=False)
    assert result.returncode == 1, describe(result)
    said = " ".join(result.stderr.split())
    assert (
        f"could not read the files of filelock on fakepypi, poetry.lock's source: "
        f"127.0.0.1:{index.port} failed and said when to retry (Retry-After)"
    ) in said, said
    assert "Run the command again later" in said, said
    assert "could not convert" not in said

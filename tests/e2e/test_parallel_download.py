"""The locked files are fetched by the plugin, at once and verified; pip gets local files.

Real Poetry, real pip, the local index. Behaviour, not speed: the index's request
log shows the wheels being fetched at the same time, by Poetry's HTTP stack and
never by pip; a corrupted transfer is refused; an interrupted download leaves no
entry in Poetry's artifact cache, and the next run fetches only what is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import TYPE_CHECKING

import pytest

from tests.support.kept import kept_install
from tests.support.poetry_project import describe
from tests.support.processes import finish
from tests.support.processes import pip_processes
from tests.support.processes import running
from tests.support.processes import wait_for


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.index import RequestRecord
    from tests.support.kept import Kept
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
CU129 = 'variant = "cu129"\n'
CU130 = "/whl/cu130/"
TORCH = f"{CU130}torch/torch-2.14.1+cu130-py3-none-any.whl"
CUBLAS = f"{CU130}nvidia-cublas/nvidia_cublas-13.0.2.14-py3-none-any.whl"
CU130_WHEELS = (
    TORCH,
    f"{CU130}torchvision/torchvision-0.29.1+cu130-py3-none-any.whl",
    CUBLAS,
    f"{CU130}nvidia-cudnn-cu13/nvidia_cudnn_cu13-9.13.0.50-py3-none-any.whl",
)


kept_cu129 = kept_install(DEPS, CU129)


@pytest.fixture
def cu129_project(kept_cu129: Kept, index: IndexServer) -> Project:
    project = kept_cu129.fresh()
    assert project.installed()["torch"] == "2.14.1+cu129"
    return project


def wheel_gets(index: IndexServer) -> list[RequestRecord]:
    return [r for r in index.records if r.path.endswith(".whl") and r.method == "GET"]


def artifacts(project: Project) -> list[str]:
    """Every file in Poetry's artifact cache of the project's isolated Poetry."""
    root = project.env["POETRY_CACHE_DIR"]
    return sorted(
        name for _, _, files in os.walk(f"{root}/artifacts") for name in files
    )


def slow_wheels(index: IndexServer, seconds: float, *paths: str) -> None:
    """Hold each wheel back ``seconds`` (its PEP 658 metadata file not)."""
    for path in paths:
        index.delay_seconds[path] = seconds
        index.delay_seconds[f"{path}.metadata"] = 0


def test_switch_fetches_the_locked_files_at_once_and_hands_pip_local_files(
    cu129_project: Project, index: IndexServer
) -> None:
    index.clear_requests()
    index.gather(CU130, len(CU130_WHEELS), suffix=".whl")
    result = cu129_project.run("torch-cuda", "switch", "cu130")
    assert result.returncode == 0, describe(result)
    assert cu129_project.installed()["torch"] == "2.14.1+cu130"
    gets = wheel_gets(index)
    assert sorted(r.path for r in gets) == sorted(CU130_WHEELS)
    # Each answer waited until all were asked for; one after another, none would.
    assert index.max_overlap(CU130, suffix=".whl") == len(CU130_WHEELS)
    # Poetry's HTTP stack fetched them; pip asked the index for nothing at all.
    assert {r.user_agent.split("/")[0] for r in gets} == {"poetry"}
    assert not [r.path for r in index.records if r.user_agent.startswith("pip/")]
    cached = artifacts(cu129_project)
    assert {path.rsplit("/", 1)[-1] for path in CU130_WHEELS} <= set(cached)


def test_first_install_fetches_in_parallel_through_the_hook(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory(DEPS, CU129)
    index.clear_requests()
    result = project.run("install")
    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu129"
    assert [r for r in wheel_gets(index) if r.path.startswith("/whl/")]
    assert not [r.path for r in index.records if r.user_agent.startswith("pip/")]


def test_a_corrupted_download_is_refused_and_never_cached(
    cu129_project: Project, index: IndexServer
) -> None:
    before = (cu129_project.installed(), cu129_project.pyproject.read_bytes())
    index.corrupt_paths.add(f"{CU130}torch/")
    result = cu129_project.run("torch-cuda", "switch", "cu130", check=False)
    assert result.returncode == 1, describe(result)
    assert "torch-2.14.1+cu130-py3-none-any.whl" in result.stderr
    assert "expected sha256" in result.stderr
    assert "received sha256" in result.stderr
    assert (
        "the index or mirror now serves different bytes for the same file"
        in result.stderr
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert (cu129_project.installed(), cu129_project.pyproject.read_bytes()) == before
    cached = artifacts(cu129_project)
    assert "torch-2.14.1+cu130-py3-none-any.whl" not in cached
    assert not [name for name in cached if name.endswith(".part")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_download_leaves_no_cache_entry_and_a_retry_resumes(
    cu129_project: Project, index: IndexServer, signum: int, tmp_path: Path
) -> None:
    before = (cu129_project.installed(), cu129_project.pyproject.read_bytes())
    slow_wheels(index, 60, TORCH)
    with running(cu129_project, "torch-cuda", "switch", "cu130") as process:
        wait_for(
            lambda: TORCH in {r.path for r in wheel_gets(index)}, 120, "torch's GET"
        )
        os.killpg(process.pid, signum)
        result = finish(process)
    assert result.returncode == 128 + signum, describe(result)
    name = signal.Signals(signum).name
    assert f"{name} interrupted the download" in result.stderr, describe(result)
    assert "Traceback" not in result.stdout + result.stderr
    assert (cu129_project.installed(), cu129_project.pyproject.read_bytes()) == before
    cached = artifacts(cu129_project)
    assert "torch-2.14.1+cu130-py3-none-any.whl" not in cached
    assert not [n for n in cached if n.endswith(".part")]
    # The retry fetches what is missing only.
    index.delay_seconds.clear()
    finished = {path for path in CU130_WHEELS if path.rsplit("/", 1)[-1] in set(cached)}
    index.clear_requests()
    again = cu129_project.run("torch-cuda", "switch", "cu130")
    assert again.returncode == 0, describe(again)
    assert cu129_project.installed()["torch"] == "2.14.1+cu130"
    assert not finished & {r.path for r in wheel_gets(index)}
    assert TORCH in {r.path for r in wheel_gets(index)}


def held_without_pip(process: subprocess.Popen[str], index: IndexServer) -> None:
    """torch's download is held by the server; no pip runs before every file is verified."""
    wait_for(lambda: TORCH in {r.path for r in wheel_gets(index)}, 120, "torch's GET")
    assert not pip_processes(process.pid)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_download_installs_nothing(
    cu129_project: Project, index: IndexServer, signum: int
) -> None:
    before = (cu129_project.installed(), cu129_project.pyproject.read_bytes())
    index.held_paths.add(TORCH)
    with running(cu129_project, "torch-cuda", "switch", "cu130") as process:
        held_without_pip(process, index)
        os.killpg(process.pid, signum)
        result = finish(process)
    index.held_paths.clear()
    assert result.returncode == 128 + signum, describe(result)
    name = signal.Signals(signum).name
    assert f"{name} interrupted the download" in result.stderr, describe(result)
    assert "at least one requirement" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert (cu129_project.installed(), cu129_project.pyproject.read_bytes()) == before


def test_a_failed_download_installs_nothing(
    cu129_project: Project, index: IndexServer
) -> None:
    before = (cu129_project.installed(), cu129_project.pyproject.read_bytes())
    index.held_paths.update({TORCH, CUBLAS})
    index.corrupt_paths.add(CUBLAS)  # the wheel only, not its metadata file
    with running(cu129_project, "torch-cuda", "switch", "cu130") as process:
        held_without_pip(process, index)
        index.held_paths.discard(CUBLAS)  # now its wrong bytes end the download
        result = finish(process)
    index.held_paths.clear()
    assert result.returncode == 1, describe(result)
    assert "nvidia_cublas-13.0.2.14-py3-none-any.whl" in result.stderr
    assert "expected sha256" in result.stderr, describe(result)
    assert "at least one requirement" not in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert (cu129_project.installed(), cu129_project.pyproject.read_bytes()) == before


def run_on_terminal(project: Project, *args: str) -> tuple[int, str]:
    """Run poetry with stdout and stderr on a pseudo-terminal; its exit code and output."""
    import pty

    from tests.support.poetry_project import poetry_executable

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(poetry_executable()), *args],
        cwd=project.path,
        env=project.env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return process.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_progress_shows_on_a_terminal_only_and_not_with_quiet(
    cu129_project: Project, index: IndexServer
) -> None:
    import shutil

    def cold() -> None:
        shutil.rmtree(f"{cu129_project.env['POETRY_CACHE_DIR']}/artifacts")

    # The switch back must download: no build kept in the environment.
    cu129_project.write_pyproject(
        cu129_project.pyproject_text().replace(
            "[tool.poetry-torch-cuda]\n",
            "[tool.poetry-torch-cuda]\nkeep-previous-build = false\n",
        )
    )
    cold()
    code, output = run_on_terminal(cu129_project, "-q", "torch-cuda", "switch", "cu130")
    assert code == 0, output
    assert output.strip() == ""
    cold()
    code, output = run_on_terminal(cu129_project, "torch-cuda", "switch", "cu129")
    assert code == 0, output
    assert "downloading 4 files" in output
    assert "downloaded 4 of 4 files" in output
    cold()
    result = cu129_project.run("torch-cuda", "switch", "cu130")  # not a terminal
    assert "download" not in result.stdout + result.stderr
    assert cu129_project.installed()["torch"] == "2.14.1+cu130"

"""Overlapping runs and stale state (issue 14): lose no edit, act on no stale lock, never hang.

Overlaps are driven with a slow local index: the cu130 torch wheel is held
back for some seconds, so ``switch cu130`` is inside pip while the test edits
pyproject.toml or starts another Poetry command.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
from typing import TYPE_CHECKING

import pytest

from tests.support.catalog import FILELOCK
from tests.support.catalog import WheelSpec
from tests.support.catalog import build_universe
from tests.support.catalog import default_specs
from tests.support.fixtures import served
from tests.support.gpus import machine_env
from tests.support.gpus import smi_line
from tests.support.inprocess import run_inprocess
from tests.support.kept import kept_install
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.poetry_project import stub_calls
from tests.support.processes import start_poetry
from tests.support.processes import wait_for
from tests.support.processes import wait_for_request
from tests.support.silent import SilentServer


if TYPE_CHECKING:
    import subprocess
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.kept import Kept

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
CU130_WHEEL = "/whl/cu130/torch/torch-2.14.1+cu130-py3-none-any.whl"
STALE = (
    "pyproject.toml changed significantly since poetry.lock was last generated. "
    "Run `poetry lock` to fix the lock file."
)
#: pip must outwait the slow index.
PATIENT_PIP = {"PIP_TIMEOUT": "60"}


kept_cu129 = kept_install(DEPS, "variant = 'cu129'  # the cluster's\n")


@pytest.fixture
def cu129_project(kept_cu129: Kept, index: IndexServer) -> Project:
    return kept_cu129.fresh()


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, f"exit {process.returncode}\n{stdout}\n{stderr}"
    return stdout, stderr


def slow_switch(project: Project, index: IndexServer) -> subprocess.Popen[str]:
    """``switch cu130`` started and held inside pip's download of torch."""
    index.delay_seconds.update({CU130_WHEEL: 6, f"{CU130_WHEEL}.metadata": 0})
    switch = start_poetry(
        project, "torch-cuda", "switch", "cu130", env_extra=PATIENT_PIP
    )
    wait_for_request(index, CU130_WHEEL)
    return switch


def test_switch_keeps_an_edit_saved_while_it_runs(
    cu129_project: Project, index: IndexServer
) -> None:
    switch = slow_switch(cu129_project, index)
    edited = cu129_project.pyproject_text() + "\n[tool.ruff]\nline-length = 120\n"
    cu129_project.write_pyproject(edited)
    finish(switch)
    text = cu129_project.pyproject_text()
    assert "[tool.ruff]\nline-length = 120\n" in text
    # the variant edit is applied to the file as it is now, quote style and comment kept
    assert text == edited.replace("'cu129'", "'cu130'")
    assert cu129_project.installed()["torch"] == "2.14.1+cu130"
    assert not list(cu129_project.path.glob(".pyproject.toml.*"))


def test_add_during_switch_keeps_its_dependency_and_the_new_variant(
    cu129_project: Project, index: IndexServer, tmp_path: Path
) -> None:
    switch = slow_switch(cu129_project, index)
    add = start_poetry(cu129_project, "add", "tinyutil@1.0.0")
    _, add_err = finish(add)
    finish(switch)
    text = cu129_project.pyproject_text()
    assert "tinyutil (==1.0.0)" in text
    assert "variant = 'cu130'" in text
    assert "waiting for another run to finish" in add_err
    installed = cu129_project.installed()
    assert installed["torch"] == "2.14.1+cu130"
    assert installed["tinyutil"] == "1.0.0"
    cu129_project.run("check", "--lock")
    machine = machine_env(tmp_path / "machine")
    status = run_inprocess(
        cu129_project, "torch-cuda", "status", "--check", env_extra=machine
    )
    assert status.returncode == 0, status


def test_install_waiting_for_a_switch_plans_with_the_new_variant(
    cu129_project: Project, index: IndexServer, tmp_path: Path
) -> None:
    switch = slow_switch(cu129_project, index)
    install = start_poetry(cu129_project, "install")
    finish(switch)
    _, install_err = finish(install)
    assert "waiting for another run to finish" in install_err
    installed = cu129_project.installed()
    assert installed["torch"] == "2.14.1+cu130"
    assert installed["torchvision"] == "0.29.1+cu130"
    assert "nvidia-cublas-cu12" not in installed
    assert "variant = 'cu130'" in cu129_project.pyproject_text()
    machine = machine_env(tmp_path / "machine")
    status = run_inprocess(
        cu129_project, "torch-cuda", "status", "--check", env_extra=machine
    )
    assert status.returncode == 0, status


def test_stale_lock_is_refused_like_poetry_install_does(
    cu129_project: Project, tmp_path: Path
) -> None:
    text = cu129_project.pyproject_text()
    cu129_project.write_pyproject(
        text.replace('"torchvision",', '"torchvision",\n    "tinyutil",')
    )
    assert "tinyutil" in cu129_project.pyproject_text()
    before = cu129_project.installed()
    pyproject = cu129_project.pyproject.read_bytes()
    install = cu129_project.run("install", check=False)
    assert install.returncode == 1
    assert "changed significantly" in install.stderr
    machine = machine_env(tmp_path / "machine")
    for args in (
        ("torch-cuda", "switch", "cu130"),
        ("torch-cuda", "sync"),
        ("torch-cuda", "variants"),
        ("torch-cuda", "status", "--check"),
    ):
        result = cu129_project.run(*args, check=False, env_extra=machine)
        assert result.returncode == 1, describe(result)
        assert STALE in result.stdout + result.stderr, describe(result)
        assert "Everything is in line" not in result.stdout
        assert cu129_project.installed() == before
        assert cu129_project.pyproject.read_bytes() == pyproject


@pytest.fixture
def newer_filelock_index(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IndexServer]:
    """The default universe, plus a newer filelock on the cu129 index only."""
    specs = default_specs()
    specs["cu129"].append(WheelSpec("filelock", "3.99.0"))
    universe = build_universe(tmp_path_factory.mktemp("newer-filelock"), specs)
    yield from served(universe.root)


def test_sync_into_an_empty_environment_installs_locked_versions(
    tmp_path: Path, newer_filelock_index: IndexServer
) -> None:
    project = Project.create(
        tmp_path, newer_filelock_index, DEPS, 'variant = "cu129"\n'
    )
    project.run("lock")
    assert project.locked()["filelock"] == FILELOCK
    # An empty environment holds nothing to move: ask for the main group.
    project.run("torch-cuda", "sync", "--only", "main")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["filelock"] == FILELOCK
    install = project.run("install")
    assert "filelock" not in install.stdout  # nothing for Poetry to correct
    assert project.installed()["filelock"] == FILELOCK


def test_lock_check_on_a_silent_index_costs_seconds_once(
    project_factory: ProjectFactory,
) -> None:
    with SilentServer() as silent:
        project = project_factory(
            DEPS, f'index-url = "{silent.url}/whl/{{variant}}"\nvariant = "cu129"\n'
        )
        result = project.run("lock")
        skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
        assert len(skipped) == 1, describe(result)
        assert "did not answer" in skipped[0]
        assert silent.connections == 1
        result = project.run("lock", "--regenerate")
        assert silent.connections == 1  # the failure is remembered
        assert "skipped" in result.stderr


def test_auto_asks_no_index_when_nothing_is_to_decide(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    machine = machine_env(tmp_path / "machine")  # no GPU: cpu is the only answer
    with SilentServer() as silent:
        project = project_factory(
            DEPS, f'index-url = "{silent.url}/whl/{{variant}}"\nvariant = "auto"\n'
        )
        # Writing torch-cuda.lock asks the index (every variant auto may pick);
        # deciding auto on this machine must not.
        project.run("lock", env_extra=machine)
        locked = silent.connections
        detected = run_inprocess(project, "torch-cuda", "detect", env_extra=machine)
        assert detected.returncode == 0, detected
        assert silent.connections == locked
        # a GPU, but no configured package in the lock: nothing to decide either
        gpu = machine_env(
            tmp_path / "gpu",
            nvidia_smi=smi_line("580.65.06", "8.9", "NVIDIA GeForce RTX 4090"),
        )
        no_torch = project_factory(
            {"tinyutil": "*"},
            f'index-url = "{silent.url}/whl/{{variant}}"\nvariant = "auto"\n',
            name="no-torch",
        )
        no_torch.run("lock", env_extra=gpu)
        locked = silent.connections
        smi = tmp_path / "gpu" / "nvidia-smi"
        smi.with_name("nvidia-smi.calls").unlink(missing_ok=True)
        no_torch.run("install", env_extra=gpu)
        assert silent.connections == locked
        # nor any machine to probe, nor a variant to name
        assert stub_calls(smi) == []
        dry = run_inprocess(no_torch, "install", "--dry-run", env_extra=gpu)
        assert "nothing would change: no configured package to install" in dry.stdout
        assert stub_calls(smi) == [], dry


def test_pip_compiles_bytecode_only_when_poetry_does(
    cu129_project: Project, tmp_path: Path
) -> None:
    site = cu129_project.site_packages()
    assert (site / "torch" / "__init__.py").exists()
    assert not (site / "torch" / "__pycache__").exists()  # Poetry's default
    cu129_project.run(
        "install", "--compile", env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    )
    assert cu129_project.installed()["torch"] == "2.14.1+cu130"
    assert list((site / "torch" / "__pycache__").glob("*.pyc"))


def test_status_names_the_environment_and_install_dry_run_shows_the_plan(
    cu129_project: Project, tmp_path: Path
) -> None:
    machine = machine_env(tmp_path / "machine")
    status = run_inprocess(cu129_project, "torch-cuda", "status", env_extra=machine)
    assert status.returncode == 0, status
    assert f"Environment  {cu129_project.venv}" in status.stdout
    dry = cu129_project.run(
        "install", "--dry-run", env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    )
    assert "torch-cuda: would install torch==2.14.1+cu130" in dry.stdout, describe(dry)
    assert cu129_project.installed()["torch"] == "2.14.1+cu129"


def test_switch_warns_when_the_override_keeps_winning(cu129_project: Project) -> None:
    result = cu129_project.run(
        "torch-cuda",
        "switch",
        "cu129",
        env_extra={"POETRY_TORCH_CUDA_VARIANT": "cpu"},
    )
    assert "POETRY_TORCH_CUDA_VARIANT=cpu is set and overrides pyproject.toml" in (
        result.stderr
    )


def test_a_project_replacing_another_projects_variant_in_a_shared_env_says_so(
    cu129_project: Project, project_factory: ProjectFactory
) -> None:
    other = project_factory(DEPS, 'variant = "cu130"\n', name="other-project")
    other.run("lock")
    shutil.rmtree(other.venv, ignore_errors=True)  # `poetry lock` made one; not used
    shared = {
        "VIRTUAL_ENV": str(cu129_project.venv),
        "PATH": f"{cu129_project.venv / 'bin'}:{other.env['PATH']}",
    }
    result = other.run("install", env_extra=shared)
    assert cu129_project.installed()["torch"] == "2.14.1+cu130"
    assert not other.venv.exists()
    assert (
        f"this environment's torch build (cu129) was installed for the project in "
        f"{cu129_project.path}" in result.stderr
    ), describe(result)
    # the project that owns it now gets no warning for keeping it
    again = other.run("install", env_extra=shared)
    assert "was installed for the project" not in again.stderr


def test_variants_on_an_unreachable_index_says_why_in_words(
    cu129_project: Project, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    machine = machine_env(tmp_path / "machine")
    env = {
        **machine,
        "POETRY_TORCH_CUDA_INDEX_URL": f"http://127.0.0.1:{port}/whl/{{variant}}",
    }
    result = run_inprocess(
        cu129_project, "torch-cuda", "variants", "--all", env_extra=env
    )
    assert result.returncode == 0, result
    assert f"127.0.0.1:{port} refused the connection" in result.stdout, result
    assert "Error)" not in result.stdout + result.stderr


def test_kill_9_of_switch_leaves_leftovers_the_next_run_removes(
    cu129_project: Project, index: IndexServer
) -> None:
    switch = slow_switch(cu129_project, index)
    pid = switch.pid
    os.kill(pid, signal.SIGKILL)  # Poetry only, mid-download or with its pip orphaned
    switch.communicate(timeout=60)
    assert list(cu129_project.path.glob(f".pyproject.toml.{pid}.*.tmp"))
    index.delay_seconds.clear()
    # The orphaned pip holds the environment lock until it exits; it stops at
    # its next line of output (the pipe to Poetry is gone) and undoes what it began.
    wait_for(lambda: lock_is_free(cu129_project.venv), 120, "the orphaned pip to exit")
    assert cu129_project.installed()["torch"] == "2.14.1+cu129"
    assert "variant = 'cu129'" in cu129_project.pyproject_text()
    # Killed while pip ran, it would also leave pip's folder of links in the temp
    # directory, named as install_files names it.
    temp = cu129_project.path.parent / "temp"
    links = temp / f"poetry-torch-cuda-{pid}.k1ll3d.links"
    links.mkdir(parents=True)
    (links / "requirements.txt").write_text("torch==2.14.1+cu130\n")
    (links / "torch.whl").symlink_to(cu129_project.path / "pyproject.toml")
    again = cu129_project.run(
        "torch-cuda", "switch", "cu130", env_extra={"TMPDIR": str(temp)}
    )
    assert not list(cu129_project.path.glob(".pyproject.toml.*.tmp")), again.stdout
    assert not links.exists(), again.stdout
    assert (cu129_project.path / "pyproject.toml").is_file()  # a link, not its target
    assert cu129_project.installed()["torch"] == "2.14.1+cu130"


def lock_is_free(venv: Path) -> bool:
    """Whether nobody holds the plugin's environment lock of ``venv``."""
    with (venv / ".poetry-torch-cuda.lock").open("a") as stream:
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(stream.fileno(), fcntl.LOCK_UN)
        return True


def test_sync_into_an_empty_environment_words_a_failing_poetry_source(
    tmp_path: Path, index: IndexServer
) -> None:
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    project.run("lock")
    lock = project.path / "torch-cuda.lock"
    lock.unlink()  # the sync locks cu129 first, for an install that then fails
    # poetry.lock's source fails where filelock's files are listed
    index.fail_paths["/simple/filelock/"] = 503
    index.fail_retry_after = "0"
    result = project.run("torch-cuda", "sync", "--only", "main", check=False)
    assert result.returncode == 1, describe(result)
    assert "the index failed with HTTP 503 (a server error)" in result.stderr
    assert "No torch build was installed." in result.stderr
    assert "torch" not in project.installed()
    assert not lock.exists()


def test_ctrl_c_while_poetrys_files_are_listed_keeps_no_lock_entry(
    tmp_path: Path, index: IndexServer
) -> None:
    """The entry the sync locked first stays only if it installed: an interrupt
    while poetry.lock's source lists filelock's files puts torch-cuda.lock back."""
    project = Project.create(tmp_path, index, DEPS, 'variant = "cu129"\n')
    project.run("lock")
    lock = project.path / "torch-cuda.lock"
    lock.unlink()
    index.clear_requests()
    index.held_paths.add("/simple/filelock/")  # until the interrupt
    sync = start_poetry(project, "torch-cuda", "sync", "--only", "main")
    try:
        wait_for_request(index, "/simple/filelock/")
        os.killpg(sync.pid, signal.SIGINT)
        stdout, stderr = sync.communicate(timeout=60)
    finally:
        index.held_paths.clear()
        if sync.poll() is None:
            os.killpg(sync.pid, signal.SIGKILL)
            sync.wait()
    assert sync.returncode != 0, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert "torch" not in project.installed()
    assert not lock.exists(), stdout + stderr


@pytest.mark.parametrize(
    ("waiting", "variant"),
    [(("sync",), "cu130"), (("switch", "cpu"), "cpu")],
)
def test_a_run_waiting_for_a_switch_installs_what_poetry_lock_says_then(
    cu129_project: Project, index: IndexServer, waiting: tuple[str, ...], variant: str
) -> None:
    """``sync`` (or another ``switch``) waits for a switch while a teammate's
    ``poetry add`` moves poetry.lock to torch 2.13.0: it planned from the lock as
    it read it before the wait and left torch 2.14.1 ("already installed"). A run
    that waited reads the lock again, and torch-cuda.lock follows it."""
    index.held_paths.add(CU130_WHEEL)
    switch = start_poetry(cu129_project, "torch-cuda", "switch", "cu130")
    wait_for_request(index, CU130_WHEEL)
    other = start_poetry(cu129_project, "torch-cuda", *waiting)
    assert other.stderr is not None
    while "waiting for another run to finish" not in other.stderr.readline():
        assert other.poll() is None, other.communicate()
    moved = run_inprocess(
        cu129_project,
        "add",
        "--lock",
        "torchvision==0.28.0",
        env_extra={"POETRY_TORCH_CUDA_DISABLE": "1"},
    )
    assert moved.returncode == 0, moved
    index.held_paths.clear()
    finish(switch)
    finish(other)
    installed = cu129_project.installed()
    assert installed["torch"] == f"2.13.0+{variant}"
    assert installed["torchvision"] == f"0.28.0+{variant}"
    check = run_inprocess(cu129_project, "torch-cuda", "lock", "--check")
    assert check.returncode == 0, check

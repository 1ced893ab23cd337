"""Ctrl-C, SIGTERM and ``kill -9`` while the plugin writes the project's files.

Each run is stopped at the moment a file would take its new content (the rename of
an atomic write, paused by ``paused_at``). Then the files are whole, old or new, and
the run or the next command says what is wrong and the fix, or mends it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.kept import kept_install
from tests.support.poetry_project import describe
from tests.support.processes import finish
from tests.support.processes import paused_at
from tests.support.processes import running
from tests.support.processes import wait_for


if TYPE_CHECKING:
    import subprocess
    from collections.abc import Sequence

    from tests.support.index import IndexServer
    from tests.support.kept import Kept
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
LOCK = "torch-cuda.lock"
FIX = f"Run `poetry torch-cuda lock` and commit {LOCK}."
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]

kept_cu129 = kept_install(DEPS, 'variant = "cu129"\n')


@pytest.fixture
def project(kept_cu129: Kept, index: IndexServer) -> Project:
    return kept_cu129.fresh()


def stopped_at(
    project: Project, tmp_path: Path, args: Sequence[str], target: str, signum: int
) -> subprocess.CompletedProcess[str]:
    """Run ``poetry *args``, send ``signum`` to its group when ``target`` is about to
    be replaced, and let a run whose signals wait go on."""
    pause, paused = paused_at(tmp_path / "pause", f"/{target}", "os.rename")
    with running(project, *args, env_extra=pause) as process:
        wait_for(paused.exists, 120, f"the write of {target}")
        os.killpg(process.pid, signum)
        paused.with_name(f"{paused.name}-go").touch()
        return finish(process)


def leftovers(project: Project) -> list[str]:
    return sorted(path.name for path in project.path.glob(".*.tmp"))


def assert_said(
    result: subprocess.CompletedProcess[str], signum: int, *needles: str
) -> None:
    """A stopping signal: its exit code and one message with ``needles``; kill -9: none."""
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    if signum == signal.SIGKILL:
        assert result.returncode == -signum, describe(result)
        return
    assert result.returncode == 128 + signum, describe(result)
    name = signal.Signals(signum).name
    for needle in (f"{name} stopped", *needles):
        assert needle in result.stderr, describe(result)


def check(project: Project) -> subprocess.CompletedProcess[str]:
    return project.run("torch-cuda", "lock", "--check", check=False)


@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("command", ["lock", "add"])
def test_a_stop_between_poetry_lock_and_torch_cuda_lock_names_the_fix(
    project: Project, tmp_path: Path, signum: int, command: str
) -> None:
    """``poetry lock`` (or ``add``) wrote poetry.lock; the plugin was writing
    torch-cuda.lock. Ctrl-C ended the run with exit 1 and no word, SIGTERM killed
    it: the pair no longer matched and nothing said so."""
    if command == "lock":
        text = project.pyproject_text()
        project.write_pyproject(
            text.replace('"needs-torch"', '"needs-torch", "tinyutil"')
        )
    before = (project.path / LOCK).read_bytes()
    args = ["lock"] if command == "lock" else ["add", "tinyutil"]

    result = stopped_at(project, tmp_path, args, LOCK, signum)

    stale = "poetry.lock changed since it was written (content-hash)"
    assert_said(result, signum, f"the update of {LOCK}", stale, FIX)
    assert "tinyutil" in project.lock_text()  # Poetry's step completed
    assert (project.path / LOCK).read_bytes() == before
    said = check(project)  # the guard names the pair and the fix
    assert said.returncode == 1, describe(said)
    assert stale in said.stderr and FIX in said.stderr, describe(said)
    project.run("torch-cuda", "lock")
    assert check(project).returncode == 0
    assert leftovers(project) == []


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_stop_while_torch_cuda_lock_is_written_leaves_it_whole(
    project: Project, tmp_path: Path, signum: int
) -> None:
    """``poetry torch-cuda lock`` for a variant added to lock-variants."""
    table = 'variant = "cu129"\n'
    project.write_pyproject(
        project.pyproject_text().replace(table, f'{table}lock-variants = ["cu130"]\n')
    )
    before = (project.path / LOCK).read_bytes()

    result = stopped_at(project, tmp_path, ["torch-cuda", "lock"], LOCK, signum)

    assert_said(result, signum, f"the locking of {LOCK}", "cu130 is not locked", FIX)
    assert (project.path / LOCK).read_bytes() == before
    said = check(project)
    assert "cu130 is not locked" in said.stderr and FIX in said.stderr
    project.run("torch-cuda", "lock")  # sweeps a killed writer's file
    assert check(project).returncode == 0
    assert leftovers(project) == []


@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("target", ["pyproject.toml", LOCK])
def test_a_stop_as_switch_writes_the_project_names_what_is_left(
    project: Project, tmp_path: Path, signum: int, target: str
) -> None:
    """cu130 is installed; ``switch`` is writing pyproject.toml, then torch-cuda.lock
    for it. Ctrl-C ended the run with exit 1 and no word, SIGTERM killed it, with
    cu130 installed and pyproject.toml saying cu129 or torch-cuda.lock lacking cu130."""
    before = (project.path / LOCK).read_bytes()

    result = stopped_at(
        project, tmp_path, ["torch-cuda", "switch", "cu130"], target, signum
    )

    assert project.installed()["torch"] == "2.14.1+cu130"
    assert (project.path / LOCK).read_bytes() == before
    recorded = 'variant = "cu130"' in project.pyproject_text()
    assert recorded or (target, signum) == ("pyproject.toml", signal.SIGKILL)
    assert_said(
        result,
        signum,
        "the switch to cu130 once pyproject.toml said so",
        "cu130 is not locked",
        FIX,
    )
    status = project.run("torch-cuda", "status")
    if recorded:  # the guards name torch-cuda.lock's missing entry
        assert "cu130 is not locked" in status.stdout, describe(status)
        assert FIX in status.stdout
        project.run("torch-cuda", "lock")
        assert check(project).returncode == 0
    else:  # kill -9 before pyproject.toml: the environment is ahead of it
        assert "is installed, but cu129 wants" in status.stdout, describe(status)
        project.run("install")
        assert project.installed()["torch"] == "2.14.1+cu129"
        assert check(project).returncode == 0
    assert leftovers(project) == []


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_stop_as_export_replaces_a_file_leaves_the_old_one(
    project: Project, tmp_path: Path, signum: int
) -> None:
    exported = project.path / "requirements.txt"
    exported.write_text("# the file as it was\n")
    args = ["torch-cuda", "export", "-o", exported.name]

    result = stopped_at(project, tmp_path, args, exported.name, signum)

    assert result.returncode != 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert exported.read_text() == "# the file as it was\n"
    project.run(*args)  # sweeps a killed writer's file
    assert "torch==2.14.1+cu129" in exported.read_text()
    assert leftovers(project) == []


#: A state file as a crash of the disk under it may leave it (the plugin's own
#: writes replace a file whole).
CUT_SHORT = '{"schema": 1, "fail'
COMMANDS = (
    ("torch-cuda", "detect"),
    ("torch-cuda", "variants"),
    ("torch-cuda", "status"),
    ("torch-cuda", "lock"),
    ("install",),
    ("torch-cuda", "detect", "--forget"),
)


@pytest.mark.parametrize(
    ("folder", "pattern"),
    [
        (".venv", ".poetry-torch-cuda-*.json"),  # the memory of failures, the owner
        (".venv", ".torch-cuda-installed.json"),
        ("cache", "index/*.json"),  # index pages, unreachable hosts
        ("cache", "metadata/*"),
    ],
)
def test_a_state_file_cut_short_is_no_state(
    project: Project, folder: str, pattern: str
) -> None:
    """Each command reads it as none (or reads again what it held): no traceback,
    and torch-cuda.lock locks what it locked (a cached METADATA cut short lost
    the CUDA wheels it requires from the lock, and lock --check passed that)."""
    cache = Path(project.env["POETRY_CACHE_DIR"]) / "poetry-torch-cuda"
    project.run("torch-cuda", "variants")  # the pages' cache
    project.run("torch-cuda", "detect")
    (cache / "index" / "unreachable.json").write_text("{}")
    root = project.venv if folder == ".venv" else cache
    damaged = sorted(root.glob(pattern))
    assert damaged, pattern
    for path in damaged:
        path.write_text(CUT_SHORT)
    before = (project.path / LOCK).read_bytes()
    for args in COMMANDS:
        result = project.run(*args, check=False)
        assert "Traceback" not in result.stdout + result.stderr, describe(result)
        assert result.returncode == 0, describe(result)
    assert (project.path / LOCK).read_bytes() == before

"""The stash, the one way back: interrupts, kill -9, switching back, failed switches.

Real Poetry and pip against the local index. A project holds the cu129 build
(both variants locked up front) and moves to cu130, whose torch unpacks a
large file so that a signal can land while pip writes it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.environment.envlock import ENV_LOCK_NAME
from poetry_torch_cuda.environment.envlock import state_dir
from poetry_torch_cuda.install.undo import INSTALLED
from poetry_torch_cuda.install.undo import STASH
from tests.support.catalog import CUDNN_CU12
from tests.support.catalog import FILELOCK
from tests.support.catalog import PYPI
from tests.support.catalog import build_universe
from tests.support.fake_torch import broken_import
from tests.support.fake_torch import fake_torch
from tests.support.fake_torch import make_verifiable
from tests.support.fake_torch import replace_module
from tests.support.fixtures import served
from tests.support.gpus import GTX_1080
from tests.support.gpus import gpu
from tests.support.gpus import hanging_nvidia_smi
from tests.support.gpus import no_gpu
from tests.support.gpus import no_real_driver
from tests.support.index import IndexServer
from tests.support.inprocess import run_inprocess
from tests.support.kept import installed_once
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.processes import LAST_STEP
from tests.support.processes import descendants
from tests.support.processes import finish
from tests.support.processes import paused_at
from tests.support.processes import pip_processes
from tests.support.processes import running
from tests.support.processes import start_poetry
from tests.support.processes import wait_for
from tests.support.records import broken_records
from tests.support.wheels import build_wheel


if TYPE_CHECKING:
    from collections.abc import Iterator
    from collections.abc import Sequence

    from tests.support.catalog import Universe
    from tests.support.kept import Kept

pytestmark = [pytest.mark.e2e, no_real_driver]

DEPS = {"torchvision": "*"}
CU129 = 'variant = "cu129"\nlock-variants = ["cu129", "cu130"]\n'
OLDER_FILELOCK = "3.19.0"


def _with_big_torch(universe: Universe) -> None:
    """cu130's torch unpacks 300 MB (a few hundred kB to download); both builds
    have a console script, ``torchrun``, each its own; cu130's also ``torchfr``."""
    for variant in ("cu129", "cu130"):
        spec = next(
            wheel.spec
            for wheel in universe.wheels
            if wheel.index == variant and wheel.spec.version == f"2.14.1+{variant}"
            if wheel.spec.project == "torch"
        )
        script = f"[console_scripts]\ntorchrun = torch:{variant}\n".encode()
        script += b"torchfr = torch:fr\n" * (variant == "cu130")
        payload = {f"torch-{spec.version}.dist-info/entry_points.txt": script}
        if variant == "cu130":
            payload["torch/_big.bin"] = bytes(300_000_000)
        build_wheel(
            universe.project_dir("torch", variant),
            "torch",
            spec.version,
            spec.requires,
            payload=payload,
        )


@pytest.fixture(scope="module")
def big_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    universe = build_universe(tmp_path_factory.mktemp("stash-universe"))
    _with_big_torch(universe)
    universe.add_wheel(PYPI, "filelock", OLDER_FILELOCK)  # for `poetry add` to change
    yield from served(universe.root)


@pytest.fixture(scope="module")
def kept_big(big_index: IndexServer, tmp_path_factory: pytest.TempPathFactory) -> Kept:
    """The cu129 project from ``big_index`` as ``poetry install`` leaves it."""
    return installed_once(big_index, tmp_path_factory, DEPS, CU129)


@pytest.fixture
def big_cu129(kept_big: Kept) -> Project:
    project = kept_big.fresh()
    assert project.installed()["torch"] == "2.14.1+cu129"
    return project


def _cu129(tmp_path: Path, index: IndexServer) -> Project:
    project = Project.create(tmp_path, index, DEPS, CU129)
    project.run("install")
    assert project.installed()["torch"] == "2.14.1+cu129"
    return project


def _stashes(project: Project) -> list[str]:
    return sorted(p.name for p in project.venv.glob(".torch-cuda-*") if p.is_dir())


def _tilde(project: Project) -> list[str]:
    return sorted(p.name for p in project.site_packages().glob("~*"))


def test_ctrl_c_while_pip_unpacks_puts_the_previous_build_back(
    big_cu129: Project, tmp_path: Path
) -> None:
    project = big_cu129
    before = project.installed()
    folders = sorted(project.site_packages().glob("*.dist-info"))
    # pip waits as it opens cu130's big file, until the signal.
    env, paused = paused_at(tmp_path / "pause", "torch/_big.bin")
    with running(project, "torch-cuda", "switch", "cu130", env_extra=env) as process:
        wait_for(paused.exists, 120, "pip to unpack cu130's torch")
        assert "~orch" in _tilde(project)  # pip moved the cu129 torch aside
        os.killpg(process.pid, signal.SIGINT)
        result = finish(process, timeout=120)
    assert result.returncode == 130, describe(result)
    # pip leaves a Ctrl-C half done (it undoes only its own errors): the stash undoes it.
    assert result.stderr.splitlines()[0] == (
        "SIGINT interrupted pip while installing torch==2.14.1+cu130, "
        "torchvision==0.29.1+cu130 from the downloaded files. Run the command "
        "again to finish."
    ), describe(result)
    assert "put back as it was (torch 2.14.1+cu129" in result.stderr, describe(result)
    assert "Nothing changed" not in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert project.installed() == before
    # pip had begun cu130's torch-2.14.1+cu130.dist-info (entry_points.txt, before
    # METADATA): left, it failed every next run ("torch's METADATA … names no version")
    assert sorted(project.site_packages().glob("*.dist-info")) == folders
    assert run_inprocess(project, "torch-cuda", "status", "--check").returncode == 0
    assert _tilde(project) == []
    assert broken_records(project.site_packages()) == []
    assert not (project.site_packages() / "torch" / "_big.bin").exists()
    # the interrupted run's stash is gone (the first install's, of no build, stays)
    assert [s for s in _stashes(project) if s != ".torch-cuda-previous"] == []
    assert 'variant = "cu129"' in project.pyproject_text()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux prlimit")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_a_failed_install_is_put_back_waits_for_it(
    big_cu129: Project, tmp_path: Path, signum: int
) -> None:
    """pip fails (a file-size limit: a full disk) once it installed cu130's
    torchvision; a second Ctrl-C (or a CI's SIGTERM) lands while the put-back
    removes it. The put-back finished, then the signal ended the run with no word
    (Ctrl-C: exit 1; SIGTERM: killed), the stash left for the next run."""
    project = big_cu129
    before = project.installed()
    removal = "torchvision-0.29.1+cu130.dist-info"
    env, paused = paused_at(tmp_path / "pause", removal, LAST_STEP)
    process = start_poetry(
        project,
        *("torch-cuda", "switch", "cu130"),
        env_extra=env,
        wrapper=["prlimit", "--fsize=1000000"],
    )
    try:
        wait_for(paused.exists, 180, "the put-back to remove cu130's torchvision")
        os.killpg(process.pid, signum)
        time.sleep(0.5)  # taken, and waiting
        paused.with_name(f"{paused.name}-go").touch()
        result = finish(process, timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert result.returncode == 1, describe(result)
    assert "pip could not write to disk" in result.stderr, describe(result)
    assert "put back as it was (torch 2.14.1+cu129" in result.stderr, describe(result)
    assert "Traceback" not in result.stdout + result.stderr
    assert project.installed() == before
    assert broken_records(project.site_packages()) == []
    assert [s for s in _stashes(project) if s != ".torch-cuda-previous"] == []


def _immutable(path: Path, on: bool) -> bool:
    """``chattr +i``/``-i``: not even root may add an entry to ``path``."""
    flag = "+i" if on else "-i"
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


def test_pips_leftovers_are_removed_after_a_killed_run_and_only_then(
    big_cu129: Project,
) -> None:
    """kill -9 of a run and its pip after pip installed the build but before it
    removed the one it replaced: the next run has nothing to install, and pip's
    ~orch stayed (pip warns about it on every run). Without a stash of a killed
    run, a ~ folder is another pip's, maybe still at work (in a system Python
    that many tools install into, say): every run removed it."""
    project = big_cu129
    leftover = project.site_packages() / "~orch"
    leftover.mkdir()
    (leftover / "__init__.py").write_text("")

    result = run_inprocess(project, "install")
    assert result.returncode == 0, result
    assert _tilde(project) == ["~orch"], result

    killed = state_dir(project.venv) / ".torch-cuda-stash-999999999.abc"
    killed.mkdir()  # what the killed run left beside pip's ~orch
    result = run_inprocess(project, "install")

    assert result.returncode == 0, result
    assert _tilde(project) == [], result
    assert not killed.exists()
    assert project.installed()["torch"] == "2.14.1+cu129"


def test_a_killed_pips_tilde_metadata_is_no_installed_package(
    big_cu129: Project, tmp_path: Path
) -> None:
    """kill -9 of the user's ``pip uninstall torch`` once it moved torch aside:
    ``~orch-2.14.1+cu129.dist-info`` stays (pip ignores it: "Ignoring invalid
    distribution ~orch"). ``install --dry-run`` read it as torch and said nothing
    would change; torch is not installed, and the install installs it."""
    project = big_cu129
    env, paused = paused_at(
        tmp_path / "pause", "/~orch-2.14.1+cu129.dist-info", "shutil.rmtree"
    )
    pip = [str(project.python), "-m", "pip", "uninstall", "--yes", "torch"]
    with subprocess.Popen(pip, env={**project.env, **env}) as uninstall:
        wait_for(paused.exists, 120, "pip to delete the torch it moved aside")
        uninstall.kill()
    assert "~orch-2.14.1+cu129.dist-info" in _tilde(project)

    result = run_inprocess(project, "install", "--dry-run")

    assert result.returncode == 0, result
    assert "would install torch==2.14.1+cu129 from " in result.stdout, result
    assert "nothing would change" not in result.stdout, result


def test_kill_9_while_pip_removes_unused_cuda_wheels_leaves_tilde_the_next_run_removes(
    big_cu129: Project, tmp_path: Path
) -> None:
    """kill -9 of ``poetry remove torchvision`` while the plugin's pip removes the
    CUDA wheels nothing needs any more (nothing to install: no stash of a build):
    pip's ~riton must go with the next run, as after a killed install."""
    project = big_cu129
    # pip moved triton aside into ~riton and, done, deletes it: killed just then
    env, paused = paused_at(tmp_path / "pause", "/~riton", "shutil.rmtree")
    with running(project, "remove", "torchvision", env_extra=env) as process:
        wait_for(paused.exists, 120, "pip to delete the triton it moved aside")
        assert "~riton" in _tilde(project)
        os.killpg(process.pid, signal.SIGKILL)
        os.kill(int(paused.read_text()), signal.SIGKILL)  # pip: its own session
        finish(process)

    result = project.run("install")

    assert _tilde(project) == [], describe(result)


def test_a_stash_that_cannot_be_made_stops_before_pip(
    big_cu129: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No way back, no change: the install refuses before pip touches anything."""
    project = big_cu129
    before, text = project.installed(), project.pyproject_text()
    if not _immutable(project.venv, True):
        pytest.skip("chattr +i is not allowed here")
    # The environment cannot hold the stash, nor can the folder it falls back to.
    monkeypatch.setenv("POETRY_CACHE_DIR", str(project.env["POETRY_CACHE_DIR"]))
    fallback = state_dir(project.venv)
    (fallback / ENV_LOCK_NAME).touch()  # the environment's lock itself can be had
    try:
        assert _immutable(fallback, True)
        result = project.run("torch-cuda", "switch", "cu130", check=False)
    finally:
        _immutable(project.venv, False)
        _immutable(fallback, False)
    assert result.returncode == 1, describe(result)
    assert "could not keep the installed build's files to undo a failure" in (
        result.stderr
    ), describe(result)
    assert "Traceback" not in result.stdout + result.stderr
    assert project.installed() == before
    assert project.pyproject_text() == text
    assert _tilde(project) == []


def test_kill_9_during_pip_leaves_a_stash_status_reports_and_the_next_run_removes(
    big_cu129: Project,
) -> None:
    project = big_cu129
    with running(
        project, "install", env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    ) as process:
        wait_for(lambda: bool(pip_processes(process.pid)), 120, "pip to run")
        pips = pip_processes(process.pid)
        os.kill(process.pid, signal.SIGKILL)  # Poetry only: pip finishes
        finish(process)
        wait_for(
            lambda: not any(os.path.exists(f"/proc/{p}") for p in pips), 120, "pip"
        )
    assert _stashes(project), "the killed run's stash should be left"

    status = run_inprocess(project, "torch-cuda", "status", "--check")

    assert status.returncode == 1, status
    assert "a run that was killed left its stash" in status.stdout + status.stderr
    project.run("install")
    assert not [name for name in _stashes(project) if name != ".torch-cuda-previous"]
    status = run_inprocess(project, "torch-cuda", "status")
    assert "left its stash" not in status.stdout + status.stderr


#: Where a switch from cu129 to cu130 is killed: (path, audit event) it pauses at.
KILLED_AT = {
    # while linking the cu129 build into the stash: nothing changed yet
    "take": ("torch/__init__.py", "os.link"),
    # the sweep after it removed nvidia-cudnn-cu12's files, not yet its .dist-info
    "sweep": (f"nvidia_cudnn_cu12-{CUDNN_CU12}.dist-info", LAST_STEP),
    # switching back: the kept cu129 build is being put back, cu130's torch removed
    # but for its .dist-info
    "put back": ("torch-2.14.1+cu130.dist-info", LAST_STEP),
}


@pytest.mark.parametrize("moment", [*KILLED_AT, "sweep, pid taken since"])
def test_kill_9_of_a_switch_is_undone_by_the_next_install(
    big_cu129: Project, tmp_path: Path, moment: str
) -> None:
    """kill -9 wherever a switch changes the environment: the next install puts
    the build the killed run found back from its stash, so no wheel is left with
    its .dist-info and without its files (pip would take it as installed). Also
    when the killed run's pid is a live process's by then (in a container, the
    next run's own, the same at every start): that run found its stash alive."""
    project = big_cu129
    variant = "cu129"
    if moment == "put back":
        project.run("torch-cuda", "switch", "cu130")
        variant = "cu130"
    before = project.installed()
    env, paused = paused_at(tmp_path / "pause", *KILLED_AT[moment.split(",")[0]])
    with running(
        project,
        "torch-cuda",
        "switch",
        "cu129" if moment == "put back" else "cu130",
        env_extra=env,
    ) as process:
        wait_for(paused.exists, 180, f"the switch to reach the {moment}")
        os.killpg(process.pid, signal.SIGKILL)
        os.kill(int(paused.read_text()), signal.SIGKILL)  # pip: its own session
        finish(process)
    if moment.endswith("since"):  # as pid 1's (always alive)
        for n, stash in enumerate(project.venv.glob(f"{STASH}*")):
            stash.rename(stash.with_name(f"{STASH}1.{n}"))
    torchrun = project.venv / "bin" / "torchrun"  # the console script, pip's
    if moment != "take":  # pip (Poetry 2.0-2.4) may move a .dist-info aside first
        half = broken_records(project.site_packages())
        assert half or project.installed() != before, "nothing was half done"
        left = torchrun.read_text() if torchrun.exists() else ""
        assert f"import {variant}\n" not in left, left

    again = project.run("install", check=False)

    assert again.returncode == 0, describe(again)
    assert project.installed() == before, describe(again)
    assert ": installed " not in again.stdout, describe(again)  # all put back
    assert broken_records(project.site_packages()) == [], describe(again)
    assert f"from torch import {variant}\n" in torchrun.read_text(), describe(again)
    undone = "torch-cuda: undid a killed run's work: "
    assert (undone in again.stdout) == (moment != "take"), describe(again)
    assert [s for s in _stashes(project) if s != ".torch-cuda-previous"] == []
    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode == 0, status
    assert f'variant = "{variant}"' in project.pyproject_text()


def test_kill_9_after_pip_wrote_a_new_console_script_leaves_no_script(
    big_cu129: Project, tmp_path: Path
) -> None:
    """kill -9 of a switch to cu130 once pip wrote cu130's torch and its console
    scripts, not yet its RECORD: the next install put cu129 back but left cu130's
    ``bin/torchfr`` (cu129 has none), whose ``torch.fr`` is not there. Where pip
    removes cu130's torch (Poetry 2.0-2.4), its .dist-info (the wheel's RECORD,
    without pip's INSTALLER) goes too: it was left, without METADATA."""
    project = big_cu129
    before = project.installed()
    requested = "torch-2.14.1+cu130.dist-info/REQUESTED"  # pip's last file but RECORD
    env, paused = paused_at(tmp_path / "pause", requested)
    with running(project, "torch-cuda", "switch", "cu130", env_extra=env) as process:
        wait_for(paused.exists, 180, "pip to write cu130's torch")
        os.killpg(process.pid, signal.SIGKILL)
        os.kill(int(paused.read_text()), signal.SIGKILL)  # pip: its own session
        finish(process)
    script = project.venv / "bin" / "torchfr"
    assert script.is_file()

    result = project.run("install")

    assert "torch-cuda: undid a killed run's work: " in result.stdout, describe(result)
    assert project.installed() == before, describe(result)
    assert not script.exists(), describe(result)
    infos = project.site_packages().glob("torch-*.dist-info")
    assert [p.name for p in infos] == ["torch-2.14.1+cu129.dist-info"]
    assert broken_records(project.site_packages()) == [], describe(result)


def test_recovery_from_a_killed_run_keeps_what_poetry_installed_since(
    big_cu129: Project, tmp_path: Path
) -> None:
    """kill -9 of a switch whose pip added filelock (the environment lacked it) and
    replaced torch; then ``poetry add filelock==3.19.0``, whose installer replaced
    that filelock before the plugin's step: recovery took Poetry's filelock for the
    killed run's and removed it. It puts back torch and keeps Poetry's filelock."""
    project = big_cu129
    project.pip("uninstall", "--yes", "filelock")
    env, paused = paused_at(tmp_path / "pause", *KILLED_AT["sweep"])
    with running(project, "torch-cuda", "switch", "cu130", env_extra=env) as process:
        wait_for(paused.exists, 180, "the switch to sweep the CUDA 12 wheels")
        os.killpg(process.pid, signal.SIGKILL)
        os.kill(int(paused.read_text()), signal.SIGKILL)  # pip: its own session
        finish(process)
    assert project.installed()["filelock"] == FILELOCK  # the killed run's pip's

    result = project.run("add", f"filelock=={OLDER_FILELOCK}", check=False)

    assert result.returncode == 0, describe(result)
    installed = project.installed()
    assert installed["filelock"] == OLDER_FILELOCK, describe(result)
    assert installed["torch"] == "2.14.1+cu129", describe(result)
    (line,) = (x for x in result.stdout.splitlines() if "killed run" in x)
    assert line.startswith("torch-cuda: undid a killed run's work: "), line
    assert "changed torch 2.14.1+cu130 -> 2.14.1+cu129, " in line, line
    assert line.endswith(
        f", kept filelock {OLDER_FILELOCK} (installed by Poetry since)"
    )
    assert broken_records(project.site_packages()) == [], describe(result)


def test_switching_back_puts_the_previous_build_back_without_downloading(
    big_cu129: Project, big_index: IndexServer
) -> None:
    project = big_cu129
    before, record = project.installed(), state_dir(project.venv) / INSTALLED
    cu129 = json.loads(record.read_text())
    project.run("torch-cuda", "switch", "cu130")
    assert project.installed()["torch"] == "2.14.1+cu130"
    cu130 = json.loads(record.read_text())  # the build held, not the one before too
    assert cu129["torch"] not in cu130.values()
    assert cu130["torch"] in (project.path / "torch-cuda.lock").read_text()
    big_index.clear_requests()

    result = project.run("torch-cuda", "switch", "cu129")

    assert "put back the previous build kept in the environment" in result.stdout
    assert [r for r in big_index.requests if r.endswith(".whl")] == []
    assert project.installed() == before
    assert broken_records(project.site_packages()) == []
    assert json.loads(record.read_text()) == cu129
    # ...and the cu130 build is the one kept now: switching again is links too.
    result = project.run("torch-cuda", "switch", "cu130")
    assert "put back the previous build kept in the environment" in result.stdout
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert broken_records(project.site_packages()) == []
    assert json.loads(record.read_text()) == cu130


@pytest.mark.parametrize("reinstall", ["sync --force", "a wheel of another family"])
def test_reinstalling_the_same_build_keeps_the_one_before(
    big_cu129: Project, big_index: IndexServer, reinstall: str
) -> None:
    project = big_cu129
    before = project.installed()
    project.run("torch-cuda", "switch", "cu130")
    assert _stashes(project) == [".torch-cuda-previous"]

    if reinstall == "sync --force":
        project.run("torch-cuda", "sync", "--force")
    else:  # it may have replaced the build's files: a plain install reinstalls it
        cu129 = f"{big_index.url}/whl/cu129"
        project.pip("install", "--no-deps", "--index-url", cu129, "nvidia-cudnn-cu12")
        result = project.run("install")
        assert "removed 1 unused CUDA wheel (nvidia-cudnn-cu12)" in result.stdout

    assert _stashes(project) == [".torch-cuda-previous"]
    big_index.clear_requests()
    result = project.run("torch-cuda", "switch", "cu129")
    assert "put back the previous build kept in the environment" in result.stdout
    assert [r for r in big_index.requests if r.endswith(".whl")] == []
    assert project.installed() == before
    assert broken_records(project.site_packages()) == []


def test_a_kept_build_the_lock_no_longer_names_is_not_used(
    tmp_path: Path,
) -> None:
    """The lock was renewed with other bytes for cu129's torch: the kept
    build is refused and the locked file is installed instead."""
    universe = build_universe(tmp_path / "universe")
    with IndexServer(universe.root) as index:
        project = _cu129(tmp_path, index)
        project.run("torch-cuda", "switch", "cu130")
        wheel = universe.wheel("torch", "2.14.1+cu129", "cu129")
        old = f'{hashlib.sha256(wheel.read_bytes()).hexdigest()}", size = '
        old += str(wheel.stat().st_size)
        replace_module(universe, "cu129", "torch", "2.14.1+cu129", "RENEWED = True\n")
        new = f'{hashlib.sha256(wheel.read_bytes()).hexdigest()}", size = '
        new += str(wheel.stat().st_size)
        lock = project.path / "torch-cuda.lock"
        assert old in lock.read_text()
        lock.write_text(lock.read_text().replace(old, new))

        result = project.run("torch-cuda", "switch", "cu129")

        assert "put back the previous build" not in result.stdout, describe(result)
        assert project.installed()["torch"] == "2.14.1+cu129"
        init = project.site_packages() / "torch" / "__init__.py"
        assert "RENEWED = True" in init.read_text()


def test_a_kept_build_whose_bytes_changed_is_not_put_back(tmp_path: Path) -> None:
    """A file of the kept cu129 build is rewritten at its size while cu130 is in: the
    switch back does not put those bytes in (nor call them verified); it installs the
    locked files, and says why."""
    universe = build_universe(tmp_path / "universe")
    make_verifiable(universe, ["cu129", "cu130"])
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    with IndexServer(universe.root) as index:
        project = Project.create(tmp_path, index, DEPS, CU129)
        project.run("install", env_extra=env)
        init = project.site_packages() / "torch" / "__init__.py"
        cu129_init = init.read_bytes()
        project.run("torch-cuda", "switch", "cu130", env_extra=env)
        manifest = json.loads(
            (project.venv / ".torch-cuda-previous/stash.json").read_text()
        )
        (kept,) = (n for p, n in manifest["files"] if p == str(init))
        kept_file = project.venv / ".torch-cuda-previous" / kept
        assert kept_file.read_bytes() == cu129_init
        kept_file.write_bytes(cu129_init[:-1] + b" ")  # same size, still imports

        result = project.run("torch-cuda", "switch", "cu129", env_extra=env)

        assert "put back the previous build" not in result.stdout, describe(result)
        assert "installed torch 2.14.1+cu129" in result.stdout, describe(result)
        assert "torch/__init__.py" in result.stderr, describe(result)
        assert "changed since it was kept" in result.stderr, describe(result)
        assert project.installed()["torch"] == "2.14.1+cu129"
        assert init.read_bytes() == cu129_init
        manifest = json.loads(
            (project.venv / ".torch-cuda-previous/stash.json").read_text()
        )
        assert manifest["before"]["torch"] == "2.14.1+cu130"  # the damaged one dropped
        verify = project.run("torch-cuda", "verify", env_extra=env, check=False)
        assert verify.returncode == 0, describe(verify)


# -- failed switches ------------------------------------------------------------


@pytest.fixture(scope="module")
def proof_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """cpu's torch runs; cu130's hangs on import."""
    universe = build_universe(tmp_path_factory.mktemp("stash-proof-universe"))
    replace_module(universe, "cpu", "torch", "2.14.1+cpu", fake_torch("2.14.1+cpu"))
    replace_module(
        universe,
        "cu130",
        "torch",
        "2.14.1+cu130",
        "import time\ntime.sleep(300)\n" + fake_torch("2.14.1+cu130", cuda="13.0"),
    )
    yield from served(universe.root)


def _cpu(tmp_path: Path, index: IndexServer, env: dict[str, str | None]) -> Project:
    project = Project.create(
        tmp_path, index, {"torch": "2.14.1"}, 'variant = "cpu"\npackages = ["torch"]'
    )
    project.run("install", env_extra=env)
    return project


def _sigterm_at_the_probe(
    project: Project, hung: Path, env: dict[str, str | None], variant: str
) -> subprocess.CompletedProcess[str]:
    """``switch variant``, SIGTERM as it first asks the hanging nvidia-smi."""
    with running(project, "torch-cuda", "switch", variant, env_extra=env) as process:
        wait_for((hung / "nvidia-smi.calls").exists, 180, "the machine probe")
        os.killpg(process.pid, signal.SIGTERM)
        return finish(process, timeout=120)


def _signal_once_installed(
    project: Project,
    args: tuple[str, ...],
    env: dict[str, str | None],
    paused: Path,
    signum: int,
    wrapper: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``args`` paused as the install keeps the previous build, ``signum`` then (held
    by the install's end, or ignored), and let go on."""
    with running(project, *args, env_extra=env, wrapper=wrapper) as process:
        wait_for(paused.exists, 180, "the install to keep the previous build")
        os.killpg(process.pid, signum)
        time.sleep(0.5)  # taken, and waiting
        paused.with_name(f"{paused.name}-go").touch()
        return finish(process, timeout=120)


def _project_files(project: Project) -> dict[str, bytes | None]:
    paths = {
        "pyproject.toml": project.pyproject,
        "poetry.lock": project.lockfile,
        "torch-cuda.lock": project.path / "torch-cuda.lock",
        "owner": project.venv / ".poetry-torch-cuda-owner.json",
    }
    return {k: p.read_bytes() if p.exists() else None for k, p in paths.items()}


def test_a_failed_switch_changes_no_file_and_takes_nothing_from_the_mirror(
    tmp_path: Path,
) -> None:
    universe = build_universe(tmp_path / "universe")
    replace_module(universe, "cpu", "torch", "2.14.1+cpu", fake_torch("2.14.1+cpu"))
    replace_module(
        universe, "cu128", "torch", "2.14.1+cu128", broken_import("2.14.1+cu128")
    )
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    with IndexServer(universe.root) as index:
        project = _cpu(tmp_path, index, env)
        files = _project_files(project)
        init = project.site_packages() / "torch" / "__init__.py"
        torch_init = init.read_bytes()
        # The mirror now serves other bytes for cpu's torch.
        replace_module(universe, "cpu", "torch", "2.14.1+cpu", "TAMPERED = True\n")
        index.clear_requests()

        result = project.run(
            "torch-cuda", "switch", "cu128", check=False, env_extra=env
        )

        assert result.returncode == 1, describe(result)
        assert "Put back the previous build: torch 2.14.1+cpu" in result.stderr
        assert not [r for r in index.requests if r.startswith("/whl/cpu/")]
        assert init.read_bytes() == torch_init
        assert _project_files(project) == files  # torch-cuda.lock gained no cu128
        assert broken_records(project.site_packages()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_verification_rolls_the_switch_back(
    tmp_path: Path, proof_index: IndexServer, signum: int
) -> None:
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project = _cpu(tmp_path, proof_index, env)
    files = _project_files(project)
    before = project.installed()
    with running(project, "torch-cuda", "switch", "cu130", env_extra=env) as process:

        def probe() -> list[int]:
            return [
                pid for pid in descendants(process.pid) if "child.py" in _cmdline(pid)
            ]

        wait_for(lambda: bool(probe()), 180, "the verification's child")
        children = probe()
        os.killpg(process.pid, signum)
        result = finish(process, timeout=120)

    name = signal.Signals(signum).name
    assert result.returncode == 128 + signum, describe(result)
    assert f"{name} stopped the verification of cu130" in result.stderr
    assert "Put back the previous build: torch 2.14.1+cpu" in result.stderr
    assert project.installed() == before
    assert _project_files(project) == files
    assert not list(project.path.glob(".pyproject.toml.*"))
    time.sleep(0.5)
    assert not [pid for pid in children if _running(pid)]


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_during_the_rollback_keeps_the_switchs_message(
    tmp_path: Path, proof_index: IndexServer, second: int
) -> None:
    """Ctrl-C during the verification of cu130, then a second Ctrl-C (or a CI's
    SIGTERM) while the rollback removes cu130: the run ended once the put-back was
    done with no word (Ctrl-C: exit 1; SIGTERM: killed)."""
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project = _cpu(tmp_path, proof_index, env)
    files = _project_files(project)
    before = project.installed()
    pause, paused = paused_at(
        tmp_path / "pause", "torch-2.14.1+cu130.dist-info", LAST_STEP
    )
    env.update(pause)
    with running(project, "torch-cuda", "switch", "cu130", env_extra=env) as process:
        wait_for(lambda: bool(_probes(process.pid)), 180, "the verification")
        os.killpg(process.pid, signal.SIGINT)
        wait_for(paused.exists, 60, "the rollback to remove cu130's torch")
        os.killpg(process.pid, second)
        time.sleep(0.5)  # taken, and waiting
        paused.with_name(f"{paused.name}-go").touch()
        result = finish(process, timeout=120)

    assert result.returncode == 130, describe(result)
    assert "SIGINT stopped the verification of cu130" in result.stderr
    assert "Put back the previous build: torch 2.14.1+cpu" in result.stderr
    assert project.installed() == before
    assert _project_files(project) == files


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_once_the_switch_installed_says_where_it_stopped(
    tmp_path: Path, proof_index: IndexServer, signum: int
) -> None:
    """Ctrl-C (or SIGTERM) while the install finishes (its stash becomes the
    previous build, signals held): the run then ended with no word (Ctrl-C: exit
    1; SIGTERM: killed), cu130 installed and pyproject.toml still saying cpu."""
    env = no_gpu(tmp_path)
    project = _cpu(tmp_path, proof_index, env)
    files = _project_files(project)
    before = project.installed()
    pause, paused = paused_at(
        tmp_path / "pause", ".torch-cuda-previous", "shutil.rmtree"
    )
    args = ("torch-cuda", "switch", "cu130")
    result = _signal_once_installed(project, args, {**env, **pause}, paused, signum)

    name = signal.Signals(signum).name
    assert result.returncode == 128 + signum, describe(result)
    assert result.stderr == (
        f"{name} stopped the run once cu130 was installed: it stays installed, "
        "unverified; `poetry torch-cuda verify` checks it.\n"
    ), describe(result)
    assert {k: v for k, v in _project_files(project).items() if k != "owner"} == {
        k: v for k, v in files.items() if k != "owner"
    }
    # what the message says the next command does
    again = run_inprocess(project, "torch-cuda", "sync", env_extra=env)
    assert again.returncode == 0, again
    assert project.installed() == before


def test_a_hangup_under_nohup_leaves_the_switch_running(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """``nohup poetry torch-cuda switch cu130``, then the terminal closes (SIGHUP)
    while the install finishes: the plugin set its own handler over the ignore nohup
    asked for, and stopped the switch (exit 129, pyproject.toml still saying cpu),
    where Poetry and pip alone go on. A signal ignored before the run stays ignored."""
    env = no_gpu(tmp_path)
    project = _cpu(tmp_path, proof_index, env)
    pause, paused = paused_at(
        tmp_path / "pause", ".torch-cuda-previous", "shutil.rmtree"
    )
    args, hangup = ("torch-cuda", "switch", "cu130"), signal.SIGHUP
    result = _signal_once_installed(
        project, args, {**env, **pause}, paused, hangup, wrapper=["nohup"]
    )

    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert 'variant = "cu130"' in project.pyproject_text()


def test_a_signal_while_the_verification_probes_the_machine_rolls_back(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """cpu is installed over cu130; a CI's SIGTERM lands while the verification asks
    nvidia-smi about the machine, before its handler was set: the run was killed
    without a word, cpu installed and pyproject.toml saying cu130. (A switch to a
    CUDA build asks nvidia-smi before it installs, for the driver: from cu130 to cpu,
    the verification is the first to ask.)"""
    project = _cpu(tmp_path, proof_index, no_gpu(tmp_path))
    off = {**no_gpu(tmp_path), "POETRY_TORCH_CUDA_VERIFY": "0"}
    assert project.run("torch-cuda", "switch", "cu130", env_extra=off).returncode == 0
    files = _project_files(project)
    before = project.installed()
    hung = tmp_path / "hung"
    env = {**hanging_nvidia_smi(hung), **VERIFY_ON}
    result = _sigterm_at_the_probe(project, hung, env, "cpu")

    assert result.returncode == 143, describe(result)
    assert result.stderr == (
        "SIGTERM stopped the verification of cpu\nPut back the previous build: "
        "torch 2.14.1+cu130 (no download). pyproject.toml is unchanged.\n"
    ), describe(result)
    assert project.installed() == before
    assert _project_files(project)["pyproject.toml"] == files["pyproject.toml"]


@pytest.mark.parametrize("step", ["pip", "verification"])
def test_kill_9_of_a_switch_to_a_variant_not_locked_changes_no_project_file(
    tmp_path: Path, proof_index: IndexServer, step: str
) -> None:
    """torch-cuda.lock lacks cu130: the switch locks it first, and the whole
    run is killed while pip unpacks or while the build is verified."""
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project = _cpu(tmp_path, proof_index, env)
    files = {k: v for k, v in _project_files(project).items() if k != "owner"}
    before = project.installed()
    pause, paused = paused_at(tmp_path / "pause", "torch/__init__.py")
    if step == "pip":
        env.update(pause)
    with running(project, "torch-cuda", "switch", "cu130", env_extra=env) as process:
        if step == "pip":
            wait_for(paused.exists, 180, "pip to unpack cu130's torch")
            wait_for(paused.read_text, 10, "pip's pid")
            stuck = [int(paused.read_text())]
        else:
            wait_for(lambda: bool(_probes(process.pid)), 180, "the verification")
            stuck = _probes(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        for pid in stuck:  # in sessions of their own
            os.kill(pid, signal.SIGKILL)
        finish(process)
    wait_for(lambda: not any(_running(pid) for pid in stuck), 30, "the children")

    assert {k: v for k, v in _project_files(project).items() if k != "owner"} == files

    env.pop("PYTHONPATH", None)
    again = project.run("install", env_extra=env)  # the next run completes

    assert project.installed() == before, describe(again)
    assert {k: v for k, v in _project_files(project).items() if k != "owner"} == files
    assert [p.name for p in project.path.glob(".*.tmp")] == []
    assert _tilde(project) == [], describe(again)
    assert broken_records(project.site_packages()) == []


def _probes(pid: int) -> list[int]:
    """The verification's child processes under ``pid``."""
    return [child for child in descendants(pid) if "child.py" in _cmdline(child)]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_auto_moving_on_installs_only_locked_bytes(tmp_path: Path) -> None:
    """cu126 fails here for this machine's GPU; the next candidate, cpu, is served
    with other bytes than torch-cuda.lock holds: the move-on refuses them."""
    universe = build_universe(tmp_path / "universe")
    replace_module(universe, "cpu", "torch", "2.13.0+cpu", fake_torch("2.13.0+cpu"))
    replace_module(
        universe,
        "cu126",
        "torch",
        "2.13.0+cu126",
        fake_torch(
            "2.13.0+cu126",
            cuda="12.6",
            archs=["sm_75", "sm_80", "sm_86", "sm_90"],  # no kernel image for sm_61
            sees=[("NVIDIA GeForce GTX 1080", (6, 1))],
        ),
    )
    env = {**gpu(tmp_path, GTX_1080, driver="575.51.03"), **VERIFY_ON}
    with IndexServer(universe.root) as index:
        project = Project.create(
            tmp_path,
            index,
            {"torch": "2.13.0"},
            'variant = "auto"\npackages = ["torch"]',
        )
        project.run("lock", env_extra=env)
        assert '"2.13.0+cpu"' in (project.path / "torch-cuda.lock").read_text()
        tampered = fake_torch("2.13.0+cpu") + "TAMPERED = True\n"
        replace_module(universe, "cpu", "torch", "2.13.0+cpu", tampered)

        result = project.run("install", check=False, env_extra=env)

        assert "auto: trying cpu" in result.stderr, describe(result)
        assert result.returncode == 1, describe(result)
        assert "refused torch-2.13.0+cpu" in result.stderr
        init = project.site_packages() / "torch" / "__init__.py"
        assert "TAMPERED" not in init.read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("args", [("torch-cuda", "sync"), ("install",)])
def test_a_signal_once_sync_or_install_installed_says_what_is_installed(
    tmp_path: Path, proof_index: IndexServer, args: tuple[str, ...], signum: int
) -> None:
    """pyproject.toml says cu130 (set by hand) over cpu; Ctrl-C (or SIGTERM) while
    the install finishes (signals held): the run ended with no word (Ctrl-C: exit 1;
    SIGTERM: killed), cu130 installed."""
    env = no_gpu(tmp_path)
    project = _cpu(tmp_path, proof_index, env)
    project.write_pyproject(project.pyproject_text().replace('"cpu"', '"cu130"'))
    pause, paused = paused_at(
        tmp_path / "pause", ".torch-cuda-previous", "shutil.rmtree"
    )
    result = _signal_once_installed(project, args, {**env, **pause}, paused, signum)

    name = signal.Signals(signum).name
    assert result.returncode == 128 + signum, describe(result)
    assert result.stderr.endswith(
        f"{name} stopped the run once cu130 was installed: it stays installed, "
        "unverified; `poetry torch-cuda verify` checks it.\n"
    ), describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert "cu130" in (project.path / "torch-cuda.lock").read_text()  # verify's


def test_a_signal_while_the_switch_asks_the_driver_says_nothing_was_installed(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """A switch to a CUDA build asks nvidia-smi for the driver before it installs;
    a SIGTERM then said "which may be installed" where nothing was."""
    project = _cpu(tmp_path, proof_index, no_gpu(tmp_path))
    files = _project_files(project)
    before = project.installed()
    hung = tmp_path / "hung"
    env = hanging_nvidia_smi(hung)
    result = _sigterm_at_the_probe(project, hung, env, "cu130")

    assert result.returncode == 143, describe(result)
    assert result.stderr == (
        "SIGTERM stopped the switch to cu130 before it installed anything; "
        "pyproject.toml is unchanged.\n"
    ), describe(result)
    assert project.installed() == before
    assert _project_files(project) == files


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_switch_waits_for_another_run_says_nothing_was_installed(
    tmp_path: Path, proof_index: IndexServer, signum: int
) -> None:
    """Another run holds the environment; the switch waits for it. Ctrl-C (or a CI's
    SIGTERM) then ended it without its words (SIGTERM: killed silently)."""
    project = _cpu(tmp_path, proof_index, no_gpu(tmp_path))
    files = _project_files(project)
    before = project.installed()
    lock = (state_dir(project.venv) / ENV_LOCK_NAME).resolve()
    with open(lock, "a") as other_run:
        fcntl.flock(other_run.fileno(), fcntl.LOCK_EX)
        switch = ("torch-cuda", "switch", "cu130")
        with running(project, *switch, env_extra=no_gpu(tmp_path)) as process:
            wait_for(lambda: _opened(process.pid, lock), 180, "the switch to wait")
            os.killpg(process.pid, signum)
            result = finish(process, timeout=120)

    name = signal.Signals(signum).name
    assert result.returncode == 128 + signum, describe(result)
    assert result.stderr.endswith(
        f"{name} stopped the switch to cu130 before it installed anything; "
        "pyproject.toml is unchanged.\n"
    ), describe(result)
    assert project.installed() == before
    assert _project_files(project) == files


def _opened(pid: int, path: Path) -> bool:
    """Whether the process ``pid`` has ``path`` open."""
    try:
        return any(
            os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir()
        )
    except OSError:
        return False

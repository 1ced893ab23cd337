"""Verification after changes, switch's rollback and auto's self-check, end to end.

Real Poetry, pip and venvs against local indexes whose torch wheels fail the
way real builds fail (tests/support/fake_torch.py): an import that cannot find
``libcudnn.so.9``, a CUDA build that does not see the GPU nvidia-smi reports,
a build whose arch list starts at sm_75 on an sm_61 GPU. GPUs are stub
``nvidia-smi`` executables first on PATH.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING
from typing import Any

import pytest

from poetry_torch_cuda.environment import envlock
from tests.support.catalog import build_universe
from tests.support.fake_torch import LIBCUDNN_MISSING
from tests.support.fake_torch import NMS_MISSING
from tests.support.fake_torch import broken_import
from tests.support.fake_torch import fake_torch
from tests.support.fake_torch import fake_torchvision
from tests.support.fake_torch import replace_module
from tests.support.fixtures import served
from tests.support.gpus import GTX_1080
from tests.support.gpus import RTX_4090
from tests.support.gpus import RTX_5090
from tests.support.gpus import also_runs
from tests.support.gpus import gpu
from tests.support.gpus import no_gpu
from tests.support.gpus import no_real_driver
from tests.support.index import IndexServer
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.processes import LAST_STEP
from tests.support.processes import finish
from tests.support.processes import paused_at
from tests.support.processes import running
from tests.support.processes import wait_for


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.catalog import Universe

pytestmark = [pytest.mark.e2e, no_real_driver]

ARCHS_129 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


def _replace_torch(universe: Universe, variant: str, version: str, source: str) -> None:
    replace_module(universe, variant, "torch", version, source)


def _blind_cu126(tmp_path: Path) -> Universe:
    """The default universe with a cu126 build that does not see the GPU."""
    universe = build_universe(tmp_path / "universe")
    _replace_torch(
        universe,
        "cu126",
        "2.13.0+cu126",
        fake_torch("2.13.0+cu126", cuda="12.6", archs=["sm_75"], sees=[]),
    )
    return universe


@pytest.fixture(scope="module")
def proof_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """The default universe with torch builds that run, and builds that fail like real ones."""
    universe = build_universe(tmp_path_factory.mktemp("proof-universe"))
    for version in ("2.13.0", "2.14.1"):
        _replace_torch(universe, "cpu", f"{version}+cpu", fake_torch(f"{version}+cpu"))
        _replace_torch(
            universe,
            "cu129",
            f"{version}+cu129",
            # a CUDA build that does not see the GPU nvidia-smi reports
            fake_torch(
                f"{version}+cu129", cuda="12.9", archs=ARCHS_129, cudnn=91002, sees=[]
            ),
        )
        _replace_torch(
            universe,
            "cu130",
            f"{version}+cu130",
            fake_torch(
                f"{version}+cu130",
                cuda="13.0",
                archs=["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"],
                cudnn=91300,
                sees=[("NVIDIA GeForce RTX 4090", (8, 9))],
            ),
        )
    replace_module(
        universe, "cpu", "torchvision", "0.29.1+cpu", fake_torchvision("0.29.1+cpu")
    )
    replace_module(
        universe,
        "cu130",
        "torchvision",
        "0.29.1+cu130",
        fake_torchvision("0.29.1+cu130", mismatched=True),
    )
    _replace_torch(universe, "cu128", "2.14.1+cu128", broken_import("2.14.1+cu128"))
    _replace_torch(
        universe,
        "cu126",
        "2.13.0+cu126",
        fake_torch(
            "2.13.0+cu126",
            cuda="12.6",
            archs=["sm_75", "sm_80", "sm_86", "sm_90"],  # no kernel image for sm_61
            sees=[("NVIDIA GeForce GTX 1080", (6, 1))],
        ),
    )
    yield from served(universe.root)


def make_project(
    tmp_path: Path,
    index: IndexServer,
    torch: str,
    variant: str,
    install_with: dict[str, str] | None = None,
) -> Project:
    """A project of torch alone; ``install_with``: installed first with that env."""
    project = Project.create(
        tmp_path,
        index,
        {"torch": torch},
        f'variant = "{variant}"\npackages = ["torch"]',
    )
    if install_with is not None:
        project.run("install", env_extra=install_with)
    return project


def verify_json(project: Project, env: dict[str, str], code: int) -> dict[str, Any]:
    result = project.run("torch-cuda", "verify", "--json", check=False, env_extra=env)
    assert result.returncode == code, describe(result)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- switch: all or nothing by proof ------------------------------------------


@pytest.mark.parametrize(
    ("target", "torch", "machine", "finding"),
    [
        ("cu128", "2.14.1", None, LIBCUDNN_MISSING),
        (
            "cu129",
            "2.14.1",
            RTX_4090,
            "torch.cuda.is_available() is False",
        ),
        ("cu126", "2.13.0", GTX_1080, "is not built for GPU 0"),
    ],
    ids=["import-fails", "gpu-not-visible", "arch-not-covered"],
)
def test_switch_rolls_back_a_build_that_fails_verification(
    tmp_path: Path,
    proof_index: IndexServer,
    target: str,
    torch: str,
    machine: tuple[str, str] | None,
    finding: str,
) -> None:
    env = {**(gpu(tmp_path, machine) if machine else no_gpu(tmp_path)), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, torch, "cpu", install_with=env)
    assert project.installed()["torch"] == f"{torch}+cpu"
    pyproject = project.pyproject.read_bytes()
    records = _records(project)

    result = project.run("torch-cuda", "switch", target, check=False, env_extra=env)

    assert result.returncode == 1, describe(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert finding in lines[0], describe(result)  # the failing line comes first
    assert "Fix:" in result.stderr
    assert f"Put back the previous build: torch {torch}+cpu" in result.stderr
    assert "pyproject.toml is unchanged" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert project.pyproject.read_bytes() == pyproject
    installed = project.installed()
    assert installed["torch"] == f"{torch}+cpu"
    assert "nvidia-cublas-cu12" not in installed  # the new build's wheels swept
    # The records go back with the build: the install record listed the new
    # build's locked files, which the next change's stash kept as the old one's.
    assert _records(project) == records


def _records(project: Project) -> list[Any]:
    """The owner record and the install record (the locked files installed)."""
    names = (".poetry-torch-cuda-owner.json", ".torch-cuda-installed.json")
    return [json.loads((project.venv / name).read_text()) for name in names]


def test_a_rollback_that_fails_leaves_the_records_of_the_build_in_place(
    tmp_path: Path, proof_index: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The put-back of the previous build fails (a file cannot be removed): the
    failing cu128 build stays, but the owner record was put back to cpu."""
    from poetry_torch_cuda.install import undo
    from poetry_torch_cuda.proof import after

    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu", install_with=env)
    prove, proving = after.prove, []

    def busy(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))

    def prove_then_busy(*args: Any, **kwargs: Any) -> Any:
        proving.append(monkeypatch.setattr(undo, "remove_distributions", busy))
        return prove(*args, **kwargs)

    monkeypatch.setattr(after, "prove", prove_then_busy)
    result = run_inprocess(project, "torch-cuda", "switch", "cu128", env_extra=env)
    monkeypatch.undo()

    assert result.returncode == 1, result
    assert proving and "Putting back torch 2.14.1+cpu failed too" in result.stderr
    assert project.installed()["torch"] == "2.14.1+cu128"
    assert _records(project)[0]["variant"] == "cu128"


def test_a_switch_into_an_environment_without_torch_rolls_back_to_none(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """No build before the switch: all or nothing leaves none (not the failing one)."""
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu")
    project.run("lock")
    pyproject = project.pyproject.read_bytes()

    # --only main: the switch installs what `poetry install --only main` would
    result = project.run(
        "torch-cuda", "switch", "cu128", "--only", "main", check=False, env_extra=env
    )

    assert result.returncode == 1, describe(result)
    assert LIBCUDNN_MISSING in result.stderr
    assert "Put back the previous build: no torch build, as before" in result.stderr
    assert project.pyproject.read_bytes() == pyproject
    assert "torch" not in project.installed()


@pytest.mark.parametrize("cpu", ["does-not-import", "download-corrupt"])
def test_a_switch_whose_every_candidate_fails_leaves_the_earlier_build(
    tmp_path: Path, cpu: str
) -> None:
    """auto moves on from cu126 to cpu, which fails too: verification, or its
    install; either way the environment holds the build it had before the switch."""
    universe = _blind_cu126(tmp_path)
    _replace_torch(universe, "cpu", "2.13.0+cpu", broken_import("2.13.0+cpu"))
    with IndexServer(universe.root) as index:
        project = make_project(tmp_path, index, "2.13.0", "cu130", install_with={})
        pyproject = project.pyproject.read_bytes()
        env = {**gpu(tmp_path, GTX_1080, driver="575.51.03"), **VERIFY_ON}
        index.clear_requests()
        if cpu == "download-corrupt":
            index.corrupt_paths.add("/whl/cpu/torch/")

        result = project.run("torch-cuda", "switch", "auto", check=False, env_extra=env)

        assert result.returncode == 1, describe(result)
        assert "auto: cu126 failed verification here" in result.stderr
        assert "auto: trying cpu" in result.stderr
        if cpu == "does-not-import":
            assert "torch 2.13.0+cpu does not import" in result.stderr
            # The stash kept the earlier build through auto's move: links.
            assert (
                "Put back the previous build: torch 2.13.0+cu130 (no download). "
                "pyproject.toml is unchanged." in result.stderr
            )
        else:
            assert "Nothing changed: the environment still has torch 2.13.0+cu130." in (
                result.stderr
            ), describe(result)
        assert not [r for r in index.requests if r.startswith("/whl/cu130/")]
    assert project.pyproject.read_bytes() == pyproject
    assert project.installed()["torch"] == "2.13.0+cu130"


def test_a_signal_during_autos_rollback_stops_it_before_the_next_install(
    tmp_path: Path,
) -> None:
    """auto's cu126 fails here; a CI's SIGTERM lands while the switch puts cu130
    back before it tries cpu: the run was killed without a word."""
    universe = _blind_cu126(tmp_path)
    with IndexServer(universe.root) as index:
        project = make_project(tmp_path, index, "2.13.0", "cu130", install_with={})
        pyproject = project.pyproject.read_bytes()
        env = {**gpu(tmp_path, GTX_1080, driver="575.51.03"), **VERIFY_ON}
        info = "torch-2.13.0+cu126.dist-info"
        pause, paused = paused_at(tmp_path / "pause", info, LAST_STEP)
        env.update(pause)
        args = ("torch-cuda", "switch", "auto")
        with running(project, *args, env_extra=env) as process:
            wait_for(paused.exists, 180, "the rollback to remove cu126's torch")
            os.killpg(process.pid, signal.SIGTERM)
            time.sleep(0.5)  # taken, and waiting
            paused.with_name(f"{paused.name}-go").touch()
            result = finish(process, timeout=120)

    assert result.returncode == 143, describe(result)
    assert result.stderr.startswith(
        "SIGTERM stopped auto before it tried cpu: torch 2.13.0+cu126 cannot use the GPU"
    ), describe(result)
    assert "Put back the previous build: torch 2.13.0+cu130" in result.stderr
    assert "auto: trying cpu" not in result.stderr
    assert project.pyproject.read_bytes() == pyproject
    assert project.installed()["torch"] == "2.13.0+cu130"


def test_switch_to_a_build_that_runs_verifies_it(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    env = {**gpu(tmp_path, RTX_4090, driver="580.95.05"), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu", install_with=env)

    result = project.run("torch-cuda", "switch", "cu130", env_extra=env)

    assert "verified torch 2.14.1+cu130: imports, computes on the CPU, GPU 0" in (
        result.stdout
    )
    assert 'variant = "cu130"' in project.pyproject_text()


#: What a switch says when pyproject.toml lost the table or its variant meanwhile.
LOST = (
    "pyproject.toml no longer has a [tool.poetry-torch-cuda] table with a variant "
    "(edited while the switch ran); nothing was changed. Restore it, then run the "
    "switch again."
)


@pytest.mark.parametrize("switch", ["cu130", "auto"])
def test_a_switch_whose_variant_goes_away_meanwhile_changes_nothing(
    tmp_path: Path, proof_index: IndexServer, switch: str
) -> None:
    """The variant is removed from pyproject.toml when the switch asks nvidia-smi:
    to cu130 (before it installs), its verified build stood and "could not be
    written" came last; to auto (auto's choice, before its first read of the
    file), an "unexpected error". The switch did not happen: nothing changed,
    the verified cu130 put back, one message with the cause and the fix."""
    env = {**gpu(tmp_path, RTX_4090, driver="580.95.05"), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu", install_with=env)
    lock, before = (project.path / "torch-cuda.lock").read_bytes(), project.installed()
    owner = (project.venv / ".poetry-torch-cuda-owner.json").read_bytes()
    edited = project.pyproject_text().replace('variant = "cpu"\n', "")
    also_runs(
        tmp_path / "machine",
        "nvidia-smi",
        f"sed -i '/^variant = /d' {project.pyproject}",
    )

    result = project.run("torch-cuda", "switch", switch, check=False, env_extra=env)

    assert result.returncode == 1, describe(result)
    if switch == "auto":  # nothing installed yet
        assert result.stderr == LOST + "\n", describe(result)
    else:
        assert "verified torch 2.14.1+cu130" in result.stdout, describe(result)
        assert result.stderr == (
            f"{LOST}\nPut back the previous build: torch 2.14.1+cpu (no download). "
            "pyproject.toml is unchanged.\n"
        ), describe(result)
    assert project.installed() == before
    assert project.pyproject_text() == edited
    assert (project.path / "torch-cuda.lock").read_bytes() == lock
    assert (project.venv / ".poetry-torch-cuda-owner.json").read_bytes() == owner
    assert list(project.path.glob(".pyproject.toml.*")) == []
    # what the message says to do
    project.write_pyproject(project.pyproject_text() + 'variant = "cpu"\n')
    again = {**gpu(tmp_path / "again", RTX_4090, driver="580.95.05"), **VERIFY_ON}
    project.run("torch-cuda", "switch", switch, env_extra=again)
    assert project.installed()["torch"] == "2.14.1+cu130"


def test_a_sync_that_waited_verifies_the_variant_it_installed(
    tmp_path: Path, proof_index: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyproject.toml says cu130 once another run lets go of the environment: the
    sync plans and installs cu130, then verified cpu, failing on the build it was
    right to install."""
    env = {**gpu(tmp_path, RTX_4090, driver="580.95.05"), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu", install_with=env)
    held = (project.venv / ".poetry-torch-cuda.lock").open("a")
    fcntl.flock(held.fileno(), fcntl.LOCK_EX)

    taken = envlock._try_lock

    def other_run_ends(fd: int) -> bool:  # on the first try: it waits
        if held.closed:
            return taken(fd)
        text = project.pyproject_text().replace('"cpu"', '"cu130"')
        project.write_pyproject(text)
        held.close()
        return False

    monkeypatch.setattr(envlock, "_try_lock", other_run_ends)
    result = run_inprocess(project, "torch-cuda", "sync", env_extra=env)

    assert result.returncode == 0, (result.stdout, result.stderr)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert "verified torch 2.14.1+cu130: imports" in result.stdout


# -- the install hook and sync: report, do not roll back -------------------------


def test_install_and_sync_report_a_failing_build_with_its_fix(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    project = make_project(tmp_path, proof_index, "2.14.1", "cu128")
    env = {**no_gpu(tmp_path), **VERIFY_ON}

    result = project.run("install", check=False, env_extra=env)

    assert result.returncode == 1, describe(result)
    assert f"torch 2.14.1+cu128 does not import: OSError: {LIBCUDNN_MISSING}" in (
        result.stderr
    )
    assert "Fix: `poetry torch-cuda sync --force` reinstalls the build" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert project.installed()["torch"] == "2.14.1+cu128"  # Poetry's work stays

    synced = project.run("torch-cuda", "sync", "--force", check=False, env_extra=env)
    assert synced.returncode == 1, describe(synced)
    assert LIBCUDNN_MISSING in synced.stderr

    debug = project.run("torch-cuda", "verify", "-vvv", check=False, env_extra=env)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stdout + debug.stderr


def test_verification_can_be_turned_off(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    project = make_project(tmp_path, proof_index, "2.14.1", "cu128")
    project.write_pyproject(
        project.pyproject_text().replace(
            'variant = "cu128"', 'variant = "cu128"\nverify = false'
        )
    )
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project.run("install", env_extra=env)
    assert project.installed()["torch"] == "2.14.1+cu128"
    # The explicit command still checks.
    assert verify_json(project, env, 1)["ok"] is False


# -- auto checks itself ----------------------------------------------------------


@pytest.mark.parametrize(
    ("torch", "driver", "machine", "failed"),
    [
        # R570 runs cu129 by CUDA 12.x minor-version compatibility: its build
        # does not see the GPU, cu128's does not import, then cpu.
        ("2.14.1", "570.86.10", RTX_5090, ["cu129", "cu128"]),
        ("2.14.1", "575.51.03", RTX_4090, ["cu129", "cu128"]),
        ("2.13.0", "575.51.03", GTX_1080, ["cu126"]),
    ],
    ids=[
        "r570-gpu-not-visible-then-import-fails",
        "gpu-not-visible-then-import-fails",
        "arch-not-covered",
    ],
)
def test_auto_moves_on_and_remembers(
    tmp_path: Path,
    proof_index: IndexServer,
    torch: str,
    driver: str,
    machine: tuple[str, str],
    failed: list[str],
) -> None:
    project = make_project(tmp_path, proof_index, torch, "auto")
    env = {**gpu(tmp_path, machine, driver=driver), **VERIFY_ON}

    result = project.run("install", env_extra=env)

    for variant in failed:
        assert f"auto: {variant} failed verification here" in result.stderr
    assert "auto: trying cpu" in result.stderr
    assert f"verified torch {torch}+cpu" in result.stdout
    assert project.installed()["torch"] == f"{torch}+cpu"

    # The next run does not try the failed builds again.
    again = project.run("torch-cuda", "sync", "-v", env_extra=env)
    assert "failed verification here" not in again.stderr  # not tried again
    assert "cpu already installed" in again.stdout

    detect = run_inprocess(project, "torch-cuda", "detect", "--json", env_extra=env)
    assert detect.returncode == 0, detect
    data = json.loads(detect.stdout)
    assert data["variant"] == "cpu"
    assert [entry["variant"] for entry in data["remembered"]] == failed
    assert all(driver in entry["machine"] for entry in data["remembered"])

    forgotten = run_inprocess(
        project, "torch-cuda", "detect", "--forget", env_extra=env
    )
    assert forgotten.returncode == 0, forgotten
    assert f"Forgot {len(failed)} failed build" in forgotten.stderr
    assert f"auto picks {failed[0]}" in forgotten.stdout


def test_another_driver_starts_afresh(tmp_path: Path, proof_index: IndexServer) -> None:
    env = {**gpu(tmp_path, RTX_5090, driver="570.86.10"), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "auto", install_with=env)
    assert project.installed()["torch"] == "2.14.1+cpu"
    newer = {**gpu(tmp_path / "newer", RTX_5090, driver="570.124.06"), **VERIFY_ON}
    detect = run_inprocess(project, "torch-cuda", "detect", "--json", env_extra=newer)
    assert detect.returncode == 0, detect
    assert json.loads(detect.stdout)["variant"] == "cu129"  # nothing remembered


# -- verify ----------------------------------------------------------------------


def test_verify_reports_the_build_and_its_gpus(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    env = {**gpu(tmp_path, RTX_4090, driver="580.95.05"), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cu130", install_with=env)

    data = verify_json(project, env, 0)

    assert data["schema"] == 1
    assert data["ok"] is True
    assert data["variant"] == "cu130"
    assert data["packages"]["torch"]["version"] == "2.14.1+cu130"
    assert data["packages"]["torch"]["label"] == "cu130"
    assert data["torch"]["cuda"] == "13.0"
    assert data["torch"]["cudnn"] == 91300
    assert data["torch"]["is_available"] is True
    assert data["torch"]["devices"] == [
        {"index": 0, "name": "NVIDIA GeForce RTX 4090", "capability": "8.9"}
    ]
    assert [c["device"] for c in data["compute"] if c["ok"]] == ["cpu", "cuda:0"]

    text = project.run("torch-cuda", "verify", env_extra=env)
    assert "computes on GPU 0 (NVIDIA GeForce RTX 4090)" in text.stdout
    assert "cu130 build verified" in text.stdout

    # torch-cuda.lock gone or garbage: the next install would lock or fail, and
    # verify (which passed) says so in lock --check's words.
    lock = project.path / "torch-cuda.lock"
    kept = lock.read_text()
    for broken in (None, f"{kept}a merge left this\n"):
        lock.unlink() if broken is None else lock.write_text(broken)
        check = run_inprocess(project, "torch-cuda", "lock", "--check")
        assert check.returncode == 1, check
        shown = run_inprocess(project, "torch-cuda", "verify", "--json", env_extra=env)
        assert shown.returncode == 1, shown
        (failed,) = [
            c for c in json.loads(shown.stdout)["checks"] if c["status"] == "fail"
        ]
        assert f"{failed['message']}\n" == check.stderr, shown
    lock.write_text(kept)


def test_verify_s_fix_for_auto_s_failing_build_keeps_auto(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """auto chose cu129 with verification off; it does not see the GPU. The fix
    verify prints installs auto's next choice, and pyproject.toml still says auto."""
    env = gpu(tmp_path, RTX_5090, driver="570.86.10")
    project = make_project(tmp_path, proof_index, "2.14.1", "auto", install_with=env)
    assert project.installed()["torch"] == "2.14.1+cu129"
    data = json.loads(
        run_inprocess(project, "torch-cuda", "verify", "--json", env_extra=env).stdout
    )
    (failing,) = [c for c in data["checks"] if c["status"] == "fail"]
    assert "torch.cuda.is_available() is False" in failing["message"]
    assert "cu128" in failing["fix"]

    quoted = failing["fix"].split("`")[1::2]  # the fix's command, as a user runs it
    command = next(part for part in quoted if part.startswith("poetry ")).split()
    followed = run_inprocess(project, *command[1:], env_extra=env)

    assert followed.returncode == 0, followed
    assert project.installed()["torch"] == "2.14.1+cu128"
    assert 'variant = "auto"' in project.pyproject_text()


def test_verify_s_fix_for_a_configured_package_poetry_lock_lacks_works(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """torchvision is configured but no dependency; a +cu130 one pip installed by
    hand fails on its label. sync leaves what poetry.lock does not lock: the fix
    must do what the user follows it for, and the check after a change (here
    sync --force's) must give the same fix, not sync. A specifier-only entry
    (torchaudio>=2.8) moves with the family: its fix is sync, not `poetry add`."""
    project = Project.create(
        tmp_path,
        proof_index,
        {"torch": "2.14.1"},
        'variant = "cpu"\npackages = ["torch", "torchvision", "torchaudio>=2.8"]',
    )
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)
    cu130 = f"{proof_index.url}/whl/cu130"
    project.pip(
        "install",
        "--no-deps",
        "--index-url",
        cu130,
        "torchvision==0.29.1+cu130",
        "torchaudio==2.14.1+cu130",
    )
    data = verify_json(project, env, 1)
    (audio,) = [c for c in data["checks"] if c["name"] == "label torchaudio"]
    assert audio["fix"] == "`poetry torch-cuda sync` installs it", audio
    forced = run_inprocess(
        project, "torch-cuda", "sync", "--force", env_extra={**env, **VERIFY_ON}
    )
    assert forced.returncode == 1, forced
    assert "torchvision 0.29.1+cu130 is the +cu130 build, not the cpu build" in (
        forced.stderr
    ), forced
    assert (
        "Fix: add it to the project's dependencies (`poetry add torchvision`)"
        in forced.stderr
    ), forced
    assert "`poetry torch-cuda sync` installs it" not in forced.stderr, forced
    data = verify_json(project, env, 1)
    (label,) = [c for c in data["checks"] if c["name"] == "label torchvision"]
    assert label["status"] == "fail"

    quoted = label["fix"].split("`")[1::2]  # the fix's command, as a user runs it
    command = next(part for part in quoted if part.startswith("poetry ")).split()
    followed = run_inprocess(project, *command[1:], env_extra=env)

    assert followed.returncode == 0, followed
    assert project.installed()["torchvision"] == "0.29.1+cpu"
    assert verify_json(project, env, 0)["ok"] is True


def test_verify_fails_on_a_label_other_than_the_variant(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu", install_with=env)
    data = verify_json(project, {**env, "POETRY_TORCH_CUDA_VARIANT": "cu130"}, 1)
    failing = [c for c in data["checks"] if c["status"] == "fail"]
    # torch-cuda.lock has no cu130, which the next install locks first: not a fault
    # of the file (`poetry torch-cuda lock` keeps it as it is)
    assert [c["message"] for c in failing] == [
        "torch 2.14.1+cpu is the +cpu build, not the cu130 build"
    ]
    assert failing[0]["fix"] == "`poetry torch-cuda sync` installs it"


def test_verify_fails_on_a_version_other_than_the_locked_one(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu", install_with=env)
    cpu = f"{proof_index.url}/whl/cpu"
    project.pip("install", "--no-deps", "--index-url", cpu, "torch==2.13.0+cpu")

    data = verify_json(project, env, 1)

    assert data["ok"] is False
    failing = [c for c in data["checks"] if c["status"] == "fail"]
    assert failing[0]["message"] == (
        "torch 2.13.0+cpu is installed, but poetry.lock locks torch 2.14.1"
    )
    assert failing[0]["fix"] == "`poetry torch-cuda sync` installs it"
    text = project.run("torch-cuda", "verify", check=False, env_extra=env)
    assert text.returncode == 1, describe(text)
    assert "verification failed (1 problem) for cpu" in text.stderr


def test_verify_with_nothing_installed_verifies_nothing(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """No poetry.lock and no environment yet: there is no build to prove, so
    verify cannot say one was verified."""
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu")
    env = {**no_gpu(tmp_path), **VERIFY_ON}

    result = run_inprocess(project, "torch-cuda", "verify", env_extra=env)

    assert result.returncode == 1, result
    assert "verified" not in result.stdout, result
    assert (
        "no configured package is installed: there is no build to verify"
        in result.stdout
    ), result
    assert "could not check cpu in (no environment yet)" in result.stderr, result
    data = json.loads(
        run_inprocess(project, "torch-cuda", "verify", "--json", env_extra=env).stdout
    )
    assert data["ok"] is False


def test_a_no_op_install_never_verifies(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    from tests.e2e.test_fast_path import watched

    project = make_project(tmp_path, proof_index, "2.14.1", "cpu")
    project.env.pop("POETRY_TORCH_CUDA_VERIFY")  # verification on, as for users
    project.env.update(no_gpu(tmp_path))
    first = project.run("install")
    assert "verified torch 2.14.1+cpu" in first.stdout

    modules, events = watched(project, "install")

    assert "poetry_torch_cuda.hooks" in modules
    assert not any(name.startswith("poetry_torch_cuda.proof") for name in modules)
    assert events == []  # no probe, no pip, no nvidia-smi


def test_switch_auto_pin_records_the_build_that_runs(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    project = make_project(tmp_path, proof_index, "2.14.1", "cu130")
    project.run("install")  # verification off: the starting point only
    env = {**gpu(tmp_path, RTX_5090, driver="570.86.10"), **VERIFY_ON}

    result = project.run("torch-cuda", "switch", "auto", "--pin", env_extra=env)

    assert "auto: cu129 failed verification here" in result.stderr
    assert "auto: cu128 failed verification here" in result.stderr
    assert 'pyproject.toml now says variant = "cpu"' in result.stdout
    assert 'variant = "cpu"' in project.pyproject_text()
    assert list(project.path.glob(".pyproject.toml.*")) == []  # both edits' files
    assert project.installed()["torch"] == "2.14.1+cpu"


def test_switch_auto_pin_on_a_full_disk_after_installing_says_what_to_set(
    tmp_path: Path, proof_index: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up while auto moves on (cu129 and cu128 fail here, cpu
    runs): the pin's second edit, for cpu, ended in a bare "[Errno 28] No space
    left on device", and the owner record was put back to cu130 though the
    environment held cpu. One message names the file, the cause and the fix, and
    the project's files and the owner record say what the environment holds."""
    project = make_project(tmp_path, proof_index, "2.14.1", "cu130")
    project.run("install")  # verification off: the starting point only
    files = [project.pyproject, project.path / "torch-cuda.lock"]
    before = [path.read_bytes() for path in files]
    env = {**gpu(tmp_path, RTX_5090, driver="570.86.10"), **VERIFY_ON}
    fsync, synced = os.fsync, []

    def full_after_the_first(handle: int) -> None:  # the edit checked before pip
        if synced:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        synced.append(handle)
        fsync(handle)

    monkeypatch.setattr(os, "fsync", full_after_the_first)
    switch = ("torch-cuda", "switch", "auto", "--pin")
    result = run_inprocess(project, *switch, env_extra=env)
    monkeypatch.undo()
    assert result.returncode == 1, result
    assert result.stderr.strip().endswith(
        "pyproject.toml could not be written (No space left on device); it was not "
        'changed. Set variant = "cpu" in it by hand.'
    ), result
    assert project.installed()["torch"] == "2.14.1+cpu"
    assert [path.read_bytes() for path in files] == before
    assert list(project.path.glob(".pyproject.toml.*")) == []
    owner = json.loads((project.venv / ".poetry-torch-cuda-owner.json").read_text())
    assert owner["variant"] == "cpu", owner


def test_switch_auto_pin_refuses_a_read_only_pyproject_before_installing(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """pyproject.toml says auto's first pick here (cu129) and is read-only: the
    pin had nothing to write for it, so nothing was checked; cu129 then failed
    verification, auto moved on to cpu and the switch ended with a bare
    "it is read-only", the environment on cpu and the file on cu129. --pin may
    write whatever runs: a read-only file is refused before anything changes."""
    project = make_project(tmp_path, proof_index, "2.14.1", "cu130")
    project.run("install")  # verification off: the starting point only
    project.write_pyproject(project.pyproject_text().replace('"cu130"', '"cu129"'))
    files = [project.pyproject, project.path / "torch-cuda.lock"]
    before = [path.read_bytes() for path in files]
    env = {**gpu(tmp_path, RTX_5090, driver="570.86.10"), **VERIFY_ON}
    if subprocess.run(["chattr", "+i", str(project.pyproject)], check=False).returncode:
        pytest.skip("chattr +i is not allowed here")
    try:
        result = project.run(
            "torch-cuda", "switch", "auto", "--pin", check=False, env_extra=env
        )
    finally:
        subprocess.run(["chattr", "-i", str(project.pyproject)], check=True)
    assert result.returncode == 1, describe(result)
    assert result.stderr.strip() == (
        "could not write pyproject.toml (it is read-only); nothing was changed. "
        "Free space or fix permissions, then run the command again."
    ), describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert [path.read_bytes() for path in files] == before


def test_kill_9_of_switch_auto_moving_on_changes_no_project_file(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    """torch-cuda.lock lacks auto's picks: cu129 fails here, then cu128. The entry
    of the build auto moved on to was written at once, pyproject.toml still saying
    cpu: a kill -9 then (cu128 being verified) left the lock with an entry the
    project never asked for, as a switch's first build no longer does."""
    env = {**gpu(tmp_path, RTX_4090, driver="575.51.03"), **VERIFY_ON}
    project = make_project(tmp_path, proof_index, "2.14.1", "cpu", install_with=env)
    lock, pyproject = project.path / "torch-cuda.lock", project.pyproject
    before = lock.read_bytes(), pyproject.read_bytes()
    with running(project, "torch-cuda", "switch", "auto", env_extra=env) as process:
        while process.poll() is None and lock.read_bytes() == before[0]:
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)
        result = finish(process)
    assert "auto: cu129 failed verification here" in result.stderr, describe(result)
    if pyproject.read_bytes() == before[1]:  # killed before the switch was recorded
        assert lock.read_bytes() == before[0], describe(result)


def test_a_torchvision_built_for_another_torch_fails_its_operator(
    tmp_path: Path, proof_index: IndexServer
) -> None:
    project = Project.create(
        tmp_path,
        proof_index,
        {"torch": "2.14.1", "torchvision": "0.29.1"},
        'variant = "cpu"\npackages = ["torch", "torchvision"]',
    )
    env = {**gpu(tmp_path, RTX_4090, driver="580.95.05"), **VERIFY_ON}
    installed = project.run("install", env_extra=env)
    assert "verified torch 2.14.1+cpu" in installed.stdout
    assert (
        "torchvision.ops.nms runs"
        in project.run("torch-cuda", "verify", env_extra=env).stdout
    )

    result = project.run("torch-cuda", "switch", "cu130", check=False, env_extra=env)

    assert result.returncode == 1, describe(result)
    assert f"torchvision.ops.nms fails: RuntimeError: {NMS_MISSING}" in result.stderr
    assert "torchvision was built for another torch" in result.stderr
    assert project.installed()["torchvision"] == "0.29.1+cpu"
    assert 'variant = "cpu"' in project.pyproject_text()

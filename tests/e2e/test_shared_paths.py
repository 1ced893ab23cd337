"""Families that ship the same files: no switch, rollback or sweep deletes a file in use.

The real CUDA 12 and 13 wheels share paths (``nvidia-cudnn-cu12`` and
``nvidia-cudnn-cu13`` both install ``nvidia/cudnn/lib/libcudnn.so.9``). Here
the fake cuDNN wheels of both families ship the same two paths, and each
fake torch refuses to import without its library, as the real one does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from typing import TYPE_CHECKING

import pytest

from tests.support.catalog import add_payload
from tests.support.catalog import build_universe
from tests.support.fake_torch import LIBCUDNN_MISSING
from tests.support.fake_torch import fake_torch
from tests.support.fake_torch import replace_module
from tests.support.fixtures import served
from tests.support.gpus import no_gpu
from tests.support.gpus import no_real_driver
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.processes import LAST_STEP
from tests.support.processes import finish
from tests.support.processes import paused_at
from tests.support.processes import running
from tests.support.processes import wait_for
from tests.support.records import broken_records


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.index import IndexServer

pytestmark = [pytest.mark.e2e, no_real_driver]

SHARED = ("nvidia/cudnn/lib/libcudnn.so.9", "nvidia/nccl/lib/libnccl.so.2")
#: A torch that, like the real one, cannot import without the cuDNN library.
NEEDS_CUDNN = (
    "import os as _os\n"
    "_lib = _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), {path!r})\n"
    "if not _os.path.isfile(_lib):\n"
    f"    raise OSError({LIBCUDNN_MISSING!r})\n"
)


@pytest.fixture(scope="module")
def shared_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    universe = build_universe(tmp_path_factory.mktemp("shared-universe"))
    for project, family in (("nvidia-cudnn-cu12", "12"), ("nvidia-cudnn-cu13", "13")):
        add_payload(
            universe, project, {path: f"CUDA {family}\n".encode() for path in SHARED}
        )
    for variant, cuda in (("cu126", "12.6"), ("cu130", "13.0")):
        version = f"2.13.0+{variant}"
        source = NEEDS_CUDNN.format(path=SHARED[0]) + fake_torch(version, cuda=cuda)
        replace_module(universe, variant, "torch", version, source)
    yield from served(universe.root)


def _import_torch(project: Project) -> str:
    result = project._run(
        [str(project.python), "-c", "import torch; print(torch.__version__)"],
        check=False,
    )
    assert result.returncode == 0, describe(result)
    return result.stdout.strip()


def _installed(
    tmp_path: Path, shared_index: IndexServer, variant: str = "cu130"
) -> tuple[Project, dict[str, str | None]]:
    """A project with the cu130 family (or ``variant``'s) installed and verified,
    and its run env."""
    env = {**no_gpu(tmp_path), **VERIFY_ON}
    project = Project.create(
        tmp_path,
        shared_index,
        {"torch": "2.13.0"},
        f'variant = "{variant}"\npackages = ["torch"]',
    )
    project.run("install", env_extra=env)
    return project, env


def test_a_switch_and_back_keeps_every_shared_file(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    project, env = _installed(tmp_path, shared_index)
    assert _import_torch(project) == "2.13.0+cu130"

    for variant in ("cu126", "cu130"):
        result = project.run(
            "torch-cuda", "switch", variant, check=False, env_extra=env
        )

        assert result.returncode == 0, describe(result)
        assert f"verified torch 2.13.0+{variant}" in result.stdout, describe(result)
        assert _import_torch(project) == f"2.13.0+{variant}"
        assert broken_records(project.site_packages()) == []
        family = "12" if variant == "cu126" else "13"
        library = project.site_packages() / SHARED[0]
        assert library.read_text() == f"CUDA {family}\n"


def test_status_and_verify_name_a_distribution_whose_files_are_gone(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    project, env = _installed(tmp_path, shared_index)
    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert status.returncode == 0, status
    # torch still imports: only the guards can tell.
    (project.site_packages() / SHARED[1]).unlink()
    (project.site_packages() / SHARED[0]).write_text("other bytes\n")

    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    verify = project.run("torch-cuda", "verify", check=False, env_extra=env)

    assert status.returncode == 1, status
    assert "nvidia-cudnn-cu13: 1 of its files missing" in status.stdout + status.stderr
    # a size other than RECORD's is a stat away: status names the changed file too
    changed = "nvidia-cudnn-cu13: 1 of its files changed since install"
    assert changed in status.stdout + status.stderr, status
    # status words the cause and the fix as verify does
    assert (
        "an interrupted install left it incomplete; `poetry torch-cuda sync --force` "
        "reinstalls the build"
    ) in status.stdout + status.stderr
    assert verify.returncode == 1, describe(verify)
    output = verify.stdout + verify.stderr
    assert "nvidia-cudnn-cu13: 1 of its files missing" in output, describe(verify)
    assert changed in output, describe(verify)


def test_status_and_verify_name_a_distribution_whose_record_is_gone(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    """Without its RECORD a distribution's files can be neither checked nor
    removed: the guards say so instead of finding nothing wrong, and the fix they
    name repairs it."""
    project, env = _installed(tmp_path, shared_index)
    (project.site_packages() / "nvidia_cudnn_cu13-9.13.0.50.dist-info/RECORD").unlink()

    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    verify = project.run("torch-cuda", "verify", check=False, env_extra=env)

    said = "nvidia-cudnn-cu13: its RECORD is missing or empty"
    assert status.returncode == 1, status
    assert said in status.stdout + status.stderr, status
    assert verify.returncode == 1, describe(verify)
    assert said in verify.stdout + verify.stderr, describe(verify)
    assert "(delete its .dist-info folder first)" in status.stdout + status.stderr
    sync = project.run("torch-cuda", "sync", "--force", check=False, env_extra=env)
    assert sync.returncode == 1, describe(sync)  # pip refuses, as said
    shutil.rmtree(project.site_packages() / "nvidia_cudnn_cu13-9.13.0.50.dist-info")
    project.run("torch-cuda", "sync", "--force", env_extra=env)
    assert broken_records(project.site_packages()) == []
    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert status.returncode == 0, status


def test_a_wheel_of_the_other_family_is_named_and_swept(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    """A CUDA 12 wheel that a later pip run put beside the CUDA 13 build, which
    nothing requires, took the build's shared library: status names it as a wheel
    of another family and fails --check with the fix, which puts the build's file
    back and removes it."""
    project, env = _installed(tmp_path, shared_index)
    project.pip(
        "install",
        "--no-deps",
        "--index-url",
        shared_index.pypi_url,
        "nvidia-cudnn-cu12",
    )
    library = project.site_packages() / SHARED[0]
    assert library.read_text() == "CUDA 12\n"  # what pip did to the build

    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)

    assert status.returncode == 1, status
    assert "Orphans      nvidia-cudnn-cu12\n" in status.stdout, status
    said = (
        "CUDA 12 wheels that nothing needs are installed beside the CUDA 13 build "
        "(nvidia-cudnn-cu12): the families' wheels share file paths, so they may "
        "have replaced the build's libraries; `poetry torch-cuda sync` reinstalls "
        "the build and removes them"
    )
    assert said in status.stdout.replace("\n", " "), status
    dry = project.run("torch-cuda", "sync", "--dry-run", env_extra=env)
    assert "; then remove nvidia-cudnn-cu12, which nothing needs" in dry.stdout, dry
    sync = project.run("torch-cuda", "sync", env_extra=env)
    assert "removed 1 unused CUDA wheel (nvidia-cudnn-cu12)" in sync.stdout, sync
    assert "nvidia-cudnn-cu12" not in project.installed()
    assert library.read_text() == "CUDA 13\n"
    assert broken_records(project.site_packages()) == []
    verify = project.run("torch-cuda", "verify", check=False, env_extra=env)
    assert verify.returncode == 0, describe(verify)
    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert status.returncode == 0, status
    assert "Orphans      none" in status.stdout, status


def test_a_wheel_the_build_requires_and_lacks_fails_status(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    """A killed install can leave torch without a CUDA wheel it requires (pip had
    not reached it): torch's version is right, so only its requirements tell;
    status fails --check with the fix: the next `poetry install` puts it in."""
    project, env = _installed(tmp_path, shared_index)
    project.pip("uninstall", "-y", "nvidia-cudnn-cu13")

    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)

    assert status.returncode == 1, status
    said = (
        "torch 2.13.0+cu130 requires nvidia-cudnn-cu13, which is not installed; "
        "run `poetry install`"
    )
    assert said in status.stdout.replace("\n", " "), status
    # The next install finishes the job, as after any interrupted one.
    result = project.run("install", env_extra=env)
    assert "torch-cuda: cu130: installed torch 2.13.0+cu130" in result.stdout, result
    assert "nvidia-cudnn-cu13" in project.installed()
    assert _import_torch(project) == "2.13.0+cu130"
    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert status.returncode == 0, status


def test_verify_fails_as_status_on_a_wheel_the_build_lacks_or_rejects(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    """torch imports without triton and with another cuBLAS (a hand `pip install`),
    so only the build's requirements tell: verify fails with status's words."""
    project, env = _installed(tmp_path, shared_index)
    project.pip("uninstall", "-y", "triton")
    simple = f"{shared_index.url}/simple/"
    project.pip(
        "install", "--no-deps", "--index-url", simple, "nvidia-cublas==13.1.0.3"
    )
    said = [
        (
            "torch 2.13.0+cu130 depends on nvidia-cublas==13.0.2.14; platform_system == "
            '"Linux" and platform_machine == "x86_64", but nvidia-cublas 13.1.0.3 is '
            "installed"
        ),
        "torch 2.13.0+cu130 requires triton, which is not installed",
    ]
    fixes = [
        "`poetry torch-cuda sync` installs the locked one",
        "run `poetry install`",
    ]

    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    verify = project.run("torch-cuda", "verify", check=False, env_extra=env)
    data = project.run("torch-cuda", "verify", "--json", check=False, env_extra=env)

    assert status.returncode == 1, status
    for problem, fix in zip(said, fixes):
        assert f"Warning: {problem}; {fix}" in status.stdout.replace("\n", " "), status
    assert verify.returncode == 1, describe(verify)
    for problem, fix in zip(said, fixes):
        assert f"FAIL {problem}\n       fix:   {fix}\n" in verify.stdout, describe(
            verify
        )
    assert data.returncode == 1, describe(data)
    checks = json.loads(data.stdout)["checks"]
    assert [(c["message"], c["fix"]) for c in checks if c["status"] == "fail"] == list(
        zip(said, fixes)
    )


def test_a_wheel_the_configured_build_needs_is_no_orphan_to_status(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    """cu126's torch is installed, cu130 configured, and a CUDA 13 wheel sits beside
    it: the sync status advises installs cu130's torch, which needs that wheel, so
    status names no orphan to remove (the plan's answer), only the build to change."""
    project, env = _installed(tmp_path, shared_index, "cu126")
    project.pip(
        "install",
        "--no-deps",
        "--index-url",
        shared_index.pypi_url,
        "nvidia-cudnn-cu13",
    )
    env["POETRY_TORCH_CUDA_VARIANT"] = "cu130"

    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)

    assert status.returncode == 1, status
    assert "but cu130 wants 2.13.0+cu130; run `poetry torch-cuda sync`" in (
        status.stdout.replace("\n", " ")
    ), status
    assert "Orphans      none\n" in status.stdout, status
    assert "nothing needs" not in status.stdout, status
    project.run("torch-cuda", "sync", env_extra=env)
    assert "nvidia-cudnn-cu13" in project.installed()
    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert status.returncode == 0, status


def test_a_removal_killed_after_linking_shared_files_aside_puts_them_back(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    """With nothing to install, a sync removes an unused CUDA wheel through pip
    alone (no stash): killed while pip deletes it, the files it shares with a
    wheel that stays are only in the aside folder; the next run links them back."""
    project, env = _installed(tmp_path, shared_index)
    env.update(POETRY_TORCH_CUDA_VARIANT="cpu", POETRY_TORCH_CUDA_VERIFY="0")
    project.run("torch-cuda", "sync", env_extra=env)  # cpu's torch; cu13's wheels go
    for wheel in ("nvidia-cudnn-cu13", "nvidia-cudnn-cu12"):  # cu12's bytes last
        project.pip("install", "--no-deps", "--index-url", shared_index.pypi_url, wheel)
    library = project.site_packages() / SHARED[0]
    assert library.read_text() == "CUDA 12\n"
    dry = project.run("torch-cuda", "sync", "--dry-run", env_extra=env)
    assert dry.stdout == "torch-cuda: would remove nvidia-cudnn-cu13\n", describe(dry)
    pause, paused = paused_at(tmp_path / "pause", "libcudnn.so.9", "os.remove")
    with running(project, "torch-cuda", "sync", env_extra={**env, **pause}) as process:
        wait_for(paused.exists, 120, "pip to delete the cuDNN wheel's files")
        os.killpg(process.pid, signal.SIGKILL)
        os.kill(int(paused.read_text()), signal.SIGKILL)  # pip: its own session
        finish(process)
    assert not library.exists(), "the kill took nothing"

    again = project.run("torch-cuda", "sync", check=False, env_extra=env)

    assert again.returncode == 0, describe(again)
    assert "undid a killed run's work: put back 2 files" in again.stdout, again
    assert "nvidia-cudnn-cu13" not in project.installed()
    assert library.read_text() == "CUDA 12\n", describe(again)
    assert broken_records(project.site_packages()) == [], describe(again)


def test_a_switch_killed_while_it_sweeps_the_old_wheel_is_put_back_whole(
    tmp_path: Path, shared_index: IndexServer
) -> None:
    """Killed as the switch removes the CUDA 12 wheel it replaced, a run leaves its
    stash (the cu126 build) and the aside folder (the cu130 bytes of the shared
    paths): the next run undoes the later first, so cu126's files stay."""
    project, env = _installed(tmp_path, shared_index, "cu126")
    # Its files are gone, the shared ones only in the aside folder: its .dist-info last.
    info = "nvidia_cudnn_cu12-9.10.2.21.dist-info"
    pause, paused = paused_at(tmp_path / "pause", info, LAST_STEP)
    with running(
        project, "torch-cuda", "switch", "cu130", env_extra={**env, **pause}
    ) as process:
        wait_for(paused.exists, 120, "the switch to remove the CUDA 12 wheel")
        os.killpg(process.pid, signal.SIGKILL)
        os.kill(int(paused.read_text()), signal.SIGKILL)  # pip: its own session
        finish(process)
    library = project.site_packages() / SHARED[0]
    assert not library.exists(), "the kill took nothing"
    # Its stash's random name may sort before the aside folder's or after: pin before.
    (stash,) = (
        p for p in project.venv.glob(".torch-cuda-stash-*") if "-" not in p.suffix
    )
    stash.rename(stash.with_suffix(".00000000"))

    again = project.run("install", check=False, env_extra=env)

    assert again.returncode == 0, describe(again)
    assert "undid a killed run's work" in again.stdout, describe(again)
    assert _import_torch(project) == "2.13.0+cu126"
    assert library.read_text() == "CUDA 12\n", describe(again)
    assert broken_records(project.site_packages()) == [], describe(again)

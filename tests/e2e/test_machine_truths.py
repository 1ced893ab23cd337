"""What the machine is, told truthfully: hidden GPUs, mixed GPUs, containers, a
failing nvidia-smi, builds that are not what their label says, slow imports.

Real Poetry, pip and venvs against a local index whose torch builds see GPUs as
real builds do (tests/support/fake_torch.py); GPUs are stub ``nvidia-smi``
executables first on PATH (issue 21 items 4-7, 10-12, 15, 18; issue 24 item 9).
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING

import pytest

from tests.support.fake_torch import fake_torch
from tests.support.fake_torch import gpus_variable
from tests.support.fixtures import served_gpu_builds
from tests.support.fixtures import torch_project
from tests.support.gpus import ARCHS_CU12
from tests.support.gpus import ARCHS_CU13
from tests.support.gpus import B200
from tests.support.gpus import DRIVER_580
from tests.support.gpus import NVIDIA_SMI_FAILED
from tests.support.gpus import RTX_4090
from tests.support.gpus import V100
from tests.support.gpus import gpu
from tests.support.gpus import machine_env
from tests.support.gpus import no_gpu
from tests.support.gpus import no_real_driver
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.poetry_project import stub_calls


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.index import IndexServer

pytestmark = [pytest.mark.e2e, no_real_driver]


@pytest.fixture(scope="module")
def machine_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """torch 2.14.1 on cpu, cu128 and cu130 (no cu129): builds that see GPUs like real
    ones; the "cu128" build is really a CUDA 13.0 build under the wrong label."""
    builds = {
        "cpu": fake_torch("2.14.1+cpu"),
        "cu130": fake_torch("2.14.1+cu130", cuda="13.0", archs=ARCHS_CU13),
        "cu128": fake_torch("2.14.1+cu128", cuda="13.0", archs=ARCHS_CU12),
    }
    yield from served_gpu_builds(tmp_path_factory.mktemp("machine-universe"), builds)


def test_hidden_gpus_are_a_note_never_a_move_nor_a_memory(
    tmp_path: Path, machine_index: IndexServer
) -> None:
    project = torch_project(tmp_path, machine_index, "auto")
    machine = {**gpu(tmp_path, RTX_4090, driver=DRIVER_580), **gpus_variable(RTX_4090)}
    env = {**machine, **VERIFY_ON, "CUDA_VISIBLE_DEVICES": ""}

    result = project.run("install", check=False, env_extra=env)

    assert result.returncode == 0, describe(result)
    assert "failed verification" not in result.stderr
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert "hidden by CUDA_VISIBLE_DEVICES" in result.stdout + result.stderr
    for hidden in ({"CUDA_VISIBLE_DEVICES": "-1"}, {"HIP_VISIBLE_DEVICES": ""}):
        if "HIP_VISIBLE_DEVICES" in hidden:
            hidden = {**hidden, "CUDA_VISIBLE_DEVICES": "7"}
        verify = project.run(
            "torch-cuda", "verify", check=False, env_extra={**machine, **hidden}
        )
        assert verify.returncode == 0, describe(verify)
        assert "hidden by" in verify.stdout
    detect = run_inprocess(project, "torch-cuda", "detect", "--json", env_extra=machine)
    assert detect.returncode == 0, detect
    assert json.loads(detect.stdout)["remembered"] == []

    # Remembered failures that force cpu on this GPU machine fail status --check.
    key = f"NVIDIA driver {DRIVER_580}; GPU 0 (NVIDIA GeForce RTX 4090, sm_89)"
    failures = [
        {"variant": v, "torch": "2.14.1", "reason": "x", "when": "then", "machine": key}
        for v in ("cu132", "cu130", "cu129", "cu128", "cu126")
    ]
    (project.venv / ".poetry-torch-cuda-memory.json").write_text(
        json.dumps({"schema": 1, "failures": failures})
    )
    status = run_inprocess(
        project, "torch-cuda", "status", "--check", env_extra=machine
    )
    assert status.returncode == 1, status
    assert "Warning:" in status.stdout and "remembered" in status.stdout
    assert "detect --forget" in status.stdout


def test_mixed_gpus_accept_the_gpu_auto_left_out(
    tmp_path: Path, machine_index: IndexServer
) -> None:
    project = torch_project(tmp_path, machine_index, "auto")
    env = {
        **gpu(tmp_path, V100, B200, driver=DRIVER_580),
        **gpus_variable(V100, B200),
        **VERIFY_ON,
    }

    result = project.run("install", "-v", check=False, env_extra=env)

    assert result.returncode == 0, describe(result)
    assert "failed verification" not in result.stderr
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert "GPU 0 (Tesla V100-SXM2-32GB, sm_70)" in result.stdout
    detect = run_inprocess(project, "torch-cuda", "detect", "--json", env_extra=env)
    assert detect.returncode == 0, detect
    assert json.loads(detect.stdout)["remembered"] == []
    # status --check agrees with verification: nothing to fix, the GPU is named.
    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=env)
    assert status.returncode == 0, status
    assert (  # cu129 builds for both; torch 2.14 publishes none
        "Note: GPU 0 (Tesla V100-SXM2-32GB, sm_70) is left out: every variant built "
        "for every GPU is skipped" in status.stdout
    ), status


def test_a_container_on_a_gpu_host_installs_and_verifies(
    tmp_path: Path, machine_index: IndexServer
) -> None:
    root = tmp_path / "container"
    (root / "proc" / "driver" / "nvidia").mkdir(parents=True)
    (root / "proc" / "driver" / "nvidia" / "version").write_text(
        f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {DRIVER_580}  Release Build\n"
    )
    (root / "dev").mkdir()
    project = torch_project(tmp_path, machine_index, "auto")
    env = {
        **no_gpu(tmp_path),
        **VERIFY_ON,
        "POETRY_TORCH_CUDA_SYSTEM_ROOT": str(root),
    }

    result = project.run("install", check=False, env_extra=env)

    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    verify = project.run("torch-cuda", "verify", check=False, env_extra=env)
    assert verify.returncode == 0, describe(verify)
    assert "not reachable from here" in verify.stdout


@pytest.mark.parametrize(
    ("stdout", "code", "stderr"),
    [("", 9, NVIDIA_SMI_FAILED), ("garbage, not, csv\n", 0, "")],
    ids=["driver-unreachable", "garbage"],
)
def test_a_failing_nvidia_smi_keeps_the_build_and_warns(
    tmp_path: Path, machine_index: IndexServer, stdout: str, code: int, stderr: str
) -> None:
    project = torch_project(tmp_path, machine_index, "auto")
    good = {**gpu(tmp_path, RTX_4090, driver=DRIVER_580), **gpus_variable(RTX_4090)}
    project.run("install", env_extra=good)
    assert project.installed()["torch"] == "2.14.1+cu130"
    broken = {
        **machine_env(
            tmp_path / "broken",
            nvidia_smi=stdout,
            nvidia_smi_exit=code,
            nvidia_smi_stderr=stderr,
        ),
        **VERIFY_ON,
    }

    result = project.run("torch-cuda", "sync", "--force", check=False, env_extra=broken)

    assert project.installed()["torch"] == "2.14.1+cu130", describe(result)
    assert "nvidia-smi" in result.stderr and "keep" in result.stderr, describe(result)
    assert len(stub_calls(tmp_path / "broken" / "nvidia-smi")) == 1
    status = project.run(
        "torch-cuda", "status", "--check", check=False, env_extra=broken
    )
    assert status.returncode == 1, describe(status)
    assert "Everything is in line" not in status.stdout


def test_verify_compares_the_build_with_the_variant(
    tmp_path: Path, machine_index: IndexServer
) -> None:
    project = torch_project(tmp_path, machine_index, "cu128")
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)  # verification off: a start only
    assert project.installed()["torch"] == "2.14.1+cu128"

    result = project.run("torch-cuda", "verify", check=False, env_extra=env)

    assert result.returncode == 1, describe(result)
    assert "a CUDA 13.0 build" in result.stdout + result.stderr


def test_verify_fails_without_torch_and_creates_no_environment(
    tmp_path: Path, machine_index: IndexServer
) -> None:
    project = torch_project(tmp_path, machine_index, "cpu")
    project.run("lock")
    shutil.rmtree(project.venv, ignore_errors=True)  # Poetry's lock makes one
    env = no_gpu(tmp_path)

    result = project.run("torch-cuda", "verify", check=False, env_extra=env)

    assert result.returncode == 1, describe(result)
    assert "torch is not installed" in result.stdout + result.stderr
    assert not project.venv.exists()
    data = project.run("torch-cuda", "verify", "--json", check=False, env_extra=env)
    assert json.loads(data.stdout)["ok"] is False


def test_a_verification_timeout_keeps_the_build_a_hang_at_exit_is_a_note(
    tmp_path: Path, machine_index: IndexServer
) -> None:
    project = Project.create(
        tmp_path,
        machine_index,
        {"torch": "2.14.1"},
        'variant = "cpu"\npackages = ["torch"]\nverify-timeout = 2',
    )
    env = {**gpu(tmp_path, RTX_4090, driver=DRIVER_580), **gpus_variable(RTX_4090)}
    project.run("install", env_extra=env)
    slow = {**env, **VERIFY_ON, "FAKE_TORCH_IMPORT_SECONDS": "5"}

    result = project.run("torch-cuda", "switch", "cu130", check=False, env_extra=slow)

    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert 'variant = "cu130"' in project.pyproject_text()
    assert "could not check" in result.stdout + result.stderr
    # A report, then a hang at exit (a library's thread): judged, the hang a note.
    hangs = {**env, **VERIFY_ON, "FAKE_TORCH_HANG_AT_EXIT": "1"}
    result = project.run("torch-cuda", "verify", check=False, env_extra=hangs)
    assert result.returncode == 0, describe(result)
    assert "cu130 build verified in" in result.stdout
    hung = "note the check hung at exit after its report; verify-timeout (2 s) stopped"
    assert hung in result.stdout


def test_variants_with_the_index_unreachable_says_it_once(
    tmp_path: Path, machine_index: IndexServer
) -> None:
    project = torch_project(tmp_path, machine_index, "cpu")
    project.run("lock")
    env = {
        **no_gpu(tmp_path),
        "POETRY_TORCH_CUDA_INDEX_URL": "http://127.0.0.1:9/whl/{variant}",
    }

    # Wording only: in-process (the lock above is Poetry's own, a real run).
    result = run_inprocess(project, "torch-cuda", "variants", env_extra=env)

    text = result.stdout + result.stderr
    lines = [line for line in text.splitlines() if "127.0.0.1:9" in line]
    assert len(lines) == 1, result
    assert "missing" not in text or "runs here" in text


def test_detect_sets_memory_of_another_driver_apart(
    tmp_path: Path, machine_index: IndexServer
) -> None:
    project = torch_project(tmp_path, machine_index, "cpu")
    env = no_gpu(tmp_path)
    project.run("install", env_extra=env)
    machine = gpu(tmp_path, RTX_4090, driver=DRIVER_580)
    old = "NVIDIA driver 570.86.10; GPU 0 (NVIDIA GeForce RTX 4090, sm_89)"
    entry = {
        "variant": "cu130",
        "torch": "2.14.1",
        "reason": "x",
        "when": "t",
        "machine": old,
    }
    # and cu130 of torch 2.13.0 failed here: the lock's 2.14.1 is another build
    here = {
        **entry,
        "torch": "2.13.0+cu130",
        "machine": old.replace("570.86.10", DRIVER_580),
    }
    (project.venv / ".poetry-torch-cuda-memory.json").write_text(
        json.dumps({"schema": 1, "failures": [entry, here]})
    )

    result = run_inprocess(project, "torch-cuda", "detect", env_extra=machine)

    assert result.returncode == 0, result
    assert "auto picks cu130" in result.stdout, result
    assert "Remembered for this environment" not in result.stdout
    assert "another driver, GPU set or torch" in result.stdout

"""Issue 21 #8, #9, #11 (status part), #18 (status, detect) and issue 24 #9 (unknown key).

Where the point is wording or logic the command runs in-process
(:func:`run_inprocess`); where Poetry and pip must really install, the real
``poetry`` runs in a subprocess.
"""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING

import pytest

from tests.support.gpus import RTX_4090
from tests.support.gpus import gpu
from tests.support.gpus import machine_env
from tests.support.gpus import no_gpu
from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer

CU129 = 'variant = "cu129"'
DEPS = {"needs-torch": "*", "torchvision": "*"}
DISABLED = {"POETRY_TORCH_CUDA_DISABLE": "1"}
COMMANDS = [
    ("torch-cuda", "switch", "cu130"),
    ("torch-cuda", "sync"),
    ("torch-cuda", "status", "--check"),
    ("torch-cuda", "detect"),
    ("torch-cuda", "variants"),
    ("torch-cuda", "verify"),
    ("torch-cuda", "lock", "--check"),
    ("torch-cuda", "export", "--variant", "cu129"),
]


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("args", COMMANDS, ids=[c[1] for c in COMMANDS])
def test_every_command_says_once_that_the_plugin_is_disabled(
    project_factory: ProjectFactory, args: tuple[str, ...]
) -> None:
    project = project_factory(DEPS, CU129)
    result = run_inprocess(project, *args, env_extra=DISABLED)
    assert result.returncode == 1, result
    assert error_lines(result.stderr) == [
        (
            "poetry-torch-cuda is disabled by POETRY_TORCH_CUDA_DISABLE=1; unset it "
            "to use `poetry torch-cuda`."
        )
    ]
    assert result.stdout == ""
    assert not project.venv.exists()


def test_an_unknown_key_names_the_close_one(project_factory: ProjectFactory) -> None:
    project = project_factory(
        DEPS, 'variant = "cu129"\nindex_url = "https://example.org/{variant}"'
    )
    result = run_inprocess(project, "torch-cuda", "status")
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        (
            "[tool.poetry-torch-cuda] has unknown key 'index_url': did you mean "
            "'index-url'? Allowed keys are variant, index-url, source, packages, "
            "allow-insecure-http, targets, verify, verify-timeout, lock-variants, "
            "download-concurrency, keep-previous-build."
        )
    ]


def test_status_without_a_venv_names_no_interpreter_prefix(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    project = project_factory(DEPS, CU129)
    assert run_inprocess(project, "lock").returncode == 0
    shutil.rmtree(project.venv)  # `poetry lock` makes one
    result = run_inprocess(project, "torch-cuda", "status", env_extra=no_gpu(tmp_path))
    assert result.returncode == 0, result
    assert "Environment  not created yet (`poetry install` creates it)" in result.stdout
    assert sys.prefix not in result.stdout
    assert not project.venv.exists()


def test_detect_finds_a_target_case_insensitively(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    target = (
        '[[tool.poetry-torch-cuda.targets]]\nname = "lab"\ndriver = "580.65.06"\n'
        'gpus = ["9.0"]'
    )
    project = project_factory(DEPS, f"{CU129}\n{target}")
    assert run_inprocess(project, "lock").returncode == 0
    result = run_inprocess(
        project, "torch-cuda", "detect", "--target", "LAB", env_extra=no_gpu(tmp_path)
    )
    assert result.returncode == 0, result
    assert "on target lab (driver 580.65.06, sm_90, linux-x86_64)" in result.stdout


def test_detect_says_an_override_of_auto_outlasts_switch_auto(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    project = project_factory(DEPS, 'variant = "auto"')
    assert run_inprocess(project, "lock").returncode == 0
    env = {**gpu(tmp_path, RTX_4090), "POETRY_TORCH_CUDA_VARIANT": "cpu"}
    result = run_inprocess(project, "torch-cuda", "detect", env_extra=env)
    assert result.returncode == 0, result
    assert "auto picks cu129 on this machine" in result.stdout, result
    # pyproject.toml says auto already: `switch auto` would leave cpu winning.
    assert "switch auto` would follow the machine" not in result.stdout, result
    assert (
        "Note: this project configures cpu (POETRY_TORCH_CUDA_VARIANT); unset it"
        in result.stdout
    ), result


def test_a_slow_index_gets_the_time_poetry_requests_timeout_gives(
    project_factory: ProjectFactory, index: IndexServer, tmp_path: Path
) -> None:
    """A page slower than the one 4 s attempt fails, and the advice that failure
    gives works: with POETRY_REQUESTS_TIMEOUT set, the attempt waits that long."""
    project = project_factory(DEPS, CU129)
    assert run_inprocess(project, "lock").returncode == 0
    index.delay_seconds["/whl/cu129/torch/"] = 5
    args = ("torch-cuda", "variants", "cu129", "--refresh")
    slow = run_inprocess(project, *args, env_extra=no_gpu(tmp_path))
    assert "did not answer within 4 s" in slow.stdout, slow
    given = {**no_gpu(tmp_path), "POETRY_REQUESTS_TIMEOUT": "15"}
    patient = run_inprocess(project, *args, env_extra=given)
    assert patient.returncode == 0, patient
    assert "did not answer" not in patient.stdout + patient.stderr, patient
    assert "cu129" in patient.stdout and "offered" in patient.stdout, patient


def test_status_without_a_lock_says_the_gpu_cannot_be_checked(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """A failing nvidia-smi is the machine's state, not the lock's: status says so
    before ``poetry lock`` too."""
    project = project_factory(DEPS, CU129)
    broken = machine_env(
        tmp_path / "machine",
        nvidia_smi="",
        nvidia_smi_exit=9,
        nvidia_smi_stderr="NVIDIA-SMI has failed because it couldn't communicate "
        "with the NVIDIA driver.",
    )
    result = run_inprocess(project, "torch-cuda", "status", env_extra=broken)
    assert result.returncode == 0, result
    assert "the GPU cannot be checked: " in result.stdout + result.stderr, result
    assert "poetry.lock does not exist" in result.stdout + result.stderr, result
    # nvidia-smi is there and failed: the driver is to mend, not absent
    assert "no NVIDIA driver found" not in result.stdout, result


def test_an_auto_lock_no_candidate_can_serve_names_the_missing_build(
    project_factory: ProjectFactory, index: IndexServer, tmp_path: Path
) -> None:
    """Every candidate's index answered without torch: `lock` said "No configured
    package is locked in poetry.lock." though poetry.lock locks torch."""
    project = project_factory(DEPS, 'variant = "auto"')
    off = {"POETRY_TORCH_CUDA_DISABLE": "1"}  # Poetry's lock alone
    assert run_inprocess(project, "lock", env_extra=off).returncode == 0
    index.fail_paths["/whl/"] = 404  # every variant's index: no page for torch
    result = run_inprocess(project, "torch-cuda", "lock", env_extra=no_gpu(tmp_path))
    assert result.returncode == 1, result
    assert "No configured package is locked" not in result.stderr, result
    assert "cannot lock torch" in result.stderr, result


def test_status_check_needs_no_torch_cuda_lock_where_an_install_takes_nothing_from_it(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """poetry.lock locks no configured package: an install takes nothing from
    torch-cuda.lock (nor locks it), so its absence fails lock --check (the commit's
    guard) but not status --check, which speaks for this environment's install."""
    project = project_factory(
        {"filelock": "*"}, 'variant = "cu130"\npackages = ["torch"]'
    )
    assert run_inprocess(project, "lock").returncode == 0
    (project.path / "torch-cuda.lock").unlink()
    check = run_inprocess(project, "torch-cuda", "lock", "--check")
    assert check.returncode == 1, check
    status = run_inprocess(
        project, "torch-cuda", "status", "--check", env_extra=no_gpu(tmp_path)
    )
    assert status.returncode == 0, status
    assert "torch-cuda.lock" not in status.stdout, status


def test_detect_and_variants_say_a_lock_without_torch_locks_no_torch(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """poetry.lock exists and locks no torch: detect said "no lock yet" and
    variants "torch (no lock)"; "not locked" is true with and without a lock.
    detect's pick ended "not asked; assuming it has it": it says why and the fix."""
    project = project_factory({"filelock": "*"}, CU129)
    assert run_inprocess(project, "lock").returncode == 0
    env = gpu(tmp_path, RTX_4090)
    detect = run_inprocess(project, "torch-cuda", "detect", env_extra=env)
    assert detect.returncode == 0, detect
    assert detect.stdout.splitlines()[0] == (
        "auto picks cu129 on this machine (torch not locked)"
    ), detect
    assert detect.stdout.splitlines()[-1].endswith(
        "which covers every GPU; torch is not locked (`poetry add torch`), "
        "so the index is not asked; assuming it has it"
    ), detect
    listed = run_inprocess(project, "torch-cuda", "variants", "cu129", env_extra=env)
    assert listed.returncode == 0, listed
    header = "Variants for torch (not locked):"
    assert listed.stdout.splitlines()[0] == header, listed

"""Declared targets end to end: ``status --check`` guards machines this is not.

Real Poetry, pip and the local index; this machine is a stub nvidia-smi
(RTX 4090, driver 575.51.03) so that its own part of the report is in line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.support.gpus import RTX_4090
from tests.support.gpus import machine_env
from tests.support.gpus import smi_line
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import Project
from tests.support.poetry_project import render_pyproject


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

DEPS = {"torch": "2.14.1"}
# R570 H100s: below cu129's own driver (575.51.03), but its sm_90 SASS runs on
# the CUDA 12.x minor-version-compatibility floor (525.60.13).
TRAINING = """
[[tool.poetry-torch-cuda.targets]]
name = "training"
driver = "570.124.06"
gpus = ["9.0"]
"""
# GTX 1080 Ti workstations: cu129 builds sm_70 and newer only.
LAB = """
[[tool.poetry-torch-cuda.targets]]
name = "lab"
driver = "550.54.14"
gpus = ["6.1"]
platform = "linux-x86_64"
"""


@pytest.fixture(scope="module")
def fleet(
    index_server: IndexServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Project, dict[str, str]]:
    tmp_path = tmp_path_factory.mktemp("fleet")
    project = Project.create(
        tmp_path, index_server, DEPS, 'variant = "cu129"\n' + TRAINING
    )
    env = machine_env(tmp_path / "machine", nvidia_smi=smi_line("575.51.03", *RTX_4090))
    project.run("install", env_extra=env)
    return project, env


def test_status_check_passes_when_every_target_runs_the_lock(
    fleet: tuple[Project, dict[str, str]],
) -> None:
    project, env = fleet
    result = run_inprocess(
        project, "torch-cuda", "status", "--check", "--json", env_extra=env
    )
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data["ok"] is True
    (target,) = data["targets"]
    reasons = target.pop("reasons")
    assert target == {
        "name": "training",
        "driver": "570.124.06",
        "gpus": ["9.0"],
        "platform": "linux-x86_64",
        "variant": "cu129",
        "ok": True,
        "rule": "minor-version compatibility",
    }
    assert reasons[:2] == [
        (
            "driver 570.124.06 >= 525.60.13, the CUDA 12.x "
            "minor-version-compatibility floor"
        ),
        (
            "SASS in sm_70..sm_120+PTX covers every GPU, so nothing is "
            "JIT-compiled (features that need a CUDA 12.9 driver are unavailable)"
        ),
    ]
    status = run_inprocess(project, "torch-cuda", "status", env_extra=env)
    assert status.returncode == 0, status
    text = status.stdout
    assert (
        "Targets      training (driver 570.124.06, sm_90, linux-x86_64): cu129 runs "
        "there (minor-version compatibility)"
    ) in text
    assert "Everything is in line." in text


def test_status_check_fails_for_a_target_the_variant_cannot_run(
    fleet: tuple[Project, dict[str, str]], tmp_path: Path
) -> None:
    project, env = fleet
    before = project.pyproject.read_text()
    try:
        project.write_pyproject(
            render_pyproject(
                project.index, DEPS, torch_cuda='variant = "cu129"\n' + TRAINING + LAB
            )
        )
        result = run_inprocess(
            project, "torch-cuda", "status", "--check", env_extra=env
        )
        assert result.returncode == 1
        assert (
            "Warning: target lab (driver 550.54.14, sm_61, linux-x86_64): cu129 cannot "
            "run there: not built for sm_61 (declared GPU 0): builds sm_70..sm_120+PTX; "
            "`poetry torch-cuda detect --target lab` shows which variant runs there"
        ) in result.stdout
        assert "Everything is in line." not in result.stdout
        detect = run_inprocess(
            project, "torch-cuda", "detect", "--target", "lab", env_extra=env
        )
        assert detect.returncode == 0, detect
        assert detect.stdout.splitlines()[0] == (
            "auto picks cpu on target lab (driver 550.54.14, sm_61, linux-x86_64) "
            "for torch 2.14.1"
        )
        assert "cu126: skipped, " in detect.stdout  # the index's cu126 lacks 2.14.1
        assert detect.stdout.splitlines()[-1].startswith(
            "Note: torch 2.14 publishes cu132, cu130, cu126, rocm7.14, rocm7.2"
        )
        missing = project.run(
            "torch-cuda", "detect", "--target", "nope", check=False, env_extra=env
        )
        assert missing.returncode == 1
        assert "no target named 'nope'" in missing.stderr
        assert "declared: training, lab" in missing.stderr
    finally:
        project.write_pyproject(before)


def test_lock_shows_the_variant_and_every_target(
    fleet: tuple[Project, dict[str, str]],
) -> None:
    project, env = fleet
    before = project.pyproject.read_text()
    try:
        result = project.run("lock", env_extra=env)
        assert (
            "torch-cuda: cu129 has torch 2.14.1; needs driver >= 525.60.13 (CUDA 12.x "
            "minor-version compatibility) or >= 575.51.03 (full CUDA 12.9 support); "
            "GPUs sm_70..sm_120+PTX"
        ) in result.stdout
        assert (
            "torch-cuda: target training (driver 570.124.06, sm_90, linux-x86_64): "
            "cu129 runs there (minor-version compatibility)"
        ) in result.stdout
        assert "torch-cuda" not in result.stderr
        project.write_pyproject(
            render_pyproject(
                project.index, DEPS, torch_cuda='variant = "cu129"\n' + TRAINING + LAB
            )
        )
        result = project.run("lock", env_extra=env)  # a view: the lock still succeeds
        assert (
            "torch-cuda: target lab (driver 550.54.14, sm_61, linux-x86_64): cu129 "
            "cannot run there: not built for sm_61"
        ) in result.stderr
    finally:
        project.write_pyproject(before)

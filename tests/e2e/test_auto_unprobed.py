"""``auto`` on a machine it cannot probe (nvidia-smi fails): one decision for the
install hook, ``verify``'s fix and ``detect``, and it never replaces a build on a
guess — neither after a failed verification nor when the installed build is
PyPI's default one (no ``+variant`` label).

Real Poetry, pip and venvs against a local index whose torch builds see GPUs as
real builds do (tests/support/fake_torch.py); the failing nvidia-smi is a stub
first on PATH, the driver's /proc file lives under a test root.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.support.fake_torch import fake_torch
from tests.support.fake_torch import gpus_variable
from tests.support.fixtures import served_gpu_builds
from tests.support.fixtures import torch_project
from tests.support.gpus import ARCHS_CU12
from tests.support.gpus import ARCHS_CU13
from tests.support.gpus import DRIVER_580
from tests.support.gpus import NVIDIA_SMI_FAILED
from tests.support.gpus import RTX_4090
from tests.support.gpus import gpu
from tests.support.gpus import machine_env
from tests.support.gpus import no_real_driver
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import describe


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project

pytestmark = [pytest.mark.e2e, no_real_driver]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """torch 2.14.1 on cpu, cu128 and cu130 (no cu129), builds that see GPUs; PyPI's
    own torch 2.14.1 (no label) requires CUDA 13.0's toolkit."""
    builds = {
        "cpu": fake_torch("2.14.1+cpu"),
        "cu130": fake_torch("2.14.1+cu130", cuda="13.0", archs=ARCHS_CU13),
        "cu128": fake_torch("2.14.1+cu128", cuda="12.8", archs=ARCHS_CU12),
    }
    yield from served_gpu_builds(tmp_path_factory.mktemp("unprobed"), builds)


def broken_smi(tmp_path: Path, *, proc_driver: bool) -> dict[str, str | None]:
    """A machine whose nvidia-smi cannot reach the driver; with ``proc_driver`` the
    kernel module's /proc file names :data:`DRIVER_580` and /dev/nvidia0 exists."""
    env: dict[str, str | None] = {
        **machine_env(
            tmp_path / "broken",
            nvidia_smi="",
            nvidia_smi_exit=9,
            nvidia_smi_stderr=NVIDIA_SMI_FAILED,
        ),
    }
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    if proc_driver:
        version = root / "proc" / "driver" / "nvidia" / "version"
        version.parent.mkdir(parents=True)
        version.write_text(
            f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {DRIVER_580}  Release Build\n"
        )
        (root / "dev" / "nvidia0").write_text("")
    env["POETRY_TORCH_CUDA_SYSTEM_ROOT"] = str(root)
    return env


def fix_lines(text: str) -> list[str]:
    """The ``fix:`` lines of a verification's findings."""
    return [
        line for line in text.splitlines() if line.strip().lower().startswith("fix:")
    ]


def installed_cu130(tmp_path: Path, index: IndexServer) -> Project:
    """An ``auto`` project that installed cu130 while nvidia-smi still answered."""
    project = torch_project(tmp_path, index, "auto")
    good = {**gpu(tmp_path, RTX_4090, driver=DRIVER_580), **gpus_variable(RTX_4090)}
    project.run("install", env_extra=good)  # verification off: a start only
    assert project.installed()["torch"] == "2.14.1+cu130"
    return project


def test_verify_names_no_guessed_build_when_nvidia_smi_fails(
    tmp_path: Path, index: IndexServer
) -> None:
    project = installed_cu130(tmp_path, index)
    env = broken_smi(tmp_path, proc_driver=True)  # torch sees no GPU

    result = run_inprocess(project, "torch-cuda", "verify", env_extra=env)

    assert result.returncode == 1, result
    fixes = fix_lines(result.stdout + result.stderr)
    assert any("check that `nvidia-smi` works" in f for f in fixes), result
    # The install hook would not move to cu128 here: verify does not suggest it.
    assert not any("switch" in f for f in fixes), result
    assert any("`poetry torch-cuda detect`" in f for f in fixes), result
    detect = run_inprocess(project, "torch-cuda", "detect", "--json", env_extra=env)
    assert json.loads(detect.stdout)["variant"] == "cu130", detect
    for command in ("detect", "status"):  # said once, not again as a note
        text = run_inprocess(project, "torch-cuda", command, env_extra=env).stdout
        assert text.count("auto keeps the installed cu130 build") == 1, text


def test_a_failed_verification_does_not_move_on_when_nvidia_smi_fails(
    tmp_path: Path, index: IndexServer
) -> None:
    project = installed_cu130(tmp_path, index)
    env = {**broken_smi(tmp_path, proc_driver=True), **VERIFY_ON}

    result = project.run("torch-cuda", "sync", "--force", check=False, env_extra=env)

    assert result.returncode == 1, describe(result)
    assert "trying" not in result.stderr, describe(result)
    assert "cannot use the GPU" in result.stderr, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"


def test_pypis_default_cuda_build_is_not_replaced_by_cpu_when_nvidia_smi_fails(
    tmp_path: Path, index: IndexServer
) -> None:
    project = torch_project(tmp_path, index, "auto")
    project.run("install", env_extra={"POETRY_TORCH_CUDA_DISABLE": "1"})
    assert project.installed()["torch"] == "2.14.1"  # PyPI's own: CUDA 13.0
    env = broken_smi(tmp_path, proc_driver=False)

    detect = run_inprocess(project, "torch-cuda", "detect", "--json", env_extra=env)

    assert detect.returncode == 0, detect
    data = json.loads(detect.stdout)
    assert data["variant"] == "cu130", detect
    assert "keeps" in data["steps"][0], detect

    result = project.run("install", check=False, env_extra=env)

    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130", describe(result)
    assert "keeps" in result.stderr, describe(result)


def test_every_command_names_the_same_pick_when_nvidia_smi_fails(
    tmp_path: Path, index: IndexServer
) -> None:
    project = installed_cu130(tmp_path, index)
    env = broken_smi(tmp_path, proc_driver=False)

    def json_of(command: str) -> dict[str, Any]:
        result = run_inprocess(project, "torch-cuda", command, "--json", env_extra=env)
        return dict(json.loads(result.stdout))

    picks = {
        "detect": json_of("detect")["variant"],
        "variants": json_of("variants")["auto"],
        "status": json_of("status")["variant"]["resolved"],
    }

    assert picks == dict.fromkeys(picks, "cu130")

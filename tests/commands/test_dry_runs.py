"""Reading commands and dry runs create no virtualenv, even where the project has
none yet (in-process: Poetry creates a venv the same way in or out of a
subprocess; moved from tests/e2e/test_env_follows.py)."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING
from typing import Any

from tests.support.gpus import GTX_1080
from tests.support.gpus import NVIDIA_SMI_FAILED
from tests.support.gpus import machine_env
from tests.support.gpus import smi_line
from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.support.fixtures import ProjectFactory

DEPS = {"needs-torch": "*", "torchvision": "*"}


def test_status_and_dry_runs_create_no_virtualenv(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS, 'variant = "cu129"')
    locked = run_inprocess(project, "lock")
    assert locked.returncode == 0, locked
    shutil.rmtree(project.venv, ignore_errors=True)  # `poetry lock` may make one
    for args in (
        ("torch-cuda", "status"),
        ("torch-cuda", "sync", "--dry-run"),
        ("torch-cuda", "switch", "cu130", "--dry-run"),
        ("torch-cuda", "detect"),
    ):
        result = run_inprocess(project, *args)
        assert result.returncode == 0, (args, result)
    assert not project.venv.exists()
    project.write_pyproject(
        project.pyproject_text().replace('variant = "cu129"', 'variant = "cu12x"')
    )
    bad = run_inprocess(project, "torch-cuda", "status")
    assert bad.returncode == 1 and "cu12x" in bad.stderr
    assert not project.venv.exists()


def test_switch_in_a_project_without_the_table_plans_the_default_index(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS)
    assert run_inprocess(project, "lock").returncode == 0
    args = ("torch-cuda", "switch", "cu130", "--dry-run", "--only", "main")
    result = run_inprocess(project, *args)
    assert result.returncode == 0, result
    assert "would switch to cu130" in result.stdout
    assert "download.pytorch.org/whl/cu130" in result.stdout
    assert 'would set variant = "cu130" in pyproject.toml' in result.stdout


def test_a_dry_run_switch_to_the_recorded_variant_would_set_nothing(
    project_factory: ProjectFactory,
) -> None:
    """`switch cu129 --dry-run` where pyproject.toml says cu129 printed `would set
    variant = "cu129" in pyproject.toml`, a write the switch does not make."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    before = project.pyproject_text()
    result = run_inprocess(project, "torch-cuda", "switch", "cu129", "--dry-run")
    assert result.returncode == 0, result
    assert "would switch to cu129" in result.stdout, result
    assert "would set variant" not in result.stdout, result
    real = run_inprocess(project, "torch-cuda", "switch", "cu129")
    assert real.returncode == 0, real
    assert "pyproject.toml now says" not in real.stdout, real
    assert project.pyproject_text() == before


def test_a_dry_run_switch_warns_of_the_variable_that_outlasts_it(
    project_factory: ProjectFactory,
) -> None:
    """With POETRY_TORCH_CUDA_VARIANT set, `switch` warns that it keeps winning on
    every run; its dry run said nothing of it."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    override = {"POETRY_TORCH_CUDA_VARIANT": "cu128"}
    args = ("torch-cuda", "switch", "cu130", "--dry-run")
    result = run_inprocess(project, *args, env_extra=override)
    assert result.returncode == 0, result
    assert (
        "torch-cuda: POETRY_TORCH_CUDA_VARIANT=cu128 is set and overrides "
        "pyproject.toml on every run; unset it to use cu130."
    ) in result.stderr, result


def test_why_nothing_moved_resolves_each_selection_of_the_lock_once(
    project_factory: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from poetry_torch_cuda.project import locked
    from poetry_torch_cuda.project import selection

    project = project_factory({"filelock": "*"}, 'variant = "cu129"')
    project.write_pyproject(
        project.pyproject_text() + "\n[tool.poetry.group.gpu]\noptional = true\n"
        '[tool.poetry.group.gpu.dependencies]\ntorch = "*"\ntorchvision = "*"\n'
    )
    assert run_inprocess(project, "lock").returncode == 0
    asked: list[tuple[frozenset[str], frozenset[str]]] = []
    resolve = locked.resolved_versions

    def counted(poetry: Any, marker_env: Any, groups: Any, extras: Any = ()) -> Any:
        asked.append((frozenset(map(str, groups)), frozenset(map(str, extras))))
        return resolve(poetry, marker_env, groups, extras)

    monkeypatch.setattr(locked, "resolved_versions", counted)
    monkeypatch.setattr(selection, "resolved_versions", counted)
    result = run_inprocess(project, "torch-cuda", "sync", "--dry-run")
    assert result.returncode == 0, result
    assert (
        "nothing moved: no configured package is installed (torch: in the lock, "
        "only in group gpu, not selected (--with gpu); torchaudio: not in the lock; "
        "torchvision: in the lock, "
        "only in group gpu, not selected (--with gpu)); to install the others here, "
        "pass the options that select them" in result.stdout
    ), result
    assert sorted(asked) == sorted(set(asked)), (
        asked
    )  # poetry.lock's Transaction is slow


def test_switch_auto_says_why_auto_settles_for_cpu_as_sync_does(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    project = project_factory(DEPS, 'variant = "cpu"')
    assert run_inprocess(project, "lock").returncode == 0
    old = machine_env(tmp_path / "old", nvidia_smi=smi_line("418.39", *GTX_1080))
    failing = machine_env(
        tmp_path / "failing", nvidia_smi=NVIDIA_SMI_FAILED, nvidia_smi_exit=9
    )
    for machine, said in (
        (old, "auto installs the CPU build next to NVIDIA GeForce GTX 1080"),
        (failing, "nvidia-smi failed: NVIDIA-SMI has failed"),
    ):
        auto = {**machine, "POETRY_TORCH_CUDA_VARIANT": "auto"}
        for args, env in ((("switch", "auto"), machine), (("sync",), auto)):
            result = run_inprocess(
                project, "torch-cuda", *args, "--dry-run", env_extra=env
            )
            assert result.returncode == 0, result
            assert said in result.stderr, (args, result)


def test_every_move_warns_a_jetson_that_pytorchs_cuda_builds_do_not_run_there(
    project_factory: ProjectFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Jetson Orin (aarch64, L4T R36) with cu129 from download.pytorch.org: the
    install hook warned that those builds do not run there, `switch` and `sync`
    installed them without a word."""
    from poetry.utils.env.base_env import Env

    from poetry_torch_cuda.machine.probe import ROOT_VARIABLE

    root = tmp_path / "orin"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    arm = property(lambda env: {**env.get_marker_env(), "platform_machine": "aarch64"})
    monkeypatch.setattr(Env, "marker_env", arm)
    project = project_factory({"torch": "*"}, 'variant = "cu129"')
    off = {"POETRY_TORCH_CUDA_DISABLE": "1"}
    assert run_inprocess(project, "lock", env_extra=off).returncode == 0
    local = project.pyproject_text()
    project.write_pyproject(  # PyTorch's own index: a custom one is trusted
        re.sub(r'index-url = "[^"]*"\n', "", local)
    )
    jetson = {ROOT_VARIABLE: str(root)}
    for args in (
        ("install", "--dry-run"),
        ("torch-cuda", "sync", "--dry-run"),
        ("torch-cuda", "switch", "cu128", "--dry-run"),
    ):
        result = run_inprocess(project, *args, env_extra=jetson)
        assert result.returncode == 0, (args, result)
        assert "cu12" in result.stderr and "on NVIDIA Jetson" in result.stderr, args
        assert "do not run on Jetson L4T before R38" in result.stderr, args
    project.write_pyproject(local)
    trusted = run_inprocess(
        project, "torch-cuda", "sync", "--dry-run", env_extra=jetson
    )
    assert "Jetson" not in trusted.stderr, trusted

"""Issue 21 #15 (fixes name only what auto's decision offers), #7 (a hanging
nvidia-smi) and #5 (auto's move-on after a failure on mixed GPUs), end to end.

Real Poetry, pip and venvs against a local index whose torch builds see GPUs as
real builds do (tests/support/fake_torch.py); GPUs are stub ``nvidia-smi``
executables first on PATH. The index lacks cu129 (which the tables would pick
for a B200 after cu130) and its cu130 build has no kernels for sm_100, as a
build that fails "no kernel image" on a B200 does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from poetry_torch_cuda.environment.envlock import is_free
from tests.support.client import authenticators_made
from tests.support.fake_torch import fake_torch
from tests.support.fake_torch import gpus_variable
from tests.support.fixtures import served_gpu_builds
from tests.support.fixtures import torch_project
from tests.support.gpus import B200
from tests.support.gpus import DRIVER_580
from tests.support.gpus import RTX_4090
from tests.support.gpus import V100
from tests.support.gpus import gpu
from tests.support.gpus import hanging_nvidia_smi
from tests.support.gpus import no_gpu
from tests.support.gpus import no_real_driver
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import describe
from tests.support.poetry_project import stub_calls
from tests.support.processes import finish
from tests.support.processes import running
from tests.support.processes import wait_for


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.index import IndexServer

pytestmark = [pytest.mark.e2e, no_real_driver]

#: cu130's arch list without sm_100: every CUDA operation on a B200 fails.
CU130_NO_SM100 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_120", "compute_120"]
CU128 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """torch 2.14.1 on cpu, cu128 and cu130 (no cu129), builds that see GPUs."""
    builds = {
        "cpu": fake_torch("2.14.1+cpu"),
        "cu130": fake_torch("2.14.1+cu130", cuda="13.0", archs=CU130_NO_SM100),
        "cu128": fake_torch("2.14.1+cu128", cuda="12.8", archs=CU128),
    }
    yield from served_gpu_builds(tmp_path_factory.mktemp("issue21-universe"), builds)


def fix_lines(text: str) -> list[str]:
    """The ``fix:`` lines of a verification's findings."""
    return [
        line for line in text.splitlines() if line.strip().lower().startswith("fix:")
    ]


def test_verify_asks_the_index_through_the_runs_one_client(
    tmp_path: Path, index: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify resolves auto and, the build failing, asks auto's next choice: both
    through the run's one index client (one authenticator, one keyring look-up)."""
    project = torch_project(tmp_path, index, "auto")
    machine = {**gpu(tmp_path, B200, driver=DRIVER_580), **gpus_variable(B200)}
    project.run("install", env_extra=machine)  # verification off: a start only
    made = authenticators_made(monkeypatch)
    result = run_inprocess(project, "torch-cuda", "verify", env_extra=machine)

    assert result.returncode == 1, result
    assert "`poetry torch-cuda sync` installs a build for it, cu128" in result.stdout
    assert len(made) == 1


def test_verify_suggests_autos_next_choice_the_index_offers(
    tmp_path: Path, index: IndexServer
) -> None:
    project = torch_project(tmp_path, index, "auto")
    machine = {**gpu(tmp_path, B200, driver=DRIVER_580), **gpus_variable(B200)}
    project.run("install", env_extra=machine)  # verification off: a start only
    assert project.installed()["torch"] == "2.14.1+cu130"

    result = project.run("torch-cuda", "verify", check=False, env_extra=machine)

    assert result.returncode == 1, describe(result)
    fixes = fix_lines(result.stdout + result.stderr)
    assert any(
        "`poetry torch-cuda sync` installs a build for it, cu128" in f for f in fixes
    )
    for wrong in ("cu129, auto's", "cu130, auto's"):  # the index lacks it; it failed
        assert not any(wrong in f for f in fixes), describe(result)

    # A build remembered as failing here is not suggested either.
    key = f"NVIDIA driver {DRIVER_580}; GPU 0 (NVIDIA B200, sm_100)"
    entry = {"variant": "cu128", "torch": "2.14.1", "reason": "x", "when": "t"}
    (project.venv / ".poetry-torch-cuda-memory.json").write_text(
        json.dumps({"schema": 1, "failures": [{**entry, "machine": key}]})
    )
    remembered = project.run("torch-cuda", "verify", check=False, env_extra=machine)

    assert remembered.returncode == 1, describe(remembered)
    fixes = fix_lines(remembered.stdout + remembered.stderr)
    assert fixes, describe(remembered)
    for wrong in ("cu128, auto's", "cu129, auto's", "cu130, auto's"):
        assert not any(wrong in f for f in fixes), describe(remembered)
    # Only cpu is left: said as such, never as "a build for" the B200.
    assert not any("installs a build for it" in f for f in fixes), describe(remembered)
    assert any(
        "`poetry torch-cuda sync` installs the CPU-only build" in f
        and "`poetry torch-cuda detect` says why" in f
        for f in fixes
    ), describe(remembered)


def test_a_failed_switch_or_install_names_no_variant_but_detect(
    tmp_path: Path, index: IndexServer
) -> None:
    project = torch_project(tmp_path, index, "cpu")
    machine = {**gpu(tmp_path, B200, driver=DRIVER_580), **gpus_variable(B200)}
    project.run("install", env_extra=machine)
    env = {**machine, **VERIFY_ON}

    switch = project.run("torch-cuda", "switch", "cu130", check=False, env_extra=env)

    assert switch.returncode == 1, describe(switch)
    assert project.installed()["torch"] == "2.14.1+cpu"
    fixes = fix_lines(switch.stderr)
    assert fixes, describe(switch)
    assert not any("switch" in f for f in fixes), describe(switch)
    assert any("`poetry torch-cuda detect`" in f for f in fixes), describe(switch)

    project.write_pyproject(
        project.pyproject_text().replace('variant = "cpu"', 'variant = "cu130"')
    )
    install = project.run("install", check=False, env_extra=env)

    assert install.returncode == 1, describe(install)
    fixes = fix_lines(install.stderr)
    assert fixes, describe(install)
    assert not any("switch" in f for f in fixes), describe(install)
    assert any("`poetry torch-cuda detect`" in f for f in fixes), describe(install)


def test_a_hanging_nvidia_smi_keeps_the_cuda_build_and_is_asked_once(
    tmp_path: Path, index: IndexServer
) -> None:
    project = torch_project(tmp_path, index, "auto")
    good = {**gpu(tmp_path, RTX_4090, driver=DRIVER_580), **gpus_variable(RTX_4090)}
    project.run("install", env_extra=good)
    assert project.installed()["torch"] == "2.14.1+cu130"
    hung = tmp_path / "hung"
    env = {**hanging_nvidia_smi(hung), **gpus_variable(RTX_4090), **VERIFY_ON}

    result = project.run("install", check=False, env_extra=env)

    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert "did not answer within" in result.stderr, describe(result)
    assert "keeps the installed cu130 build" in result.stderr, describe(result)
    assert len(stub_calls(hung / "nvidia-smi")) == 1

    status = project.run("torch-cuda", "status", "--check", check=False, env_extra=env)

    assert status.returncode == 1, describe(status)
    assert "Everything is in line" not in status.stdout
    assert "did not answer within" in status.stdout + status.stderr, describe(status)
    assert len(stub_calls(hung / "nvidia-smi")) == 2


@pytest.mark.parametrize(
    "args",
    [("install",), ("torch-cuda", "sync"), ("torch-cuda", "switch", "cu130")],
)
def test_a_pinned_install_asks_a_hanging_driver_without_holding_the_env(
    tmp_path: Path, index: IndexServer, args: tuple[str, ...]
) -> None:
    """A pinned CUDA install asks nvidia-smi before it installs (the driver warning):
    it did so holding the environment's lock, so every other run on the environment
    waited for the hanging driver too (switch: its own lock, held until
    pyproject.toml says the variant). A no-op install asks nothing."""
    project = torch_project(tmp_path, index, "cu128")
    project.run("install", env_extra=no_gpu(tmp_path))
    hung = tmp_path / "hung"
    env = hanging_nvidia_smi(hung, seconds=5)
    project.run("install", env_extra=env)  # cu128 installed: nothing to ask
    assert not (hung / "nvidia-smi.calls").exists()
    if "switch" not in args:
        text = project.pyproject_text().replace('"cu128"', '"cu130"')
        project.write_pyproject(text)
    with running(project, *args, env_extra=env) as process:
        wait_for((hung / "nvidia-smi.calls").exists, 120, "the machine probe")
        free = is_free(project.venv)
        result = finish(process, timeout=120)
    assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    assert free, "the env's lock was held while nvidia-smi hung"
    assert len(stub_calls(hung / "nvidia-smi")) == 1


def test_auto_moves_on_only_to_what_its_rule_admits(
    tmp_path: Path, index: IndexServer
) -> None:
    project = torch_project(tmp_path, index, "auto")
    env = {
        **gpu(tmp_path, V100, B200, driver=DRIVER_580),
        **gpus_variable(V100, B200),
        **VERIFY_ON,
    }

    result = project.run("install", check=False, env_extra=env)

    # cu130 serves the B200 only (no variant serves both), and its build fails
    # there; cu128 would leave the V100 out as well: no move to it.
    assert result.returncode == 1, describe(result)
    assert "trying" not in result.stderr, describe(result)
    assert project.installed()["torch"] == "2.14.1+cu130"
    failures = [line for line in result.stderr.splitlines() if "GPU" in line]
    assert any("NVIDIA B200" in line for line in failures), describe(result)
    assert not any(
        "cannot compute on GPU 0" in line or "not built for GPU 0" in line
        for line in failures
    ), describe(result)
    detect = run_inprocess(project, "torch-cuda", "detect", "--json", env_extra=env)
    assert detect.returncode == 0, detect
    remembered = json.loads(detect.stdout)["remembered"]
    assert [entry["variant"] for entry in remembered] == ["cu130"], detect.stdout

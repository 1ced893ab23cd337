"""Reading commands and dry runs create no virtualenv, even where the project has
none yet (in-process: Poetry creates a venv the same way in or out of a
subprocess; moved from tests/e2e/test_env_follows.py)."""

from __future__ import annotations

import re
import shutil
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.support.gpus import GTX_1080
from tests.support.gpus import NVIDIA_SMI_FAILED
from tests.support.gpus import RTX_4090
from tests.support.gpus import machine_env
from tests.support.gpus import smi_line
from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from pathlib import Path

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


@pytest.mark.parametrize(
    ("table", "refusal"),
    [
        (None, "This project has no [tool.poetry-torch-cuda] table"),
        ('variant = "cu12x"', "[tool.poetry-torch-cuda] variant = 'cu12x' is not a"),
    ],
)
def test_a_switch_from_an_unreadable_table_dry_runs_as_it_runs(
    project_factory: ProjectFactory, table: str | None, refusal: str
) -> None:
    """The switch locks cu130 first from the table pyproject.toml holds (torch-cuda.lock's
    inputs), before it writes the new one: without a table, or with a bad variant, it
    fails and writes nothing. Its dry run planned the default index and exited 0."""
    project = project_factory(DEPS, table and 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    if table:
        project.write_pyproject(project.pyproject_text().replace('"cu129"', '"cu12x"'))
    before = project.pyproject_text()
    for options in (("--only", "main"), ()):  # an install locks it, or the switch
        args = ("torch-cuda", "switch", "cu130", *options)
        dry = run_inprocess(project, *args, "--dry-run")
        real = run_inprocess(project, *args)
        for result in (dry, real):
            assert result.returncode == 1, result
            assert result.stderr.strip().startswith(refusal), result
        assert "would set" not in dry.stdout and "would install" not in dry.stdout
    assert project.pyproject_text() == before


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
        "nothing would move: no configured package is installed (torch: in the lock, "
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

    from poetry_torch_cuda.machine import resolution
    from poetry_torch_cuda.machine.probe import ROOT_VARIABLE

    root = tmp_path / "orin"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.0\n")
    arm = property(lambda env: {**env.get_marker_env(), "platform_machine": "aarch64"})
    monkeypatch.setattr(Env, "marker_env", arm)
    project = project_factory({"torch": "*"}, 'variant = "cu129"')
    off = {"POETRY_TORCH_CUDA_DISABLE": "1"}
    assert run_inprocess(project, "lock", env_extra=off).returncode == 0
    jetson = {ROOT_VARIABLE: str(root)}
    trusted = run_inprocess(  # a custom index is trusted
        project, "torch-cuda", "sync", "--dry-run", env_extra=jetson
    )
    assert trusted.returncode == 0 and "Jetson" not in trusted.stderr, trusted
    # The install's dry run locks cu129 first, offline: the test's index is PyTorch's.
    pytorchs = re.search(r'index-url = "([^"]*)"', project.pyproject_text())
    assert pytorchs is not None
    monkeypatch.setattr(resolution, "DEFAULT_INDEX_URL", pytorchs[1])
    for args in (
        ("install", "--dry-run"),
        ("torch-cuda", "sync", "--dry-run"),
        ("torch-cuda", "switch", "cu129", "--dry-run"),  # nothing to lock first
    ):
        result = run_inprocess(project, *args, env_extra=jetson)
        assert result.returncode == 0, (args, result)
        assert "cu12" in result.stderr and "on NVIDIA Jetson" in result.stderr, args
        assert "do not run on Jetson L4T before R38" in result.stderr, args


def test_a_dry_run_locks_first_as_the_move_would_or_refuses_alike(
    project_factory: ProjectFactory,
) -> None:
    """torch-cuda.lock has cu129 only. `switch cu130 --dry-run` did not say that the
    switch locks cu130 first, and `switch cu126 --dry-run` (cu126's index lacks the
    locked torch) exited 0 where the switch fails "cannot lock"; in an environment
    without torch its dry run said "nothing moved", as if done."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    files = [project.pyproject, project.lockfile, project.path / "torch-cuda.lock"]
    before = [path.read_bytes() for path in files]
    args = ("torch-cuda", "switch", "cu130", "--dry-run")
    installs = run_inprocess(project, *args, "--only", "main")  # torch: here, or not
    nothing = run_inprocess(project, *args)
    assert installs.returncode == nothing.returncode == 0, (installs, nothing)
    url = f"{project.index.url}/whl"
    assert installs.stdout == (
        "torch-cuda: would switch to cu130\n"
        "torch-cuda: would lock cu130 first (cu130 is not locked)\n"
        "torch-cuda: would install torch==2.14.1+cu130, torchvision==0.29.1+cu130 "
        f"from {url}/cu130\n"
        'torch-cuda: would set variant = "cu130" in pyproject.toml\n'
    ), installs
    assert nothing.stdout.startswith(
        "torch-cuda: would switch to cu130\n"
        "torch-cuda: would lock cu130 first (cu130 is not locked)\n"
        "torch-cuda: nothing would move: no configured package is installed (torch:"
    ), nothing
    for options in (("--only", "main"), ()):
        refused = run_inprocess(
            project, "torch-cuda", "switch", "cu126", "--dry-run", *options
        )
        assert refused.returncode == 1, refused
        assert refused.stderr.startswith(
            f"cannot lock torch==2.14.1+cu126 from {url}/cu126: the index has no build"
        ), refused
    synced = run_inprocess(project, "torch-cuda", "sync", "--dry-run", "--only", "main")
    assert synced.returncode == 0, synced
    assert synced.stdout == (
        "torch-cuda: would install torch==2.14.1+cu129, torchvision==0.29.1+cu129 "
        f"from {url}/cu129\n"
    ), synced
    assert [path.read_bytes() for path in files] == before


#: What a move to cu130 says first on driver 575 (CUDA 12.9 at most).
WARNING_575 = (
    "torch-cuda: cu130 needs driver >= 580 (CUDA 13.x minor-version compatibility) "
    "or >= 580.65.06 (full CUDA 13.0 support); driver 575.51.03 supports CUDA 12.9; "
    "update the driver, or `poetry torch-cuda detect` shows which variant runs here"
)


def _driver_575(tmp_path: Path) -> dict[str, str | None]:
    return machine_env(tmp_path / "old", nvidia_smi=smi_line("575.51.03", *RTX_4090))


def test_a_move_warns_before_it_installs_a_build_the_driver_does_not_run(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """Driver 575 runs CUDA 12.9 at most: with verification off, `switch cu130`
    installed the build without a word; `status` warned only afterwards."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    off = {**_driver_575(tmp_path), "POETRY_TORCH_CUDA_VERIFY": "0"}
    args = ("torch-cuda", "switch", "cu130", "--only", "main")
    dry = run_inprocess(project, *args, "--dry-run", env_extra=off)
    assert dry.returncode == 0, dry
    assert WARNING_575 in dry.stderr, dry
    result = run_inprocess(project, *args, env_extra=off)
    assert result.returncode == 0, result
    assert WARNING_575 in result.stderr, result
    assert "installed torch 2.14.1+cu130" in result.stdout, result
    back = run_inprocess(project, "torch-cuda", "switch", "cu129", env_extra=off)
    assert back.returncode == 0 and not back.stderr, back  # 575 runs cu129


def test_an_install_dry_run_locks_first_as_the_install_would_or_refuses_alike(
    project_factory: ProjectFactory,
) -> None:
    """torch-cuda.lock has cu129 only, pyproject.toml now says cu130: `poetry install`
    locks cu130 first, its dry run did not say so; with cu126 (whose index lacks the
    locked torch) the install fails "cannot lock", its dry run exited 0."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    url = f"{project.index.url}/whl"
    project.write_pyproject(project.pyproject_text().replace('"cu129"', '"cu130"'))
    files = [project.pyproject, project.lockfile, project.path / "torch-cuda.lock"]
    before = [path.read_bytes() for path in files]
    dry = run_inprocess(project, "install", "--dry-run")
    assert dry.returncode == 0, dry
    assert (
        "torch-cuda: would lock cu130 first (cu130 is not locked)\n"
        "torch-cuda: would install torch==2.14.1+cu130, torchvision==0.29.1+cu130 "
        f"from {url}/cu130\n"
    ) in dry.stdout, dry
    assert [path.read_bytes() for path in files] == before
    project.write_pyproject(project.pyproject_text().replace('"cu130"', '"cu126"'))
    for args in (("install", "--dry-run"), ("install",)):
        refused = run_inprocess(project, *args)
        assert refused.returncode == 1, (args, refused)
        assert (
            f"cannot lock torch==2.14.1+cu126 from {url}/cu126: the index has no build"
        ) in refused.stderr, (args, refused)
        assert "would install" not in refused.stdout, (args, refused)
    assert "torch" not in project.installed()


def test_an_install_warns_before_it_installs_a_build_the_driver_does_not_run(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    """Driver 575 runs CUDA 12.9 at most: with verification off, `poetry install` of a
    project pinned to cu130 installed the build without a word, as its dry run did;
    `switch cu130` warns first."""
    project = project_factory(DEPS, 'variant = "cu130"')
    assert run_inprocess(project, "lock").returncode == 0
    off = {**_driver_575(tmp_path), "POETRY_TORCH_CUDA_VERIFY": "0"}
    dry = run_inprocess(project, "install", "--dry-run", env_extra=off)
    assert dry.returncode == 0, dry
    assert WARNING_575 in dry.stderr, dry
    result = run_inprocess(project, "install", env_extra=off)
    assert result.returncode == 0, result
    assert WARNING_575 in result.stderr, result
    assert project.installed()["torch"] == "2.14.1+cu130", result
    again = run_inprocess(project, "install", env_extra=off)
    assert again.returncode == 0 and WARNING_575 not in again.stderr, again  # installed


def test_dry_runs_of_poetrys_lock_writers_say_torch_cuda_lock_would_follow(
    project_factory: ProjectFactory,
) -> None:
    """`poetry add`, `update` and `remove` update torch-cuda.lock after poetry.lock
    ("wrote torch-cuda.lock (…)"); their dry runs said nothing of it."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    files = [project.pyproject, project.lockfile, project.path / "torch-cuda.lock"]
    before = [path.read_bytes() for path in files]
    line = "torch-cuda: would update torch-cuda.lock to follow poetry.lock\n"
    for args in (("add", "tinyutil"), ("update",), ("remove", "torchvision")):
        dry = run_inprocess(project, *args, "--dry-run")
        assert dry.returncode == 0, (args, dry)
        assert dry.stdout.count(line) == 1, (args, dry)
        assert dry.stdout.index(line) < dry.stdout.index("torch-cuda: would install")
    locks = run_inprocess(project, "add", "tinyutil", "--lock", "--dry-run")
    assert locks.returncode == 0, locks
    assert locks.stdout.endswith(f"Resolving dependencies...\n{line}"), locks
    assert [path.read_bytes() for path in files] == before
    real = run_inprocess(project, "add", "tinyutil", "--lock")  # what the line says
    assert "torch-cuda: wrote torch-cuda.lock (cu129: " in real.stdout, real

"""switch, sync and status follow what the environment holds (issue 8), end to end:
real Poetry, real pip, local indexes; groups and extras selected as Poetry does."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING
from typing import Any

import pytest

from tests.support.gpus import machine_env
from tests.support.gpus import smi_line
from tests.support.inprocess import in_project
from tests.support.inprocess import run_inprocess
from tests.support.kept import kept_install
from tests.support.poetry_project import describe


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.kept import Kept
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

CU129 = 'variant = "cu129"'
DEPS = {"needs-torch": "*", "torchvision": "*"}


kept_cu129 = kept_install(DEPS, CU129)


@pytest.fixture
def cu129_project(kept_cu129: Kept, index: IndexServer) -> Project:
    return kept_cu129.fresh()


def project_with_group(
    project_factory: ProjectFactory, group: str, optional: bool
) -> Project:
    """A cu129 project with torch and torchvision in a Poetry dependency group, locked."""
    project = project_factory({"filelock": "*"}, CU129)
    flag = "true" if optional else "false"
    project.write_pyproject(
        project.pyproject_text() + f"\n[tool.poetry.group.{group}]\noptional = {flag}\n"
        f'[tool.poetry.group.{group}.dependencies]\ntorch = "*"\ntorchvision = "*"\n'
    )
    project.run("lock")
    return project


@pytest.fixture
def held_from_gpu_group(project_factory: ProjectFactory) -> Project:
    """torch and torchvision in the optional group gpu, installed with ``--with gpu``."""
    project = project_with_group(project_factory, "gpu", optional=True)
    project.run("install", "--with", "gpu")
    return project


def cuda_wheels(installed: dict[str, str]) -> list[str]:
    return sorted(name for name in installed if name.startswith("nvidia-"))


def test_switch_moves_torch_installed_from_an_optional_group(
    held_from_gpu_group: Project,
) -> None:
    project = held_from_gpu_group
    assert project.installed()["torch"] == "2.14.1+cu129"

    result = project.run("torch-cuda", "switch", "cu130")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu130", result.stdout
    assert installed["torchvision"] == "0.29.1+cu130"
    assert "nvidia-cublas-cu12" not in installed
    assert 'variant = "cu130"' in project.pyproject_text()
    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode == 0, status
    assert "Everything is in line." in status.stdout


def test_status_check_fails_on_a_held_build_of_another_variant(
    held_from_gpu_group: Project,
) -> None:
    project = held_from_gpu_group
    project.write_pyproject(
        project.pyproject_text().replace('variant = "cu129"', 'variant = "cu130"')
    )
    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode == 1, status.stdout
    assert "Everything is in line." not in status.stdout
    assert "torch 2.14.1+cu129" in status.stdout
    sync = project.run("torch-cuda", "sync")
    assert project.installed()["torch"] == "2.14.1+cu130", sync.stdout


def test_switch_and_sync_leave_out_what_the_environment_left_out(
    project_factory: ProjectFactory,
) -> None:
    project = project_with_group(project_factory, "dev", optional=False)
    project.run("install", "--without", "dev")
    assert "torch" not in project.installed()

    result = project.run("torch-cuda", "switch", "cu130")
    installed = project.installed()
    assert "torch" not in installed and "torchvision" not in installed
    assert cuda_wheels(installed) == []
    assert "nothing moved" in result.stdout
    assert "torch: in the lock (group dev), not installed here" in result.stdout
    assert 'variant = "cu130"' in project.pyproject_text()
    project.run("torch-cuda", "sync")
    assert "torch" not in project.installed()
    # `poetry install` would install it (dev is not optional): --check fails...
    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode == 1
    assert "in the lock (group dev), not installed here" in status.stdout
    # ...unless told what the environment was installed with
    told = run_inprocess(project, "torch-cuda", "status", "--check", "--without", "dev")
    assert told.returncode == 0, told

    # asked for with Poetry's own options, they are installed
    project.run("torch-cuda", "sync", "--with", "dev")
    assert project.installed()["torch"] == "2.14.1+cu130"


def test_extras_are_selected_as_poetry_does(project_factory: ProjectFactory) -> None:
    project = project_factory({"filelock": "*"}, CU129)
    project.write_pyproject(
        project.pyproject_text().replace(
            "[tool.poetry]\n",
            '[project.optional-dependencies]\ngpu = ["torch", "torchvision"]\n\n'
            "[tool.poetry]\n",
        )
    )
    project.run("install")
    assert "torch" not in project.installed()
    project.run("torch-cuda", "sync")
    assert "torch" not in project.installed()
    status = run_inprocess(project, "torch-cuda", "status")
    assert status.returncode == 0, status
    assert "behind extra gpu (-E gpu)" in status.stdout
    asked = run_inprocess(project, "torch-cuda", "status", "--check", "-E", "gpu")
    assert asked.returncode == 1, asked
    assert (
        "torch 2.14.1+cu129 is not installed; run `poetry install` with these options"
    ) in asked.stdout.replace("\n", " "), asked
    bad = project.run("torch-cuda", "sync", "-E", "nope", check=False)
    assert bad.returncode == 1 and "nope" in bad.stderr
    project.run("torch-cuda", "sync", "-E", "gpu")
    assert project.installed()["torchvision"] == "0.29.1+cu129"


SPECIFIED = 'variant = "cu129"\npackages = ["torch", "torchvision", "torchaudio>=2.8"]'


def test_a_specifier_only_package_moves_with_the_family(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory({"needs-torch": "*", "torchvision": "*"}, SPECIFIED)
    project.run("install")
    assert project.installed()["torchaudio"] == "2.14.1+cu129"
    # poetry sync does not churn it, and asks no variant index
    index.clear_requests()
    result = project.run("sync")
    assert "Removing torchaudio" not in result.stdout
    assert project.installed()["torchaudio"] == "2.14.1+cu129"
    assert [path for path in index.requests if path.startswith("/whl/")] == []

    project.run("torch-cuda", "switch", "cu130")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu130"
    assert installed["torchaudio"] == "2.14.1+cu130"
    assert "nvidia-cublas-cu12" not in installed
    assert 'variant = "cu130"' in project.pyproject_text()


def test_a_failure_after_pip_puts_the_environment_back(
    cu129_project: Project,
) -> None:
    project = cu129_project
    before = project.installed()
    pyproject = project.pyproject_text()
    # the sweep of the cu12 wheels will fail: pip cannot uninstall without RECORD
    (record,) = project.site_packages().glob("nvidia_cudnn_cu12-*.dist-info/RECORD")
    record.unlink()
    result = project.run("torch-cuda", "switch", "cu130", check=False)
    assert result.returncode == 1, result.stdout
    assert "put back as it was" in result.stderr
    assert project.installed() == before
    assert project.pyproject_text() == pyproject
    project.pip("check")


def test_a_misspelled_entry_and_a_partial_family_are_reported(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(
        {"needs-torch": "*", "torchvision": "*"},
        'variant = "cu129"\npackages = ["troch", "torchvision"]',
    )
    result = project.run("install")
    assert "troch" in result.stderr and "did you mean torch?" in result.stderr
    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode == 1
    assert "did you mean torch?" in status.stdout

    partial = project_factory(
        {"needs-torch": "*", "torchvision": "*"},
        'variant = "cu129"\npackages = ["torch"]',
        name="partial",
    )
    result = partial.run("install")
    assert "torchvision 0.29.1 is installed but left to Poetry" in result.stderr
    status = run_inprocess(partial, "torch-cuda", "status", "--check")
    assert status.returncode == 1
    assert 'packages = ["torch", "torchvision"]' in status.stdout


def test_pip_settings_do_not_redirect_the_plugins_pip(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nno-index = true\nfind-links = /nonexistent\n"
        "extra-index-url = http://127.0.0.1:9/simple\n"
    )
    project = project_factory({"needs-torch": "*", "torchvision": "*"}, CU129)
    project.run(
        "install",
        env_extra={"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": str(conf)},
    )
    assert project.installed()["torch"] == "2.14.1+cu129"


def test_auto_falling_back_to_cpu_on_a_gpu_says_why(
    project_factory: ProjectFactory, tmp_path: Path
) -> None:
    env = machine_env(
        tmp_path / "stubs",
        # Below CUDA 11.x's minor-version-compatibility floor (450.80.02), so no
        # CUDA build runs (470.57.02 would run cu118 by that rule).
        nvidia_smi=smi_line("440.33.01", "8.6", "NVIDIA GeForce RTX 3090"),
    )
    project = project_factory(
        {"needs-torch": "*", "torchvision": "*"}, 'variant = "auto"'
    )
    result = project.run("install", env_extra=env)
    assert project.installed()["torch"] == "2.14.1+cpu"
    assert "RTX 3090 (driver 440.33.01)" in result.stderr
    # The lowest driver under which auto picks a build the index has (no cu118
    # since torch 2.8): CUDA 12's compatibility floor, where auto picks cu129.
    assert ">= 525.60.13 runs cu129" in result.stderr
    status = run_inprocess(project, "torch-cuda", "status", env_extra=env)
    assert status.returncode == 0, status
    assert "supports no CUDA" not in status.stdout


def test_sync_dry_run_wording(cu129_project: Project) -> None:
    result = run_inprocess(cu129_project, "torch-cuda", "sync", "--dry-run")
    assert result.returncode == 0, result
    assert "would cu129" not in result.stdout
    assert "nothing would change" in result.stdout
    # `poetry install --dry-run` words the same plan the same way
    hook = run_inprocess(cu129_project, "install", "--dry-run")
    assert hook.returncode == 0, hook
    line = (
        "torch-cuda: nothing would change: cu129 already installed (torch==2.14.1+cu129"
    )
    assert line in hook.stdout, hook
    assert line in result.stdout, result


def test_a_specifier_only_package_installs_the_locked_build_not_the_newest_offered(
    tmp_path: Path,
) -> None:
    from tests.support.catalog import build_universe
    from tests.support.fixtures import served
    from tests.support.poetry_project import Project

    universe = build_universe(tmp_path / "universe")
    with next(served(universe.root)) as index:
        project = Project.create(tmp_path, index, {"needs-torch": "*"}, SPECIFIED)
        project.run("lock")
        project.run("torch-cuda", "lock")
        # PyTorch publishes a newer torchaudio after torch-cuda.lock was committed,
        # and the install runs where no page of the index is cached (a fresh clone)
        universe.add_wheel("cu129", "torchaudio", "2.15.0+cu129", ["torch==2.15.0"])
        shutil.rmtree(tmp_path / "poetry-home" / "cache")
        project.run("install")
        assert project.installed()["torchaudio"] == "2.14.1+cu129"


def test_a_specifier_only_package_is_locked_at_a_build_the_locked_torch_accepts(
    tmp_path: Path,
) -> None:
    """As pip with torch pinned: the newest torchaudio that accepts the torch
    poetry.lock locks, never a newer one that drags a second torch into the lock."""
    from tests.e2e.test_torch_cuda_lock import read_lock
    from tests.support.catalog import build_universe
    from tests.support.fixtures import served
    from tests.support.poetry_project import Project

    universe = build_universe(tmp_path / "universe")
    # The variant index already has the next release, which PyPI (and so
    # poetry.lock, torch 2.14.1) does not.
    universe.add_wheel("cu129", "torch", "2.15.0+cu129")
    universe.add_wheel("cu129", "torchaudio", "2.15.0+cu129", ["torch==2.15.0"])
    with next(served(universe.root)) as index:
        project = Project.create(tmp_path, index, {"needs-torch": "*"}, SPECIFIED)
        project.run("lock")
        (entry,) = read_lock(project)["variant"]
        locked = sorted(
            (p["name"], p["version"])
            for p in entry["package"]
            if p["name"] in ("torch", "torchaudio")
        )
        assert locked == [("torch", "2.14.1+cu129"), ("torchaudio", "2.14.1+cu129")]
        project.run("install")
        installed = project.installed()
        assert installed["torch"] == "2.14.1+cu129"
        assert installed["torchaudio"] == "2.14.1+cu129"
        # a range no build of the locked torch's can meet is refused, saying why
        project.write_pyproject(
            project.pyproject_text().replace('"torchaudio>=2.8"', '"torchaudio>=2.15"')
        )
        refused = project.run("torch-cuda", "lock", check=False)
        assert refused.returncode == 1, refused
        assert (
            "has no build of torchaudio that matches (it offers 2.15.0+cu129, "
            "2.14.1+cu129, 2.13.0+cu129; none accepts torch 2.14.1+cu129)"
        ) in refused.stderr, refused


def test_a_run_reads_the_environment_once(
    cu129_project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A dry run's plan and status (auto's offers and the check of the installed
    files included) read one view of the environment."""
    from poetry_torch_cuda.environment.installed import InstalledEnvironment

    reads: list[object] = []
    init = InstalledEnvironment.__init__

    def counted(self: InstalledEnvironment, *args: Any, **kwargs: Any) -> None:
        reads.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(InstalledEnvironment, "__init__", counted)
    auto = {**machine_env(tmp_path / "machine"), "POETRY_TORCH_CUDA_VARIANT": "auto"}
    for args, env in (
        (("sync", "--dry-run"), None),
        (("switch", "cu130", "--dry-run"), None),
        (("status",), None),
        (("status",), auto),
    ):
        reads.clear()
        result = run_inprocess(cu129_project, "torch-cuda", *args, env_extra=env)
        assert result.returncode == 0, result
        assert "torch" in result.stdout and "2.14.1+cu1" in result.stdout, result
        assert len(reads) == 1, (args, env, len(reads))


def test_a_run_plans_from_the_environment_as_it_is_under_its_lock(
    cu129_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run that changed the environment after this one first read it, and
    finished before this one took the environment's lock (no wait), is seen."""
    from cleo.io.buffered_io import BufferedIO
    from poetry.utils.env import VirtualEnv

    from poetry_torch_cuda.context import RunContext

    project = cu129_project
    poetry, config = in_project(project, monkeypatch)
    ctx = RunContext(poetry, VirtualEnv(project.venv), BufferedIO(), config)
    assert ctx.installed.version("torch") == "2.14.1+cu129"  # this run's first read
    project.pip("uninstall", "-y", "torch")  # the other run, done before our lock

    plan = ctx.reconcile(config.variant)

    assert [target.name for target in plan.install] == ["torch"]
    assert project.installed()["torch"] == "2.14.1+cu129"


def test_a_run_that_waited_reads_the_project_again_with_its_options(
    cu129_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``poetry install --no-cache`` that waited for another run read the project
    again with Poetry's cache on, for poetry.lock's sources too."""
    from cleo.io.buffered_io import BufferedIO
    from poetry.factory import Factory
    from poetry.utils.env import VirtualEnv

    from poetry_torch_cuda.context import RunContext

    _, config = in_project(cu129_project, monkeypatch)
    poetry = Factory().create_poetry(cu129_project.path, disable_cache=True)
    ctx = RunContext(poetry, VirtualEnv(cu129_project.venv), BufferedIO(), config)

    assert ctx.after_wait() is not None
    assert ctx.poetry is not poetry
    assert ctx.poetry.disable_cache


def test_an_entry_whose_marker_excludes_this_environment_is_left_to_poetry(
    project_factory: ProjectFactory,
) -> None:
    """``"torchvision; sys_platform == 'win32'"`` on Linux: Poetry installs it
    here, as any dependency, instead of nobody; chosen so, it is not "left to
    Poetry" (the install and `status --check` said to add it to `packages`)."""
    project = project_factory(
        DEPS,
        'variant = "cu129"\n'
        'packages = ["torch", "torchvision; sys_platform == \'win32\'"]',
    )
    result = project.run("install")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu129"
    assert installed.get("torchvision") == "0.29.1", installed
    assert "left to Poetry" not in result.stderr, describe(result)
    status = run_inprocess(project, "torch-cuda", "status", "--check")
    assert status.returncode == 0, status


def test_the_projects_own_cuda_wheels_are_judged_by_the_options_given(
    project_factory: ProjectFactory,
) -> None:
    """status asks the lock which of the project's own CUDA wheels `poetry install`
    installs with the options given, as it does for the configured packages."""
    project = project_factory({"torch": "*"}, 'variant = "cu130"')
    project.write_pyproject(
        project.pyproject_text() + "\n[tool.poetry.group.dev.dependencies]\n"
        'cuda-bindings = "*"\n[tool.poetry.group.gpu]\noptional = true\n'
        '[tool.poetry.group.gpu.dependencies]\ncuda-pathfinder = "*"\n'
    )
    project.run("install", "--without", "dev")
    assert "cuda-bindings" not in project.installed()
    told = run_inprocess(project, "torch-cuda", "status", "--check", "--without", "dev")
    assert told.returncode == 0, told
    default = run_inprocess(project, "torch-cuda", "status", "--check")
    assert default.returncode == 1, default
    assert "cuda-bindings, a dependency of the project itself" in default.stdout
    gpu = run_inprocess(
        project, "torch-cuda", "status", "--check", "--only", "main,gpu"
    )
    assert gpu.returncode == 1, gpu
    assert "cuda-pathfinder, a dependency of the project itself" in gpu.stdout
    assert "cuda-bindings" not in gpu.stdout


def test_an_install_leaving_a_group_out_moves_its_installed_packages_too(
    cu129_project: Project,
) -> None:
    """torchvision, in a group `--without` leaves alone, moves with torch: a
    cu129 torchvision beside a cu130 torch is a family that does not run."""
    project = cu129_project
    project.write_pyproject(
        project.pyproject_text().replace('    "torchvision",\n', "")
        + '\n[tool.poetry.group.dev.dependencies]\ntorchvision = "*"\n'
    )
    cu130 = {"POETRY_TORCH_CUDA_VARIANT": "cu130"}
    # Without poetry.lock a dry run resolves afresh: no lock to hold torchvision at.
    project.lockfile.unlink()
    dry = run_inprocess(
        project, "install", "--without", "dev", "--dry-run", env_extra=cu130
    )
    assert dry.returncode == 0, dry
    assert "would install torch==2.14.1+cu130 from" in dry.stdout, dry
    project.run("lock")
    result = project.run("install", "--without", "dev", env_extra=cu130)
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu130", result.stdout
    assert installed["torchvision"] == "0.29.1+cu130", result.stdout
    status = run_inprocess(project, "torch-cuda", "status", "--check", env_extra=cu130)
    assert status.returncode == 0, status

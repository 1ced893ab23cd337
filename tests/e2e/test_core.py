"""The product, end to end: real Poetry, real pip, real venvs, local HTTP indexes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.audit import Audit
from tests.support.audit import whl_requests
from tests.support.inprocess import run_inprocess
from tests.support.kept import kept_install


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.kept import Kept
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

CU129 = 'variant = "cu129"  # our cluster\n'
DEPS = {"needs-torch": "*", "torchvision": "*"}
#: What a project without the table, or ``poetry --version``, imports of ours.
ENTRY_POINT_ONLY = ["poetry_torch_cuda", "poetry_torch_cuda.plugins"]
#: Our modules only a change needs.
ONLY_FOR_A_CHANGE = (
    "poetry_torch_cuda.install.pip",
    "poetry_torch_cuda.install.download",
    "poetry_torch_cuda.lockfile.service",
    "poetry_torch_cuda.lockfile.model",
    "poetry_torch_cuda.proof",
)
PYPI_CUDA_WHEELS = (
    "nvidia-cublas",
    "nvidia-cudnn-cu13",
    "cuda-toolkit",
    "nvidia-cuda-runtime",
)


kept_cu129 = kept_install(DEPS, CU129)


@pytest.fixture
def cu129_project(kept_cu129: Kept, index: IndexServer) -> Project:
    return kept_cu129.fresh()


def test_install_keeps_the_configured_cuda_build(cu129_project: Project) -> None:
    installed = cu129_project.installed()
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["torchvision"] == "0.29.1+cu129"
    assert installed["nvidia-cublas-cu12"] == "12.9.1.4"
    assert installed["nvidia-cudnn-cu12"] == "9.10.2.21"
    assert installed["triton"] == "3.6.0"
    # everything else installs as usual
    assert installed["needs-torch"] == "1.0.0"
    assert installed["filelock"] == "3.20.0"
    # PyPI's default-build CUDA wheels never arrive
    for name in PYPI_CUDA_WHEELS:
        assert name not in installed
    # the lock is Poetry's ordinary lock: PyPI's torch, unlabelled
    assert 'name = "torch"\nversion = "2.14.1"' in cu129_project.lock_text()


def test_second_install_is_a_no_op_without_index_or_pip(
    cu129_project: Project, index: IndexServer
) -> None:
    before = cu129_project.installed()
    index.clear_requests()
    audit = Audit(cu129_project.path.parent / "audit")
    result = cu129_project.run("install", env_extra=audit.env())
    assert "Downgrading" not in result.stdout
    assert cu129_project.installed() == before
    assert whl_requests(index) == []
    assert [e.command for e in audit.started() if "pip" in e.argv] == []
    # Nothing at all from our code: no pip, no nvidia-smi, no socket.
    assert [event.command for event in audit.events() if event.ours] == []
    modules = audit.modules()
    assert "poetry_torch_cuda.hooks" in modules  # the plugin did run
    # What only a change needs is not even imported: pip, downloads, the
    # lockfile's reader and locker, verification.
    assert [m for m in modules if m.startswith(ONLY_FOR_A_CHANGE)] == []


def test_sync_leaves_the_cuda_wheels_and_removes_strays(cu129_project: Project) -> None:
    cu129_project.pip(
        "install", "--index-url", cu129_project.index.pypi_url, "tinyutil==1.0.0"
    )
    assert "tinyutil" in cu129_project.installed()
    result = cu129_project.run("sync")
    installed = cu129_project.installed()
    assert "Removing nvidia" not in result.stdout
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["nvidia-cublas-cu12"] == "12.9.1.4"
    assert "tinyutil" not in installed


def test_update_and_add_keep_the_build(cu129_project: Project) -> None:
    cu129_project.run("update")
    assert cu129_project.installed()["torch"] == "2.14.1+cu129"
    result = cu129_project.run("add", "tinyutil==1.0.0")
    installed = cu129_project.installed()
    assert installed["tinyutil"] == "1.0.0"
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["torchvision"] == "0.29.1+cu129"
    assert "torch-cuda" not in result.stderr


def test_older_lock_installs_the_matching_build(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory({"torch": "2.13.0", "torchvision": "*"}, CU129)
    project.run("install")
    installed = project.installed()
    assert installed["torch"] == "2.13.0+cu129"
    assert installed["torchvision"] == "0.28.0+cu129"
    project.run("add", "torch==2.14.1")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["torchvision"] == "0.29.1+cu129"


def test_remove_lets_poetry_drop_a_package_the_project_no_longer_has(
    cu129_project: Project,
) -> None:
    cu129_project.run("remove", "torchvision")
    installed = cu129_project.installed()
    assert "torchvision" not in installed
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["nvidia-cublas-cu12"] == "12.9.1.4"


def test_dry_run_changes_nothing(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory(DEPS, CU129)
    project.run("lock")
    index.clear_requests()  # the lock step may check the variant has the locked torch
    project.run("install", "--dry-run")
    assert "torch" not in project.installed()
    assert whl_requests(index) == []


def test_switch_to_cu130_then_cpu(cu129_project: Project) -> None:
    result = cu129_project.run("torch-cuda", "switch", "cu130")
    installed = cu129_project.installed()
    assert installed["torch"] == "2.14.1+cu130"
    assert installed["torchvision"] == "0.29.1+cu130"
    assert "nvidia-cublas" in installed
    assert "nvidia-cublas-cu12" not in installed  # orphaned cu12 wheels are swept
    assert "nvidia-cudnn-cu12" not in installed
    assert 'variant = "cu130"  # our cluster' in cu129_project.pyproject_text()
    assert "removed" in result.stdout

    cu129_project.run("torch-cuda", "switch", "cpu")
    installed = cu129_project.installed()
    assert installed["torch"] == "2.14.1+cpu"
    assert installed["torchvision"] == "0.29.1+cpu"
    assert not [
        name for name in installed if name.startswith("nvidia-") or name == "triton"
    ]
    assert installed["needs-torch"] == "1.0.0"
    # and Poetry's next install keeps the new variant
    cu129_project.run("install")
    assert cu129_project.installed()["torch"] == "2.14.1+cpu"


def test_switch_keeps_the_kind_of_the_variants_string(cu129_project: Project) -> None:
    """A multi-line or literal string was rewritten as a basic one: only the value
    changes, byte for byte (CRLF lines too)."""
    text = cu129_project.pyproject_text().replace('"cu129"', "'''cu129'''")
    before = text.replace("\n", "\r\n").encode()
    assert before.count(b"cu129") == 1
    cu129_project.pyproject.write_bytes(before)
    cu129_project.run("torch-cuda", "switch", "cpu")
    assert cu129_project.installed()["torch"] == "2.14.1+cpu"
    assert cu129_project.pyproject.read_bytes() == before.replace(b"cu129", b"cpu")


def test_switch_failure_changes_nothing(cu129_project: Project) -> None:
    pyproject = cu129_project.pyproject.read_bytes()
    before = cu129_project.installed()
    result = cu129_project.run("torch-cuda", "switch", "cu126", check=False)
    assert result.returncode == 1
    assert "torch==2.14.1+cu126" in result.stderr
    assert "/whl/cu126" in result.stderr
    assert "Traceback" not in result.stderr
    assert cu129_project.pyproject.read_bytes() == pyproject
    assert cu129_project.installed() == before


def test_switch_dry_run(cu129_project: Project, index: IndexServer) -> None:
    pyproject = cu129_project.pyproject.read_bytes()
    torch_lock = (cu129_project.path / "torch-cuda.lock").read_bytes()
    index.clear_requests()
    result = run_inprocess(cu129_project, "torch-cuda", "switch", "cu130", "--dry-run")
    assert result.returncode == 0, result
    assert "would lock cu130 first (cu130 is not locked)" in result.stdout, result
    assert "would install torch==2.14.1+cu130" in result.stdout
    assert (
        "nvidia-cublas-cu12" not in result.stdout
    )  # orphans are known only after the install
    assert cu129_project.pyproject.read_bytes() == pyproject
    assert (cu129_project.path / "torch-cuda.lock").read_bytes() == torch_lock
    assert cu129_project.installed()["torch"] == "2.14.1+cu129"
    # It locks cu130 as the switch would, from the index's pages and metadata.
    assert not [path for path in whl_requests(index) if path.endswith(".whl")]


def test_switch_rejects_unknown_variant(cu129_project: Project) -> None:
    pyproject = cu129_project.pyproject.read_bytes()
    result = cu129_project.run("torch-cuda", "switch", "cu12x", check=False)
    assert result.returncode == 1
    assert "'cu12x' is not a variant" in result.stderr
    assert cu129_project.pyproject.read_bytes() == pyproject


def test_failed_pip_keeps_previous_build(cu129_project: Project) -> None:
    result = cu129_project.run(
        "install", check=False, env_extra={"POETRY_TORCH_CUDA_VARIANT": "cu126"}
    )
    assert result.returncode == 1
    # torch-cuda.lock is made first: it finds that cu126 lacks the build.
    assert "cannot lock torch==2.14.1+cu126" in result.stderr
    assert "Traceback" not in result.stderr
    assert cu129_project.installed()["torch"] == "2.14.1+cu129"


def test_project_without_table_is_untouched(project_factory: ProjectFactory) -> None:
    project = project_factory(DEPS)
    audit = Audit(project.path.parent / "audit")
    result = project.run("install", env_extra=audit.env())
    installed = project.installed()
    assert installed["torch"] == "2.14.1"
    assert "nvidia-cublas" in installed  # Poetry's ordinary behaviour
    assert "torch-cuda" not in result.stdout + result.stderr
    # The plugin costs such a project its entry point and nothing else.
    assert audit.modules() == ENTRY_POINT_ONLY
    assert [event.command for event in audit.events() if event.ours] == []


def test_disable_variable_leaves_everything_to_poetry(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS, CU129)
    project.run("install", env_extra={"POETRY_TORCH_CUDA_DISABLE": "1"})
    assert project.installed()["torch"] == "2.14.1"


def test_removing_torch_from_the_project_sweeps_its_cuda_wheels(
    cu129_project: Project,
) -> None:
    cu129_project.run("remove", "needs-torch", "torchvision")
    installed = cu129_project.installed()
    for name in (
        "torch",
        "torchvision",
        "nvidia-cublas-cu12",
        "nvidia-cudnn-cu12",
        "triton",
    ):
        assert name not in installed
    assert 'name = "torch"' not in cu129_project.lock_text()


def test_a_dry_run_says_what_the_run_sweeps_after_poetrys_removals(
    cu129_project: Project,
) -> None:
    args = ("remove", "needs-torch", "torchvision")
    dry = run_inprocess(cu129_project, *args, "--dry-run")
    assert dry.returncode == 0, dry
    swept = "nvidia-cublas-cu12, nvidia-cudnn-cu12, triton"
    assert f"torch-cuda: would remove {swept}" in dry.stdout, dry.stdout
    result = cu129_project.run(*args)
    assert f"removed 3 unused CUDA wheels ({swept})" in result.stdout

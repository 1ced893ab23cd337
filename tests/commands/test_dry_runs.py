"""Reading commands and dry runs create no virtualenv, even where the project has
none yet (in-process: Poetry creates a venv the same way in or out of a
subprocess; moved from tests/e2e/test_env_follows.py)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
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

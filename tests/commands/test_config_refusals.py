"""A bad table fails ``lock`` and ``install`` before anything changes (in-process:
the point is the refusal and its wording; moved from tests/e2e/test_core.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.inprocess import run_inprocess
from tests.support.untouched import untouched


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory

DEPS = {"needs-torch": "*", "torchvision": "*"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('variant = "cu12x"', "variant = 'cu12x' is not a variant"),
        ('variant = "cu129"\nindex = "x"', "unknown key 'index'"),
        ('variant = "cu129"\npackages = ["torch>>1"]', "is not a PEP 508 requirement"),
    ],
)
def test_bad_config_fails_before_anything_changes(
    project_factory: ProjectFactory, table: str, message: str
) -> None:
    project = project_factory(DEPS, table)
    assert not project.lockfile.exists() and not project.venv.exists()
    with untouched(project):
        for command in ("lock", "install"):
            result = run_inprocess(project, command)
            assert result.returncode == 1
            assert message in result.stderr
            assert "Traceback" not in result.stderr


def test_a_command_that_needs_the_table_refuses_in_one_wording(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS)  # no [tool.poetry-torch-cuda] table
    for args in (("sync", "--dry-run"), ("export",), ("lock", "--check")):
        result = run_inprocess(project, "torch-cuda", *args)
        assert result.returncode == 1, (args, result)
        assert (
            "This project has no [tool.poetry-torch-cuda] table, so no variant "
            "is configured. Add one, e.g." in result.stderr
        ), (args, result)
        assert 'variant = "auto"' in result.stderr, (args, result)


@pytest.mark.parametrize(
    "misspelled", ["poetry_torch_cuda", "torch-cuda", "poetry-torch_cuda"]
)
def test_a_misspelled_table_is_named_not_ignored(
    project_factory: ProjectFactory, misspelled: str
) -> None:
    """The plugin did nothing (Poetry installed PyPI's torch) for a table whose
    name was misspelled; every command names the table it reads."""
    project = project_factory(DEPS)
    project.write_pyproject(
        project.pyproject_text() + f'\n[tool.{misspelled}]\nvariant = "cu129"\n'
    )
    with untouched(project):
        for args in (("install",), ("torch-cuda", "status")):
            result = run_inprocess(project, *args)
            assert result.returncode == 1, (args, result)
            assert result.stderr.strip() == (
                f"[tool.{misspelled}] looks like a misspelling of "
                "[tool.poetry-torch-cuda], the table poetry-torch-cuda reads; "
                "rename it."
            ), (args, result)


def test_a_packages_version_poetry_lock_does_not_have_is_refused(
    project_factory: ProjectFactory,
) -> None:
    """``packages = ["torch==2.13.0"]`` while poetry.lock locks torch 2.14.1: every
    install put in 2.14.1 (in the variant's build) without a word. Each command
    refuses, naming the entry, the locked version and the fix."""
    table = 'variant = "cu129"\npackages = ["torch==2.13.0", "torchvision"]'
    project = project_factory(DEPS, table)
    off = {"POETRY_TORCH_CUDA_DISABLE": "1"}  # Poetry's lock alone
    assert run_inprocess(project, "lock", env_extra=off).returncode == 0
    message = (
        "torch==2.13.0 is in [tool.poetry-torch-cuda] packages, but poetry.lock "
        "locks torch 2.14.1"
    )
    for args in (("install",), ("torch-cuda", "lock"), ("torch-cuda", "status")):
        result = run_inprocess(project, *args)
        assert result.returncode == 1, (args, result)
        assert message in result.stderr, (args, result)
    assert not (project.path / "torch-cuda.lock").exists()

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

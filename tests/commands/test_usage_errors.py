"""A command line Poetry cannot parse is cleo's usage error, never a crash
(in-process: the point is the wording; moved from tests/e2e/test_overlap.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory

DEPS = {"needs-torch": "*", "torchvision": "*"}


def test_switch_without_a_variant_is_a_usage_error(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS, "variant = 'cu129'  # the cluster's\n")
    pyproject = project.pyproject.read_bytes()
    assert not project.venv.exists()
    result = run_inprocess(project, "torch-cuda", "switch")
    assert result.returncode != 0
    assert 'Not enough arguments (missing: "variant")' in result.stderr, result
    assert "TypeError" not in result.stderr + result.stdout
    assert "NoneType" not in result.stderr + result.stdout
    assert project.pyproject.read_bytes() == pyproject
    # README: "A bad variant argument, or none, is refused before Poetry creates
    # a virtualenv."
    assert not project.venv.exists()

"""A command line Poetry cannot parse is cleo's usage error, never a crash
(in-process: the point is the wording; moved from tests/e2e/test_overlap.py)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.support.inprocess import run_inprocess


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory

DEPS = {"needs-torch": "*", "torchvision": "*"}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), r'Not enough arguments \(missing: "variant"\)'),
        (  # under Poetry 2.0, cleo names the command by its last word only
            ("cu130", "cu126"),
            (
                r'Too many arguments to "(torch-cuda )?switch" command, expected '
                r'arguments "variant"'
            ),
        ),
        (("cu130", "--bogus"), r'The option "--bogus" does not exist'),
    ],
    ids=["no variant", "two variants", "unknown option"],
)
def test_a_switch_poetry_cannot_parse_is_a_usage_error(
    project_factory: ProjectFactory, args: tuple[str, ...], error: str
) -> None:
    project = project_factory(DEPS, "variant = 'cu129'  # the cluster's\n")
    pyproject = project.pyproject.read_bytes()
    assert not project.venv.exists()
    result = run_inprocess(project, "torch-cuda", "switch", *args)
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert re.fullmatch(error, line), line  # cleo's one line, as cleo words it
    assert project.pyproject.read_bytes() == pyproject
    # README: "A bad variant argument, or none, is refused before Poetry creates
    # a virtualenv."
    assert not project.venv.exists()


def test_export_of_auto_needs_a_variant(project_factory: ProjectFactory) -> None:
    """README: without --variant, export takes the variant an install takes; with
    auto that would be the builder's pick, so it asks for the image's build."""
    project = project_factory(DEPS, 'variant = "auto"')
    result = run_inprocess(project, "torch-cuda", "export")
    assert result.returncode == 1, result
    assert result.stderr.strip() == (
        "--variant must name a build (e.g. cu129): an image is built for one."
    )
    assert result.stdout == ""


def test_switch_pin_of_a_build_is_refused(project_factory: ProjectFactory) -> None:
    """--pin means "write auto's pick"; `switch cu130 --pin` ran as a plain switch,
    the option silently ignored."""
    project = project_factory(DEPS, "variant = 'cu129'  # the cluster's\n")
    pyproject = project.pyproject.read_bytes()
    result = run_inprocess(project, "torch-cuda", "switch", "cu130", "--pin")
    assert result.returncode == 1, result
    assert result.stderr.strip() == (
        "--pin needs auto: drop it, or `switch auto --pin`."
    ), result
    assert project.pyproject.read_bytes() == pyproject
    assert not project.venv.exists()

"""Where the variant indexes come from: a source name that names none, and plain
http to another host, are refused before anything runs, with the fix in the
message (in-process: the point is the refusal and its wording; moved from
tests/e2e/test_credentials.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.inprocess import run_inprocess
from tests.support.untouched import untouched


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer

DEPS = {"needs-torch": "*", "torchvision": "*"}


def test_unknown_source_names_the_known_ones(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory(DEPS)
    project.write_pyproject(
        project.pyproject_text()
        + '\n[[tool.poetry.source]]\nname = "torch-mirror"\n'
        + f'url = "{index.url}/whl/{{variant}}"\npriority = "explicit"\n'
        + '\n[tool.poetry-torch-cuda]\nvariant = "cu129"\nsource = "torch-mirorr"\n'
    )
    with untouched(project):
        result = run_inprocess(project, "install")
    assert result.returncode == 1
    assert (
        "[tool.poetry-torch-cuda] source = 'torch-mirorr' names no "
        "[[tool.poetry.source]] with a url; known sources: 'fakepypi', "
        "'torch-mirror'." in result.stderr
    )
    assert not project.venv.exists()
    assert result.started == []


@pytest.mark.parametrize(
    "table",
    [
        'variant = "cu129"\nindex-url = "http://torch-mirror.example/whl/{variant}"\n',
        'variant = "cu129"\nsource = "insecure"\n',
    ],
)
def test_plain_http_to_another_host_needs_an_explicit_opt_in(
    project_factory: ProjectFactory, table: str
) -> None:
    project = project_factory(DEPS)
    base = project.pyproject_text() + (
        '\n[[tool.poetry.source]]\nname = "insecure"\n'
        'url = "http://torch-mirror.example/whl/{variant}"\npriority = "explicit"\n'
    )
    project.write_pyproject(base + f"\n[tool.poetry-torch-cuda]\n{table}")
    # --dry-run: the opted-in mirror does not exist, so nothing may fetch from it.
    refused = run_inprocess(project, "install", "--dry-run")
    assert refused.returncode == 1
    assert "uses plain http to torch-mirror.example" in refused.stderr
    assert "allow-insecure-http = true" in refused.stderr
    assert not project.venv.exists()
    project.write_pyproject(
        base + f"\n[tool.poetry-torch-cuda]\n{table}allow-insecure-http = true\n"
    )
    accepted = run_inprocess(project, "install", "--dry-run")
    assert accepted.returncode == 0, accepted
    assert "plain http" not in accepted.stderr

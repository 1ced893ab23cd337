"""The in-process runner starts each run as a new ``poetry`` process would: Poetry
keeps its configuration in a module global (``Config.create()``) and merges the
first project's sources into it, so a later run in the same worker read the first
one's source URLs (the order-dependent export-credentials failure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.index import IndexServer
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import Project


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.catalog import Universe

CREDENTIALS = {
    "POETRY_HTTP_BASIC_FAKEPYPI_USERNAME": "ci",
    "POETRY_HTTP_BASIC_FAKEPYPI_PASSWORD": "s3cret",
}


def _export(path: Path, server: IndexServer) -> str:
    """The export of a cu129 project on ``server``, with its source's credentials."""
    project = Project.create(path, server, {"torch": "*"}, 'variant = "cu129"\n')
    project.run("lock")
    args = ("torch-cuda", "export", "--variant", "cu129")
    result = run_inprocess(project, *args, env_extra=CREDENTIALS)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_run_reads_its_own_projects_sources_not_an_earlier_runs(
    tmp_path: Path, index: IndexServer, universe: Universe
) -> None:
    with IndexServer(universe.root) as other:  # the same source name, another port
        _export(tmp_path / "first", other)
    text = _export(tmp_path / "second", index)
    assert f"# {index.pypi_url.rstrip('/')} needs credentials" in text, text

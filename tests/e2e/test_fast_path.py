"""What the plugin costs the commands that do not need it: behaviour, not timing.

A ``sitecustomize`` put on ``PYTHONPATH`` watches the ``poetry`` process: which
of our modules it imported by the time it exited, and which processes it
started or sockets it connected while a frame of ours was on the stack.
``benchmarks/`` measures the time; ``nox -s bench`` runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.audit import Audit
from tests.support.audit import whl_requests


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
CU129 = 'variant = "cu129"'
ENTRY_POINT_ONLY = ["poetry_torch_cuda", "poetry_torch_cuda.plugins"]


def watched(project: Project, *args: str) -> tuple[list[str], list[str]]:
    """Run ``poetry *args``; our modules it imported and what our code started."""
    audit = Audit(project.path.parent / "watch")
    project.run(*args, env_extra=audit.env())
    return audit.modules(), [event.command for event in audit.events() if event.ours]


def test_version_imports_only_the_entry_point(project_factory: ProjectFactory) -> None:
    project = project_factory(DEPS, CU129)
    modules, events = watched(project, "--version")
    assert modules == ENTRY_POINT_ONLY
    assert events == []


def test_project_without_the_table_imports_only_the_entry_point(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory(DEPS)
    modules, events = watched(project, "install")
    assert modules == ENTRY_POINT_ONLY
    assert events == []
    assert project.installed()["torch"] == "2.14.1"


def test_no_op_install_starts_nothing_and_asks_no_index(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    project = project_factory(DEPS, CU129)
    project.run("install")
    before = project.installed()
    index.clear_requests()
    modules, events = watched(project, "install")
    assert "poetry_torch_cuda.hooks" in modules  # the plugin did run
    assert events == []  # no pip, no nvidia-smi, no socket from our code
    assert whl_requests(index) == []
    assert project.installed() == before
    # What only a change needs is not even imported: pip, downloads, the
    # lockfile's reader and locker, verification.
    heavy = (
        "poetry_torch_cuda.install.pip",
        "poetry_torch_cuda.install.download",
        "poetry_torch_cuda.lockfile.service",
        "poetry_torch_cuda.lockfile.model",
        "poetry_torch_cuda.proof",
    )
    assert [m for m in modules if m.startswith(heavy)] == []


def test_plugin_and_config_agree_on_the_table_name() -> None:
    from poetry_torch_cuda import plugins
    from poetry_torch_cuda.project import config

    assert plugins.TABLE == config.TABLE

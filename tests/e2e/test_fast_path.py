"""What the plugin costs the commands that do not need it: behaviour, not timing.

A project without the table and a no-op install are watched the same way in
``test_core.py`` (on its kept project, which it installs anyway).

A ``sitecustomize`` put on ``PYTHONPATH`` watches the ``poetry`` process: which
of our modules it imported by the time it exited, and which processes it
started or sockets it connected while a frame of ours was on the stack.
``benchmarks/`` measures the time; ``nox -s bench`` runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.test_core import CU129
from tests.e2e.test_core import DEPS
from tests.e2e.test_core import ENTRY_POINT_ONLY
from tests.support.audit import Audit


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e


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


def test_the_plugin_hands_on_the_table_and_a_misspelling_of_it() -> None:
    """load_config names a misspelled table: the plugin must not stop before."""
    from types import SimpleNamespace

    from poetry_torch_cuda import plugins
    from poetry_torch_cuda.project import config

    def command(key: str) -> SimpleNamespace:
        data = {"tool": {"poetry": {}, key: {}}}
        pyproject = SimpleNamespace(pyproject=SimpleNamespace(data=data))
        return SimpleNamespace(name="install", poetry=pyproject)

    for key in (config.TABLE, "poetry_torch_cuda", "torch-cuda", "Poetry-Torch-CUDA"):
        assert plugins._has_table(command(key)), key
    for other in ("black", "torchx", "pytorch-cuda"):  # nothing of ours for them
        assert not plugins._has_table(command(other)), other
        assert config.load_config({"tool": {other: {}}}, {}) is None, other

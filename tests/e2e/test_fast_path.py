"""What the plugin costs the commands that do not need it: behaviour, not timing.

A ``sitecustomize`` put on ``PYTHONPATH`` watches the ``poetry`` process: which
of our modules it imported by the time it exited, and which processes it
started or sockets it connected while a frame of ours was on the stack.
``benchmarks/`` measures the time; ``nox -s bench`` runs it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest


if TYPE_CHECKING:
    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
CU129 = 'variant = "cu129"'
ENTRY_POINT_ONLY = ["poetry_torch_cuda", "poetry_torch_cuda.plugins"]

_WATCH = """\
import atexit, json, os, sys
_OUT = {out!r}
_PARENT = {parent}
_EVENTS = []
def _ours():
    frame = sys._getframe(1)
    while frame is not None:
        if "poetry_torch_cuda" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False
def _hook(event, args):
    if event in ("subprocess.Popen", "os.system", "os.posix_spawn", "socket.connect"):
        if _ours():
            _EVENTS.append([event, repr(args[1] if event == "subprocess.Popen" else args[-1])])
def _dump():
    modules = sorted(m for m in sys.modules if m.split(".")[0] == "poetry_torch_cuda")
    with open(_OUT, "w") as stream:
        json.dump({{"modules": modules, "events": _EVENTS}}, stream)
if os.getppid() == _PARENT:
    sys.addaudithook(_hook)
    atexit.register(_dump)
"""


def watched(project: Project, *args: str) -> tuple[list[str], list[list[str]]]:
    """Run ``poetry *args``; our modules it imported and what our code started."""
    directory = project.path.parent / "watch"
    directory.mkdir(exist_ok=True)
    out = directory / "out.json"
    out.unlink(missing_ok=True)
    (directory / "sitecustomize.py").write_text(
        _WATCH.format(out=str(out), parent=os.getpid())
    )
    project.run(*args, env_extra={"PYTHONPATH": str(directory)})
    report = json.loads(out.read_text())
    return report["modules"], report["events"]


def whl_requests(index: IndexServer) -> list[str]:
    return [path for path in index.requests if path.startswith("/whl/")]


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


def test_plugin_and_config_agree_on_the_table_name() -> None:
    from poetry_torch_cuda import plugins
    from poetry_torch_cuda.project import config

    assert plugins.TABLE == config.TABLE

"""Run a ``poetry`` command in the test's own process, with the plugin loaded.

Poetry's own tests and poetry-plugin-export's drive commands with cleo's
``ApplicationTester``; so does this helper. A fresh ``Application`` loads the
installed plugins (ours among them) exactly as ``poetry`` does, and fires the
same events, so listeners run too. Use it where the point of a test is logic
or wording; what is about processes, environments, pip or signals keeps the
real ``poetry`` executable (:meth:`Project.run`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from cleo.testers.application_tester import ApplicationTester

from tests.support.poetry_project import with_overrides


if TYPE_CHECKING:
    from collections.abc import Mapping

    import pytest
    from poetry.poetry import Poetry

    from poetry_torch_cuda.project.config import TorchCudaConfig
    from tests.support.poetry_project import Project

__all__ = ["Result", "in_project", "run_in", "run_inprocess"]

_STARTS = ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec")
#: While a command runs: the processes it starts (an audit hook cannot be removed,
#: so one hook is added once and records only into the current list).
_recording: list[list[str]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _recording and event.startswith(_STARTS):
        _recording[-1].append(f"{event} {args[1] if len(args) > 1 else args}")


sys.addaudithook(_audit)


@dataclass(frozen=True)
class Result:
    """What a command printed and its exit code, like ``CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str
    #: The processes the command started (audit events), none for a refusal.
    started: list[str] = field(default_factory=list)


def run_inprocess(
    project: Project, *args: str, env_extra: Mapping[str, str | None] | None = None
) -> Result:
    """``poetry --no-ansi *args`` in ``project``'s directory, in this process,
    with the project's isolated environment (plus ``env_extra``)."""
    return run_in(project.path, with_overrides(project.env, env_extra), *args)


def run_in(directory: Path, env: Mapping[str, str], *args: str) -> Result:
    """``poetry --no-ansi *args`` in ``directory`` with exactly ``env``, in this process.

    ``os.environ`` and the working directory are put back afterwards.
    """
    from poetry.config.config import Config
    from poetry.console.application import Application

    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(directory)
    # As a new process: Poetry merges a project's sources into its one Config.
    Config.create(reload=True)
    started: list[str] = []
    _recording.append(started)
    try:
        tester = ApplicationTester(Application())
        line = " ".join(_quoted(arg) for arg in args)
        code = tester.execute(line, decorated=False)
        return Result(code, tester.io.fetch_output(), tester.io.fetch_error(), started)
    finally:
        _recording.pop()
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def in_project(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> tuple[Poetry, TorchCudaConfig]:
    """``project``'s Poetry and configuration in this process, with exactly its
    isolated environment and its directory (both put back after the test): for
    tests that drive the plugin's internals on a real project."""
    from poetry.config.config import Config
    from poetry.factory import Factory

    from poetry_torch_cuda.project.config import load_config

    for key in set(os.environ) - set(project.env):
        monkeypatch.delenv(key)
    for key, value in project.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(project.path)
    Config.create(reload=True)  # as run_in: not an earlier project's sources
    poetry = Factory().create_poetry(project.path)
    config = load_config(poetry.pyproject.data)
    assert config is not None
    return poetry, config


def _quoted(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_=.,/:+" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"

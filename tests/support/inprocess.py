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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cleo.testers.application_tester import ApplicationTester

from tests.support.poetry_project import with_overrides


if TYPE_CHECKING:
    from collections.abc import Mapping

    from tests.support.poetry_project import Project

__all__ = ["Result", "run_inprocess"]


@dataclass(frozen=True)
class Result:
    """What a command printed and its exit code, like ``CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


def run_inprocess(
    project: Project, *args: str, env_extra: Mapping[str, str | None] | None = None
) -> Result:
    """``poetry --no-ansi *args`` in ``project``'s directory, in this process.

    The environment is the project's isolated one (plus ``env_extra``) for the
    duration of the call; ``os.environ`` and the working directory are put back.
    """
    from poetry.console.application import Application

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(with_overrides(project.env, env_extra))
    os.chdir(project.path)
    try:
        application = Application()
        tester = ApplicationTester(application)
        line = " ".join(_quoted(arg) for arg in args)
        code = tester.execute(line, decorated=False)
        return Result(code, tester.io.fetch_output(), tester.io.fetch_error())
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _quoted(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_=.,/:+" for c in arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"

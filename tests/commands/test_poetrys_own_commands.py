"""Where the plugin stays out of the way: outside any project, and over a
pyproject.toml that is not TOML, Poetry's commands print exactly what they print
with ``--no-plugins`` (in-process: the point is the output; moved from
tests/e2e/test_environments.py, whose real-process tests compare what is
installed)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from cleo.testers.application_tester import ApplicationTester
from poetry.console.application import Application
from poetry.console.commands.command import Command

from tests.support.audit import whl_requests
from tests.support.inprocess import in_project
from tests.support.inprocess import run_in
from tests.support.inprocess import run_inprocess
from tests.support.poetry_project import isolated_env
from tests.support.poetry_project import normalised


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer

DEPS = {"needs-torch": "*", "torchvision": "*"}


@pytest.mark.parametrize(
    "command",
    [
        ("install",),
        ("lock",),
        ("--version",),
        ("config", "--list"),
        ("env", "info", "--path"),
    ],
)
def test_commands_outside_any_project_are_untouched(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    empty = tmp_path / "nowhere"
    empty.mkdir()
    env = isolated_env(tmp_path)
    with_plugin = run_in(empty, env, *command)
    without = run_in(empty, env, "--no-plugins", *command)
    assert normalised(with_plugin, empty) == normalised(without, empty)
    assert "torch-cuda" not in with_plugin.stdout + with_plugin.stderr


def test_invalid_toml_gets_poetrys_own_message(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS, 'variant = "cu129"\n')
    broken = project.pyproject_text().replace(
        "[tool.poetry-torch-cuda]", "[tool.poetry-torch-cuda"
    )
    project.write_pyproject(broken)
    for command in (("install",), ("lock",)):
        with_plugin = run_inprocess(project, *command)
        without = run_inprocess(project, "--no-plugins", *command)
        assert with_plugin.returncode == 1
        assert normalised(with_plugin) == normalised(without)
        # Poetry's own wording, which differs between its releases.
        assert re.search(
            r"(?i)pyproject\.toml.*TOML|TOML.*pyproject\.toml", with_plugin.stderr
        )
    assert project.pyproject_text() == broken
    assert not project.lockfile.exists()


class StandInExport(Command):
    """What poetry-plugin-export registers (not installed here): ``poetry export``."""

    name = "export"

    def handle(self) -> int:
        return 0


@pytest.mark.parametrize(("disable", "warned"), [("0", True), ("1", False)])
def test_poetry_export_is_warned_about_unless_the_plugin_is_disabled(
    project_factory: ProjectFactory,
    monkeypatch: pytest.MonkeyPatch,
    disable: str,
    warned: bool,
) -> None:
    """README: with POETRY_TORCH_CUDA_DISABLE=1 Poetry behaves as if the plugin
    were not installed, so `poetry export` gets no word from it."""
    project = project_factory(DEPS, 'variant = "cu129"\n')
    in_project(project, monkeypatch)
    monkeypatch.setenv("POETRY_TORCH_CUDA_DISABLE", disable)
    application = Application()
    application.add(StandInExport())
    tester = ApplicationTester(application)
    assert tester.execute("export", decorated=False) == 0
    printed = tester.io.fetch_error()
    assert ("`poetry export` pins PyPI's build of torch" in printed) is warned, printed


def test_an_auto_project_without_torch_locks_without_asking_the_index(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    """poetry.lock locks no configured package: `poetry lock` asked every
    candidate of auto's index for torch's pages (about 40 requests, seconds)
    to write a torch-cuda.lock with no variant in it."""
    project = project_factory({"filelock": "*"}, 'variant = "auto"')
    result = run_inprocess(project, "lock")
    assert result.returncode == 0, result
    assert "poetry.lock locks no configured package" in result.stdout, result
    assert whl_requests(index) == []


def test_no_cache_makes_the_relock_ask_the_index_again(
    project_factory: ProjectFactory, index: IndexServer
) -> None:
    """`poetry lock --no-cache` (Poetry: "as if it had a cold cache") re-locked
    torch-cuda.lock from the index pages the plugin had cached up to 10 minutes
    before: a build withdrawn (or published) meanwhile went unseen."""
    project = project_factory(DEPS, 'variant = "cu129"')
    assert run_inprocess(project, "lock").returncode == 0
    index.fail_paths["/whl/cu129/torch/"] = 404  # the index no longer has it
    cached = run_inprocess(project, "lock", "--regenerate")
    assert "could not update torch-cuda.lock" not in cached.stderr, cached
    result = run_inprocess(project, "lock", "--regenerate", "--no-cache")
    assert result.returncode == 0, result
    assert "could not update torch-cuda.lock: cannot lock torch" in result.stderr


def test_a_bug_of_ours_in_a_hook_says_how_to_see_its_traceback_once(
    project_factory: ProjectFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in the after-step is one line naming it and the way
    on; with -vvv the traceback came first and the line still said to run the
    command again with -vvv for it."""
    from poetry_torch_cuda import hooks

    def bug(ctx: object) -> None:
        raise RuntimeError("a bug")

    project = project_factory(DEPS, 'variant = "cu129"\n')
    monkeypatch.setattr(hooks, "_check_lock", bug)
    line = "poetry-torch-cuda failed unexpectedly: RuntimeError: a bug."
    disable = "POETRY_TORCH_CUDA_DISABLE=1 leaves torch to Poetry meanwhile."
    plain = run_inprocess(project, "lock")
    assert plain.returncode == 1, plain
    assert plain.stderr.endswith(
        f"\n{line} Run the command again with -vvv for the traceback; {disable}\n"
    ), plain
    assert "Traceback" not in plain.stderr, plain
    debug = run_inprocess(project, "lock", "-vvv")
    assert debug.returncode == 1, debug
    assert "Traceback (most recent call last)" in debug.stderr, debug
    assert debug.stderr.endswith(f"\n{line} {disable}\n"), debug

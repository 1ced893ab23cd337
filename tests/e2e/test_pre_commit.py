"""The repository's pre-commit hooks, run by ``pre-commit try-repo`` on a project.

pre-commit builds the hook environment as for any ``language: python`` hook:
a virtualenv into which pip installs this repository (Poetry comes in as its
dependency). pip is pointed at a local index holding Poetry's closure
(:mod:`tests.support.selfadd`), so the test runs offline.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.e2e.test_readme import bot_locked
from tests.e2e.test_recipes import yaml_blocks
from tests.support.fixtures import served
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.poetry_project import poetry_executable
from tests.support.processes import captured
from tests.support.published import build_published_universe
from tests.support.selfadd import closure
from tests.support.selfadd import index_root


if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.index import IndexServer


pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LOCK_FILES = ("pyproject.toml", "poetry.lock", "torch-cuda.lock")


@pytest.fixture(scope="module")
def hook_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """PyTorch's published builds and Poetry's closure, for the project and the hook env."""
    pytest.importorskip("pre_commit", reason="the test requirements install pre-commit")
    universe = build_published_universe(tmp_path_factory.mktemp("published"))
    yield from served(index_root(universe.root, closure()))


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One hook environment for the module's tests (pre-commit keys it on the repo)."""
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(
    project: Project, hook: str, index: IndexServer, home: Path
) -> subprocess.CompletedProcess[str]:
    """``pre-commit try-repo <this repository> HOOK --files <the lock files>``."""
    env = {
        **project.env,
        "PRE_COMMIT_HOME": str(home),
        "PIP_INDEX_URL": index.pypi_url,
        "VIRTUALENV_OVERRIDE_APP_DATA": str(home / "virtualenv"),
    }
    return subprocess.run(
        [
            *(sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), hook),
            *("--files", *LOCK_FILES),
        ],
        cwd=project.path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _git_project(project: Project) -> Project:
    for args in (["init", "-q"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=project.path, check=True)
    return project


def test_the_hooks_check_then_mend_a_lock_a_bot_left_behind(
    tmp_path: Path, hook_index: IndexServer, pre_commit_home: Path
) -> None:
    project = _git_project(bot_locked(tmp_path, hook_index))

    check = try_repo(project, "torch-cuda-lock-check", hook_index, pre_commit_home)
    assert check.returncode == 1, describe(check)
    assert "torch-cuda-lock-check" in check.stdout
    assert "Failed" in check.stdout, describe(check)
    assert "torch-cuda.lock does not match" in check.stdout, describe(check)

    before = (project.path / "torch-cuda.lock").read_text()
    relock = try_repo(project, "torch-cuda-lock", hook_index, pre_commit_home)
    # A hook that rewrites a file fails the commit so that the file is added.
    assert relock.returncode == 1, describe(relock)
    assert "files were modified by this hook" in relock.stdout, describe(relock)
    assert (project.path / "torch-cuda.lock").read_text() != before

    again = try_repo(project, "torch-cuda-lock-check", hook_index, pre_commit_home)
    assert again.returncode == 0, describe(again)
    assert "Passed" in again.stdout


def test_the_hooks_are_declared_as_poetrys_own() -> None:
    """Names, entries and file patterns users write in .pre-commit-config.yaml."""
    hooks = {
        hook["id"]: hook
        for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    }
    assert hooks["torch-cuda-lock-check"]["entry"] == "poetry torch-cuda lock --check"
    assert hooks["torch-cuda-lock"]["entry"] == "poetry torch-cuda lock"
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["pass_filenames"] is False
        for name in (*LOCK_FILES, "sub/pyproject.toml"):
            assert re.search(hook["files"], name), (hook["id"], name)
        assert not re.search(hook["files"], "README.md")


def test_pre_commit_ci_skips_the_hook_that_asks_the_index() -> None:
    """pre-commit.ci runs hooks without network access (pre-commit-ci/issues#47):
    the README's ``ci: skip`` names the re-locking hook, and only it (the check
    asks no index)."""
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (block,) = yaml_blocks("pre-commit-ci")
    skipped = yaml.safe_load(block)["ci"]["skip"]
    assert skipped == [h["id"] for h in hooks if "--check" not in h["entry"]]


def test_a_project_in_a_subdirectory_is_checked_with_the_readmes_args(
    tmp_path: Path, index: IndexServer
) -> None:
    """pre-commit runs a hook's entry at the repository's root, also for the
    ``sub/pyproject.toml`` its ``files`` pattern admits: the README's ``args``
    point Poetry at the project, as for Poetry's own hooks."""
    hooks = {
        hook["id"]: hook
        for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    }
    (block,) = yaml_blocks("pre-commit-subdirectory")
    (hook,) = yaml.safe_load(block)
    entry = hooks[hook["id"]]["entry"].split()
    (folder,) = [arg for arg in hook["args"] if not arg.startswith("-")]
    project = Project.create(
        tmp_path / "repo", index, {"torch": "*"}, 'variant = "cu129"\n', name=folder
    )
    project.run("lock")
    poetry = [str(poetry_executable()), "--no-ansi", *entry[1:]]
    bare, given = (
        captured(command, cwd=tmp_path / "repo", env=project.env, timeout=300)
        for command in (poetry, [*poetry, *hook["args"]])
    )
    assert bare.returncode == 1, describe(bare)  # no pyproject.toml at the root
    assert given.returncode == 0, describe(given)
    assert "torch-cuda.lock matches poetry.lock" in given.stdout

"""The README's recipes for dependency bots and CI, run against local indexes.

A dependency bot (Renovate, Dependabot) runs plain ``poetry lock`` in its own
sandbox, without the plugin: ``torch-cuda.lock`` then no longer matches, the
next ``lock --check`` fails and names the command that mends it, and the
recipe's job (``poetry torch-cuda lock`` on the bot's branch) mends it. The
commands of the recipes' YAML blocks are read from the README and run here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import yaml

from tests.e2e.test_readme import bot_locked
from tests.e2e.test_readme import ci_project
from tests.support.fake_torch import make_demo_builds
from tests.support.fixtures import reset_around
from tests.support.fixtures import served
from tests.support.poetry_project import describe
from tests.support.published import VARIANTS
from tests.support.published import build_published_universe


if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.index import IndexServer


pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def recipes_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """The README's indexes: PyTorch's published builds, verifiable without a GPU."""
    universe = build_published_universe(tmp_path_factory.mktemp("published"))
    make_demo_builds(universe, VARIANTS)
    yield from served(universe.root)


@pytest.fixture
def published_index(recipes_server: IndexServer) -> Iterator[IndexServer]:
    yield from reset_around(recipes_server)


def yaml_blocks(marker: str, fence: str = "```yaml") -> list[str]:
    """The ```` ```yaml ```` (``fence``) blocks right after ``<!-- recipe: MARKER -->``
    in README.md."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != f"<!-- recipe: {marker} -->":
            continue
        start = next(i for i in range(number + 1, len(lines)) if lines[i].strip())
        assert lines[start].strip() == fence, (
            f"README line {start + 1}: no {fence} block"
        )
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == "```")
        blocks.append("\n".join(lines[start + 1 : end]))
    return blocks


def poetry_commands(block: str) -> list[tuple[list[str], dict[str, str]]]:
    """The ``poetry …`` commands a recipe's shell lines run, in order, with their env.

    A GitHub Actions job: its steps' ``run`` lines with the job's and the step's
    ``env``; a GitLab CI job: its ``script`` lines with its ``variables``.
    """
    document = yaml.safe_load(block)
    runs: list[tuple[str, dict[str, str]]] = []
    for job in (document.get("jobs") or document).values():
        if not isinstance(job, dict):
            continue
        for step in job.get("steps", []):
            if "run" in step:
                runs.append(
                    (step["run"], {**job.get("env", {}), **step.get("env", {})})
                )
        runs += [(line, job.get("variables", {})) for line in job.get("script", [])]
    commands = []
    for text, env in runs:
        for line in text.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "poetry":
                    commands.append((words[1:], {k: str(v) for k, v in env.items()}))
    return commands


def test_a_bots_lock_fails_lock_check(
    tmp_path: Path, published_index: IndexServer
) -> None:
    project = bot_locked(tmp_path, published_index)
    check = project.run("torch-cuda", "lock", "--check", check=False)
    assert check.returncode == 1, describe(check)
    assert "torch-cuda.lock does not match" in check.stdout + check.stderr


def test_lock_check_after_a_bot_names_the_command_that_mends_it(
    tmp_path: Path, published_index: IndexServer
) -> None:
    project = bot_locked(tmp_path, published_index)
    check = project.run("torch-cuda", "lock", "--check", check=False)
    assert check.returncode == 1, describe(check)
    assert "`poetry torch-cuda lock`" in check.stdout + check.stderr, describe(check)


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_the_bot_recipe_mends_the_lock(
    ci: str, tmp_path: Path, published_index: IndexServer
) -> None:
    (block,) = [b for b in yaml_blocks("dependency-bots") if _ci_of(b) == ci]
    commands = poetry_commands(block)
    assert (["torch-cuda", "lock"], {}) in commands, block
    project = bot_locked(tmp_path, published_index)
    for args, env in commands:
        result = project.run(*args, env_extra=env, check=False)
        assert result.returncode == 0, describe(result)
    assert project.run("torch-cuda", "lock", "--check").returncode == 0


def test_the_bots_keep_updating_a_branch_the_recipe_committed_to() -> None:
    """A bot stops rebasing its branch once another author pushed to it, unless told
    that author's commits may go: Dependabot by ``[dependabot skip]`` in the commit
    message (GitHub's "Managing pull requests for dependency updates"), Renovate by
    ``gitIgnoredAuthors`` in its configuration, which the README shows."""
    (renovate,) = [yaml.safe_load(b) for b in yaml_blocks("renovate", "```json")]
    for block in yaml_blocks("dependency-bots"):
        (author,) = re.findall(r'user\.email="?([^"\s]+)', block)
        assert author in renovate["gitIgnoredAuthors"], block
        if "dependabot/" in block:
            (message,) = re.findall(r'commit -m "([^"]+)"', block)
            assert "[dependabot skip]" in message, block


def test_the_gitlab_recipe_pushes_to_an_instance_on_another_port() -> None:
    """GitLab's predefined variables for https://gitlab.example.com:8443 (its
    "Predefined CI/CD variables"): CI_SERVER_HOST has no port, CI_SERVER_FQDN
    (GitLab >= 16.10) has it; the push goes there, over https."""
    instance = {
        "CI_SERVER_HOST": "gitlab.example.com",
        "CI_SERVER_PORT": "8443",
        "CI_SERVER_FQDN": "gitlab.example.com:8443",
        "CI_SERVER_URL": "https://gitlab.example.com:8443",
        "CI_PROJECT_PATH": "group/project",
        "CI_COMMIT_BRANCH": "renovate/torch-2.x",
        "RELOCK_TOKEN": "token",
    }
    (block,) = [b for b in yaml_blocks("dependency-bots") if _ci_of(b) == "gitlab"]
    (job,) = yaml.safe_load(block).values()
    (push,) = [line for line in job["script"] if line.startswith("git push")]
    url = urlsplit(shlex.split(Template(push).substitute(instance))[2])
    assert (url.scheme, url.hostname, url.port) == ("https", "gitlab.example.com", 8443)
    assert url.path == "/group/project.git", push


def test_the_gpu_less_ci_recipe_runs_its_commands(
    tmp_path: Path, published_index: IndexServer
) -> None:
    """The CI job of the README: a cpu install, the lock check, the fleet, verify."""
    (block,) = yaml_blocks("gpu-less-ci")
    commands = poetry_commands(block)
    cpu = {"POETRY_TORCH_CUDA_VARIANT": "cpu"}
    assert commands == [
        (["torch-cuda", "lock", "--check"], {}),
        (["install"], cpu),
        (["torch-cuda", "verify"], cpu),
        (["torch-cuda", "status", "--check"], cpu),
    ], block
    project = ci_project(tmp_path, published_index)
    for args, env in commands:
        result = project.run(*args, env_extra=env, check=False)
        assert result.returncode == 0, describe(result)
    assert project.installed()["torch"] == "2.14.1+cpu"
    # The check that guards the fleet fails where a target cannot run the variant.
    project.write_pyproject(project.pyproject_text().replace('"9.0"', '"5.0"'))
    project.run("lock")
    fleet = project.run("torch-cuda", "status", "--check", env_extra=cpu, check=False)
    assert fleet.returncode == 1, describe(fleet)
    assert "target training" in fleet.stdout + fleet.stderr
    assert "cannot run there" in fleet.stdout + fleet.stderr, describe(fleet)


def _ci_of(block: str) -> str:
    return "gitlab" if "script:" in block else "github"

"""Where the plugin acts and where it stays out of the way."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.audit import Audit
from tests.support.poetry_project import Project
from tests.support.poetry_project import normalised


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.fixtures import ProjectFactory
    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

DEPS = {"needs-torch": "*", "torchvision": "*"}
CU129 = 'variant = "cu129"\n'
BROKEN = 'variant = "cu12x"\n'


def plugin_pip_installs(audit: Audit) -> list[list[str]]:
    """The ``pip install`` runs the plugin started (it always passes this flag)."""
    commands = [event.argv for event in audit.started()]
    return [
        c for c in commands if "install" in c and "--disable-pip-version-check" in c
    ]


def test_venv_without_pip_still_gets_its_variant(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS, CU129)
    project.env["POETRY_VIRTUALENVS_OPTIONS_NO_PIP"] = "true"
    project.run("install")
    installed = project.installed()
    assert "pip" not in installed
    assert installed["torch"] == "2.14.1+cu129"
    assert installed["torchvision"] == "0.29.1+cu129"
    assert installed["nvidia-cublas-cu12"] == "12.9.1.4"
    project.run("torch-cuda", "switch", "cpu")
    installed = project.installed()
    assert installed["torch"] == "2.14.1+cpu"
    assert "pip" not in installed


def test_project_without_table_is_exactly_as_without_plugin(
    tmp_path: Path, index: IndexServer
) -> None:
    runs = {}
    for plugins in ("on", "off"):
        project = Project.create(tmp_path / plugins, index, DEPS)
        flags = () if plugins == "on" else ("--no-plugins",)
        results = [project.run(command, *flags) for command in ("lock", "install")]
        results.append(project.run("add", *flags, "tinyutil==1.0.0"))
        runs[plugins] = (
            [normalised(result, project.path) for result in results],
            project.installed(),
            project.lockfile.read_bytes(),
            project.pyproject.read_bytes(),
        )
    assert runs["on"] == runs["off"]
    outputs, installed, _, _ = runs["on"]
    assert installed["torch"] == "2.14.1"  # PyPI's default build, as Poetry does
    assert "torch-cuda" not in repr(outputs)


@pytest.mark.parametrize(
    "command",
    [("self", "lock"), ("self", "install", "--dry-run"), ("self", "show")],
)
def test_poetry_self_commands_are_untouched(
    project_factory: ProjectFactory, index: IndexServer, command: tuple[str, ...]
) -> None:
    """Same output and exit code as without the plugin, even run inside a project
    whose own table is broken."""
    project = project_factory(DEPS, BROKEN)
    # Poetry's own project resolves from the fake index: offline, and fast.
    config_dir = project.path.parent / "poetry-home" / "config"
    (config_dir / "pyproject.toml").write_text(
        '[tool.poetry]\nname = "poetry-instance"\nversion = "0"\n'
        f'[[tool.poetry.source]]\nname = "fakepypi"\nurl = "{index.pypi_url}"\n'
        'priority = "primary"\n'
    )
    with_plugin = project.run(*command, check=False)
    without = project.run("--no-plugins", *command, check=False)
    assert normalised(with_plugin, project.path) == normalised(without, project.path)
    assert "cu12x" not in with_plugin.stdout + with_plugin.stderr
    assert not project.venv.exists()


@pytest.mark.parametrize("command", [("add", "tinyutil==1.0.0"), ("update",)])
def test_commands_that_lock_run_the_after_step_once(
    project_factory: ProjectFactory, command: tuple[str, ...]
) -> None:
    project = project_factory(DEPS, CU129)
    project.run("install")
    audit = Audit(project.path / "audit")
    result = project.run(
        *command, env_extra={**audit.env(), "POETRY_TORCH_CUDA_VARIANT": "cu130"}
    )
    assert len(plugin_pip_installs(audit)) == 1
    assert result.stdout.count("torch-cuda: cu130: installed torch 2.14.1+cu130") == 1
    assert project.installed()["torch"] == "2.14.1+cu130"


def test_no_plugins_flag_leaves_everything_to_poetry(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS, CU129)
    result = project.run("install", "--no-plugins")
    installed = project.installed()
    assert installed["torch"] == "2.14.1"
    assert (
        "nvidia-cublas" in installed
    )  # PyPI's CUDA 13 wheels, as Poetry installs them
    assert "torch-cuda" not in result.stdout + result.stderr


def test_disable_variable_ignores_even_a_broken_table(
    project_factory: ProjectFactory,
) -> None:
    project = project_factory(DEPS, BROKEN)
    result = project.run("install", env_extra={"POETRY_TORCH_CUDA_DISABLE": "1"})
    assert project.installed()["torch"] == "2.14.1"
    assert "torch-cuda" not in result.stdout + result.stderr

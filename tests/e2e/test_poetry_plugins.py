"""The plugin installed the ways Poetry installs plugins, end to end and offline.

- ``poetry self add /abs/path/poetry_torch_cuda-….whl`` into a fresh Poetry (its own
  venv, as pipx makes it), then ``poetry torch-cuda status`` through it;
- ``[tool.poetry.requires-plugins]`` in a project: a fresh Poetry without the plugin
  installs it into the project's ``.poetry/plugins`` on the first command;
- Poetry's own ``poetry export -f pylock.toml`` (poetry-plugin-export >= 1.10)
  warns that it pins PyPI's torch and names ``poetry torch-cuda export``.

Poetry resolves its own dependencies for each: they come from a local index
holding Poetry's closure (:mod:`tests.support.selfadd`; downloaded once into a
cache). The README's Install section shows the first two with the lines these
tests print; :func:`readme_lines` reads them from there.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from packaging.version import Version

from tests.e2e.test_readme import missing_lines
from tests.e2e.test_readme import parse_readme
from tests.support.fixtures import served
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.processes import captured
from tests.support.published import build_published_universe
from tests.support.selfadd import POETRY
from tests.support.selfadd import closure
from tests.support.selfadd import fresh_poetry
from tests.support.selfadd import index_root
from tests.support.selfadd import pip_install
from tests.support.selfadd import plugin_wheel


if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.index import IndexServer


pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
VERSION = re.compile(r"(?<![\w.])v?\d+(?:\.\d+)+(?![\w.]*\d)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return plugin_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def closure_index(
    tmp_path_factory: pytest.TempPathFactory, wheel: Path
) -> Iterator[IndexServer]:
    """PyTorch's published builds, Poetry's closure and the plugin's wheel on 127.0.0.1."""
    universe = build_published_universe(tmp_path_factory.mktemp("closure"))
    yield from served(index_root(universe.root, closure(), wheels=[wheel]))


@pytest.fixture(scope="module")
def poetry_kept(
    tmp_path_factory: pytest.TempPathFactory, closure_index: IndexServer
) -> tuple[Path, Path]:
    """A Poetry in a venv of its own, as pipx makes it, and an untouched copy of it."""
    root = tmp_path_factory.mktemp("pipx")
    fresh_poetry(root / "pipx-poetry", closure_index)
    shutil.copytree(root / "pipx-poetry", root / "untouched", symlinks=True)
    return root / "pipx-poetry", root / "untouched"


@pytest.fixture
def pipx_poetry(poetry_kept: tuple[Path, Path]) -> Path:
    """The venv of :func:`poetry_kept`, put back as made (at the path its scripts
    name) before each test: what one test adds to it the next does not see."""
    directory, copy = poetry_kept
    shutil.rmtree(directory)
    shutil.copytree(copy, directory, symlinks=True)
    return directory


def readme_lines(name: str) -> list[tuple[str, list[str]]]:
    """The commands and lines of the README block marked ``… (NAME)``."""
    blocks = [
        block
        for block in parse_readme(README.read_text(encoding="utf-8"))
        if block.marker and block.marker.endswith(f"({name})")
    ]
    assert len(blocks) == 1, f"README.md has no one console block marked ({name})"
    return [(command.line, command.expected) for command in blocks[0].commands]


def _normalise(line: str, replacements: dict[str, str]) -> str:
    for text, shown in replacements.items():
        line = line.replace(text, shown)
    return " ".join(VERSION.sub("<version>", line).split())


def assert_shows(
    name: str, step: int, printed: str, replacements: dict[str, str]
) -> None:
    """Every line the README shows under its ``step``-th command was printed, in order."""
    command, expected = readme_lines(name)[step]
    got = [
        _normalise(line, replacements) for line in printed.splitlines() if line.strip()
    ]
    want = [_normalise(line, replacements) for line in expected]
    missing = missing_lines(want, got)
    assert not missing, (
        f"README ({name}) `$ {command}` shows {missing[0]!r}, not printed:\n{printed}"
    )


def _status_project(tmp_path: Path, index: IndexServer, extra: str = "") -> Project:
    project = Project.create(tmp_path, index, {"torch": "*"}, 'variant = "cpu"\n')
    if extra:
        project.write_pyproject(project.pyproject_text() + extra)
    return project


def test_poetry_self_add_of_the_wheel_then_status(
    tmp_path: Path, closure_index: IndexServer, wheel: Path, pipx_poetry: Path
) -> None:
    poetry = pipx_poetry / "bin" / "poetry"
    project = _status_project(tmp_path, closure_index)
    env = project.env
    # `poetry self` reads its sources from the pyproject.toml in Poetry's config
    # directory: here the local index instead of PyPI.
    config = Path(env["POETRY_CONFIG_DIR"])
    (config / "pyproject.toml").write_text(
        "[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "mirror"\nurl = "{closure_index.pypi_url}"\n'
        'priority = "primary"\n'
    )
    before = captured([str(poetry), "--no-ansi", "list"], env=env, cwd=project.path)
    assert "torch-cuda" not in before.stdout, before.stdout

    add = captured(
        [str(poetry), "--no-ansi", "self", "add", str(wheel)],
        env=env,
        cwd=project.path,
        timeout=600,
    )
    assert add.returncode == 0, describe(add)
    install, status = (
        captured(
            [str(poetry), "--no-ansi", *args], env=env, cwd=project.path, timeout=300
        )
        for args in (["install"], ["torch-cuda", "status"])
    )
    print(add.stdout, install.stdout, status.stdout, sep="\n")  # for a README change
    assert install.returncode == 0, describe(install)
    assert project.installed()["torch"] == "2.14.1+cpu"
    assert status.returncode == 0, describe(status)
    assert "cpu (from [tool.poetry-torch-cuda] variant)" in status.stdout
    shown = {str(wheel.parent): "$PWD/dist", str(project.path): "<project>"}
    for step, printed in enumerate((add, install, status)):
        assert_shows("self-add", step, printed.stdout + printed.stderr, shown)


def test_requires_plugins_installs_it_for_the_project_on_the_first_command(
    tmp_path: Path, closure_index: IndexServer, pipx_poetry: Path
) -> None:
    poetry = pipx_poetry / "bin" / "poetry"
    project = _status_project(
        tmp_path,
        closure_index,
        '\n[tool.poetry.requires-plugins]\npoetry-torch-cuda = ">=0.1,<1"\n',
    )
    # Only `poetry install` installs the project's plugins, and Poetry loads
    # plugins before it runs: this first run is Poetry's alone. With --only-root
    # it installs the plugin and no dependency: PyPI's torch (on Linux with its
    # CUDA wheels) is never downloaded.
    commands = [command for command, _ in readme_lines("requires-plugins")]
    assert commands[0].startswith("poetry install --only-root"), commands
    first = captured(
        [str(poetry), "--no-ansi", "install", "--only-root"],
        env=project.env,
        cwd=project.path,
        timeout=600,
    )
    assert first.returncode == 0, describe(first)
    assert not {"torch", "triton"} & set(project.installed()), project.installed()
    second, status = (
        captured(
            [str(poetry), "--no-ansi", *args],
            env=project.env,
            cwd=project.path,
            timeout=600,
        )
        for args in (["install"], ["torch-cuda", "status"])
    )
    print(first.stdout, second.stdout, status.stdout, sep="\n")  # for a README change
    assert second.returncode == 0, describe(second)
    assert status.returncode == 0, describe(status)
    assert "torch-cuda: cpu: installed torch 2.14.1+cpu" in second.stdout
    assert "removed" not in second.stdout, describe(second)
    assert project.installed()["torch"] == "2.14.1+cpu"
    assert "cpu (from [tool.poetry-torch-cuda] variant)" in status.stdout
    plugins = project.path / ".poetry" / "plugins"
    assert list(plugins.glob("poetry_torch_cuda-*.dist-info")), sorted(
        plugins.iterdir()
    )
    # Poetry's own environment did not get it: only this project has it.
    site = next(pipx_poetry.glob("lib/python*/site-packages"))
    assert not list(site.glob("poetry_torch_cuda*")), "installed into Poetry's own env"
    shown = {str(project.path): "<project>"}
    for step, printed in enumerate((first, second, status)):
        assert_shows("requires-plugins", step, printed.stdout + printed.stderr, shown)


@pytest.mark.skipif(
    Version(POETRY) < Version("2.3"),
    reason=f"Poetry {POETRY} predates pylock.toml export (Poetry >= 2.3, "
    "poetry-plugin-export >= 1.10)",
)
def test_poetrys_own_pylock_export_warns_and_names_torch_cuda_export(
    tmp_path: Path, closure_index: IndexServer, wheel: Path, pipx_poetry: Path
) -> None:
    poetry = pip_install(
        pipx_poetry,
        closure_index,
        f"poetry=={POETRY}",
        "poetry-plugin-export>=1.10",
        str(wheel),
    )
    project = Project.create(
        tmp_path, closure_index, {"tomlkit": "*"}, 'variant = "cu130"\n'
    )
    lock = captured(
        [str(poetry), "--no-ansi", "lock"],
        env=project.env,
        cwd=project.path,
        timeout=300,
    )
    assert lock.returncode == 0, describe(lock)
    export = captured(
        [str(poetry), "--no-ansi", "export", "-f", "pylock.toml", "-o", "pylock.toml"],
        env=project.env,
        cwd=project.path,
        timeout=300,
    )
    assert export.returncode == 0, describe(export)
    assert (project.path / "pylock.toml").is_file()
    printed = " ".join((export.stdout + export.stderr).split())
    assert "`poetry export` pins PyPI's build of torch" in printed, describe(export)
    assert "`poetry torch-cuda export --variant <variant>`" in printed

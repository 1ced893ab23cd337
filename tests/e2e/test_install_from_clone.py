"""The README's Install route from a clone, done the way a new user would.

Builds the wheel from this checkout with ``poetry build``, installs it with pip
into a fresh virtualenv together with the same Poetry release (what the README
says for Poetry installed with pip), and runs that Poetry's
``poetry torch-cuda status`` in a project. Poetry and its dependencies come
from a local index of PyPI's own wheels (:mod:`tests.support.selfadd`,
downloaded once), so pip resolves offline and the test does not wait on PyPI.
"""

from __future__ import annotations

import venv
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.fixtures import served
from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.poetry_project import isolated_env
from tests.support.poetry_project import poetry_executable
from tests.support.processes import captured
from tests.support.selfadd import closure
from tests.support.selfadd import index_root
from tests.support.selfadd import pip_install


if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def closure_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """Poetry's closure (PyPI's wheels) on 127.0.0.1."""
    yield from served(index_root(tmp_path_factory.mktemp("closure"), closure()))


def install_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Install")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_names_the_commands_this_test_runs() -> None:
    section = install_section()
    for command in (
        "poetry build --format wheel",
        "python -m build --wheel",
        "python -m pip install ./dist/poetry_torch_cuda-",
        'poetry self add "$PWD/dist/poetry_torch_cuda-',  # relative: Poetry's config dir
        "pipx inject poetry ./dist/poetry_torch_cuda-",
        "poetry torch-cuda status",
    ):
        assert command in section, f"README's Install section lacks {command!r}"


def test_a_wheel_built_from_the_clone_installs_into_a_fresh_poetry(
    tmp_path: Path, index: IndexServer, closure_index: IndexServer
) -> None:
    env = isolated_env(tmp_path)
    build = captured(
        [
            str(poetry_executable()),
            *("build", "--format", "wheel", "--output", str(tmp_path / "dist")),
        ],
        cwd=ROOT,
        env=env,
    )
    assert build.returncode == 0, describe(build)
    (wheel,) = (tmp_path / "dist").glob("poetry_torch_cuda-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    # dist-info/licenses/LICENSE (PEP 639), or dist-info/LICENSE from older cores
    licenses = [n for n in names if ".dist-info/" in n and n.endswith("/LICENSE")]
    assert licenses, names

    fresh = tmp_path / "fresh-poetry"
    venv.EnvBuilder(with_pip=True).create(fresh)
    python = fresh / "bin" / "python"
    pip_install(fresh, closure_index, f"poetry=={version('poetry')}", str(wheel))

    where = captured(
        [
            str(python),
            "-c",
            "import poetry_torch_cuda; print(poetry_torch_cuda.__file__)",
        ],
        check=True,
    )
    assert where.stdout.strip().startswith(str(fresh)), where.stdout

    project = Project.create(tmp_path, index, {"torch": "*"}, 'variant = "cu129"\n')
    status = captured(
        [str(fresh / "bin" / "poetry"), "--no-ansi", "torch-cuda", "status"],
        cwd=project.path,
        env=project.env,
        timeout=300,
    )
    assert status.returncode == 0, describe(status)
    assert "cu129 (from [tool.poetry-torch-cuda] variant)" in status.stdout

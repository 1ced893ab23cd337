"""The README's Install route from a clone, done the way a new user would.

Builds the wheel from this checkout with ``poetry build``, installs it with pip
into a fresh virtualenv together with the same Poetry release (what the README
says for Poetry installed with pip), and runs that Poetry's
``poetry torch-cuda status`` in a project. Poetry itself comes from PyPI
through pip (its cache makes later runs quick); without PyPI the test skips.
"""

from __future__ import annotations

import venv
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.poetry_project import Project
from tests.support.poetry_project import describe
from tests.support.poetry_project import isolated_env
from tests.support.poetry_project import poetry_executable
from tests.support.processes import captured


if TYPE_CHECKING:
    from tests.support.index import IndexServer

pytestmark = [pytest.mark.e2e, pytest.mark.long]

ROOT = Path(__file__).resolve().parents[2]
#: What pip prints when it cannot reach an index.
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "No route")


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
    tmp_path: Path, index: IndexServer
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
    install = captured(
        [
            str(python),
            "-m",
            "pip",
            "install",
            f"poetry=={version('poetry')}",
            str(wheel),
        ],
        env=env,
        timeout=600,
    )
    if install.returncode != 0 and any(
        sign in install.stdout + install.stderr for sign in OFFLINE
    ):
        pytest.skip("PyPI is not reachable: Poetry cannot be installed from it")
    assert install.returncode == 0, describe(install)

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

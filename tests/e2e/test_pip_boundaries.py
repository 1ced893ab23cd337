"""pip works inside the plugin's lane: it never moves what Poetry manages."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.catalog import build_universe
from tests.support.fixtures import served
from tests.support.poetry_project import Project


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.index import IndexServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def greedy_index(tmp_path: Path) -> Iterator[IndexServer]:
    """A variant whose torch wants a newer filelock than Poetry locked, which it also serves."""
    universe = build_universe(tmp_path / "universe")
    universe.add_wheel("cu127", "torch", "2.14.1+cu127", ["filelock>=3.21"])
    universe.add_wheel("cu127", "filelock", "3.21.0")
    yield from served(universe.root)


def test_pip_may_not_upgrade_a_poetry_managed_package(
    tmp_path: Path, greedy_index: IndexServer
) -> None:
    project = Project.create(
        tmp_path,
        greedy_index,
        {"torch": "*", "filelock": "3.20.0"},
        'variant = "cu127"\npackages = ["torch"]\n',
    )
    result = project.run("install", check=False)
    assert result.returncode == 1
    assert "pip could not install torch==2.14.1+cu127" in result.stderr
    assert "depends on filelock>=3.21" in result.stderr  # pip's own reason
    assert "align them in pyproject.toml" in result.stderr
    installed = project.installed()
    assert installed["filelock"] == "3.20.0"
    assert "torch" not in installed

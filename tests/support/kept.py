"""A project built once by real Poetry, put back byte for byte before each test.

Many e2e tests open the same way: a project installed by ``poetry install``
(lock, venv, pip, the plugin's after-step), then the step under test. Building
that once per module (per pytest-xdist worker) and copying it back before each
test gives every test the state a fresh install leaves, at the cost of a copy.

The copy goes back to the *same* path, with Poetry's home (cache, config, data)
beside it, so every absolute path the venv, the locks or the caches hold stays
true: nothing a test sees differs from a project it installed itself.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.poetry_project import Project


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping

    from tests.support.index import IndexServer

__all__ = ["Kept", "installed_once", "kept_install"]


@dataclass(frozen=True)
class Kept:
    """``project`` and its Poetry home as they were when :meth:`keep` was called."""

    project: Project
    root: Path
    copy: Path

    @classmethod
    def keep(cls, project: Project) -> Kept:
        """Copy ``project``'s directory and its Poetry home aside (both live in
        ``project.path.parent``, as :meth:`Project.create` lays them out)."""
        root = project.path.parent
        for key in ("POETRY_CACHE_DIR", "POETRY_CONFIG_DIR", "POETRY_DATA_DIR"):
            assert Path(project.env[key]).is_relative_to(root), (key, root)
        copy = root.with_name(f"{root.name}.kept")
        shutil.copytree(root, copy, symlinks=True)
        return cls(project, root, copy)

    def fresh(self) -> Project:
        """The project exactly as kept (whatever the last test did to it)."""
        shutil.rmtree(self.root)
        shutil.copytree(self.copy, self.root, symlinks=True)
        return replace(self.project, env=dict(self.project.env))


def installed_once(
    index: IndexServer,
    tmp_path_factory: pytest.TempPathFactory,
    dependencies: Mapping[str, str],
    torch_cuda: str,
) -> Kept:
    """For a module-scoped fixture: a project ``poetry install`` built, kept."""
    project = Project.create(
        tmp_path_factory.mktemp("kept"), index, dependencies, torch_cuda
    )
    project.run("install")
    return Kept.keep(project)


def kept_install(
    dependencies: Mapping[str, str], torch_cuda: str
) -> Callable[..., Kept]:
    """The module-scoped fixture ``kept_cu129``: :func:`installed_once` of this
    project on the session's ``index_server`` (assign it to a module name)."""

    @pytest.fixture(scope="module", name="kept_cu129")
    def kept(
        index_server: IndexServer, tmp_path_factory: pytest.TempPathFactory
    ) -> Kept:
        """The project as ``poetry install`` leaves it, built once per module."""
        return installed_once(index_server, tmp_path_factory, dependencies, torch_cuda)

    return kept

"""Assert that a refused command changed nothing in the project."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.support.poetry_project import Project


def _state(project: Project) -> tuple[bytes, bytes | None, bool]:
    lock = project.lockfile.read_bytes() if project.lockfile.exists() else None
    return project.pyproject.read_bytes(), lock, project.venv.exists()


@contextmanager
def untouched(project: Project) -> Iterator[None]:
    """What runs inside may fail, but must change nothing: afterwards
    pyproject.toml has the same bytes, poetry.lock the same bytes (or is still
    absent) and the virtualenv is still absent (or still there)."""
    before = _state(project)
    yield
    pyproject, lock, venv = _state(project)
    assert pyproject == before[0]
    assert lock == before[1]
    assert venv == before[2]

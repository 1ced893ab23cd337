"""The environment a reading command looks at, without ever creating one.

``status``, ``detect``, ``variants`` and ``--dry-run`` only read. Poetry
creates the project's virtualenv for every ``EnvCommand`` unless the command
already has one, so these commands set the existing one first (in their
``validate_early``, before Poetry's listener runs). When the project has no
virtualenv yet, they see an environment with nothing installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from poetry.utils.env import EnvManager
from poetry.utils.env import SystemEnv
from poetry.utils.env.site_packages import SitePackages


if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.poetry import Poetry
    from poetry.utils.env import Env


class NotCreatedEnv(SystemEnv):
    """Stands for the virtualenv Poetry has not created yet: nothing is installed."""

    def __init__(self, path: Path, nowhere: Path) -> None:
        super().__init__(path)
        self._nowhere = nowhere

    @property
    def site_packages(self) -> SitePackages:
        """No site-packages directory: every lookup finds nothing."""
        return SitePackages(self._nowhere)


def existing_env(poetry: Poetry, io: IO) -> Env:
    """The project's environment if it exists, else a :class:`NotCreatedEnv`."""
    env = EnvManager(poetry, io=io).get()
    if env.is_venv() or not poetry.config.get("virtualenvs.create", True):
        return env
    nowhere = poetry.pyproject_path.parent / ".venv" / "not-created-yet"
    return NotCreatedEnv(Path(env.path), nowhere)

"""Remove distributions from an environment without starting a second pip.

A switch leaves the previous variant's CUDA wheels orphaned (``nvidia-*-cu12``
after a move to cu130). ``pip uninstall`` of them is a whole Python process
that imports pip, on a loaded machine seconds of a switch. Poetry 2.x ships
pip's uninstaller adapted to run in-process
(``poetry.installation.uninstaller``, the one behind
``installer.builtin-uninstall``): it reads each distribution's ``RECORD``,
deletes the files listed (and their bytecode), prunes the directories left
empty, never one of the install-scheme roots, and the ``.dist-info`` last.

:func:`remove_distributions` uses it where this Poetry has it, and hands pip
whatever it could not remove that way (no such module in an older Poetry, a
distribution without ``RECORD``, one installed outside the environment), so
the result is the same as ``pip uninstall`` of all of them. Putting files back
after a later failure is the caller's stash (``install/rollback.py``), taken
before anything changed, exactly as for pip's uninstall.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Protocol


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Sequence

    from poetry.utils.env import Env


class Uninstaller(Protocol):
    """What does the removal pip cannot be spared (``PipRunner.uninstall``)."""

    def __call__(self, names: Sequence[str]) -> None: ...


def remove_distributions(
    env: Env,
    names: Sequence[str],
    pip_uninstall: Uninstaller,
    *,
    in_process: Callable[[Env, str], object] | None = None,
) -> list[str]:
    """Remove ``names`` from ``env``; return those left to ``pip_uninstall``.

    Each name is removed in-process by Poetry's uninstaller when this Poetry
    has one; the names it skips (it returns ``None``: not installed in the
    environment's own site-packages, or no ``RECORD``) go to one call of
    ``pip_uninstall``, which also gets all of them where Poetry has no
    in-process uninstaller. ``in_process`` replaces Poetry's uninstaller
    (tests).

    Raises:
        OSError: a file could not be removed (the distribution's
            ``.dist-info`` is still there, so running it again finishes).
        TorchCudaError: pip failed on what it was given.
    """
    remover = in_process if in_process is not None else _poetry_uninstaller()
    left: list[str] = []
    for name in names:
        if remover is None or remover(env, name) is None:
            left.append(name)
    if left:
        left = [name for name in left if _installed(env, name)]
    if left:
        pip_uninstall(left)
    return left


def _poetry_uninstaller() -> Callable[[Env, str], object] | None:
    try:
        from poetry.installation.uninstaller import uninstall_distribution
    except ImportError:  # Poetry before the in-process uninstaller
        return None
    return uninstall_distribution


def _installed(env: Env, name: str) -> bool:
    """Whether ``name`` is still installed anywhere pip would look."""
    from importlib import metadata

    from packaging.utils import canonicalize_name

    paths = [str(path) for path in env.site_packages.candidates]
    wanted = canonicalize_name(name)
    return any(
        canonicalize_name(found.metadata["Name"] or "") == wanted
        for found in metadata.distributions(name=wanted, path=paths)
    )

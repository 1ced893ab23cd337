"""One plugin step at a time per environment: an OS file lock inside the venv.

Two ``poetry install`` runs on one environment each plan and apply the variant under
this lock, so the second plans again once the first finished. The lock is an advisory
``flock`` (a ``msvcrt`` byte lock on Windows): the OS releases it when its holders
exit, so a killed run leaves no stale lock. pip inherits its file descriptor, which
keeps the environment locked while a pip started by a killed run still finishes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.output import PREFIX


if TYPE_CHECKING:
    from collections.abc import Iterator

    from cleo.io.io import IO

#: The env lock's file (named apart from torch-cuda.lock's ``LOCK_NAME``).
ENV_LOCK_NAME = ".poetry-torch-cuda.lock"

_held: dict[Path, int] = {}


def held_fds() -> tuple[int, ...]:
    """File descriptors of the locks this process holds (for pip to inherit)."""
    return tuple(_held.values()) if os.name == "posix" else ()


def state_dir(env_path: Path) -> Path:
    """Where the plugin keeps its files (the env lock, the owner record, the memory
    of failed builds, the stash) for the environment at ``env_path``: inside it if it
    is a writable venv (``pyvenv.cfg``); never in another Python's prefix (a system
    one), but in Poetry's cache, in a folder named after the environment's path."""
    if (env_path / "pyvenv.cfg").is_file() and os.access(env_path, os.W_OK):
        return env_path
    from poetry.config.config import Config

    digest = hashlib.sha256(str(env_path.resolve()).encode()).hexdigest()[:16]
    folder = Path(Config.create().get("cache-dir")) / "torch-cuda" / digest
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"poetry-torch-cuda-{digest}"
        folder.mkdir(exist_ok=True)
    return folder


def is_free(env_path: Path) -> bool:
    """Whether no run holds the lock of ``env_path`` now (taken and let go at once)."""
    try:
        fd = os.open(state_dir(env_path) / ENV_LOCK_NAME, os.O_RDONLY)
    except OSError as error:  # none: no run ever took it
        return isinstance(error, FileNotFoundError)
    if free := _try_lock(fd):
        _unlock(fd)
    os.close(fd)
    return free


@contextmanager
def environment_lock(
    env_path: Path, io: IO, wait_seconds: float = 900.0
) -> Iterator[bool]:
    """Hold the lock of ``env_path`` (an env, torch-cuda.lock); tell ``io`` of a wait.

    Yields whether it waited; re-entrant in one process (a command that runs another).
    Raises TorchCudaError if it stays taken ``wait_seconds`` or cannot be made.
    """
    path = state_dir(env_path) / ENV_LOCK_NAME
    if path in _held:
        yield False
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise TorchCudaError(
            f"cannot create the lock {path} "
            f"({error.strerror or error}); nothing was changed. Fix the folder's "
            "permissions, then run the command again."
        ) from None
    try:
        waited = not _try_lock(fd)
        if waited:
            io.write_error_line(
                f"{PREFIX}: <comment>waiting for another run to finish with {env_path}</>"
            )
            deadline = time.monotonic() + wait_seconds
            while not _try_lock(fd):
                if time.monotonic() > deadline:
                    raise TorchCudaError(
                        f"another poetry-torch-cuda run has held {path} for "
                        f"{wait_seconds:.0f} s. Wait for it to finish, or stop it."
                    )
                time.sleep(0.1)
        _held[path] = fd
        try:
            yield waited
        finally:
            del _held[path]
            _unlock(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

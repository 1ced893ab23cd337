"""Temporary files named after the process that owns them, the sweep of dead ones,
the one atomic writer and the one reader of the plugin's JSON state files.

A run killed with ``kill -9`` cannot remove its temporary files: each carries its
owner's pid in its name (``<prefix><pid>.<random><suffix>``), so the next run removes
those whose owner is gone and leaves a running process's files alone.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any


def make(directory: Path | None, prefix: str, suffix: str) -> tuple[int, Path]:
    """``mkstemp`` in ``directory`` (``None``: TMPDIR), this pid in the name; dead namesakes go first."""
    sweep(Path(directory or tempfile.gettempdir()), prefix, suffix)
    handle, name = tempfile.mkstemp(suffix, f"{prefix}{os.getpid()}.", directory)
    return handle, Path(name)


def dead(directory: Path, prefix: str, suffix: str = "") -> list[Path]:
    """``directory``'s files (and folders) named after a process that is gone."""
    literal = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
    found = []
    with suppress(OSError):
        for path in directory.glob(f"{literal}*{suffix}"):
            owner = path.name[len(prefix) :].split(".", 1)[0]
            if owner.isdigit() and not alive(int(owner)):
                found.append(path)
    return found


def sweep(directory: Path, prefix: str, suffix: str = "") -> None:
    """Remove :func:`dead` files and folders; errors are ignored (a leftover costs
    disk space, never correctness)."""
    for path in dead(directory, prefix, suffix):
        remove(path)


def remove(path: Path) -> None:
    """Remove a file or a folder (a link, never what it points to), what can be."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(OSError):
            path.unlink()


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (always true on Windows, never probed there)."""
    if pid == os.getpid() or os.name != "posix":
        return True  # on Windows, signal 0 is CTRL_C_EVENT: never probe there
    try:
        os.kill(pid, 0)
    except OSError as error:  # else it exists, owned by someone else
        return not isinstance(error, ProcessLookupError)
    return True


def refuse_read_only(path: Path) -> None:
    """The one rule for a file replaced by a rename, which ignores its mode: one
    this user may not write, or that no one may (chmod 444, refused to root too)."""
    if path.exists() and not (os.access(path, os.W_OK) and path.stat().st_mode & 0o222):
        raise PermissionError(errno.EACCES, "it is read-only", str(path))


def beside(path: Path, suffix: str = ".tmp") -> Path:
    """``path`` resolved (the file a symlink names), dead writers' files beside it gone."""
    path = path.resolve()
    sweep(path.parent, f".{path.name}.", suffix)
    return path


def write_text(path: Path, text: str) -> bool:
    """Replace ``path`` (the file a symlink names) with ``text`` at once, a new file
    with the mode any new file gets here (the umask, as poetry.lock); return whether
    the file changed (a read-only one: :func:`refuse_read_only`)."""
    path = beside(path)
    with suppress(OSError):  # no file yet, or not one to read: write it
        if path.read_text(encoding="utf-8") == text:
            return False
    refuse_read_only(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with temporary.open("x", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return True


def write_json(path: Path, data: object) -> None:
    """:func:`write_text` of ``data`` as JSON, best effort: a cache, never the truth."""
    with suppress(OSError):
        write_text(path, json.dumps(data))


def read_json(path: Path, default: Any) -> Any:
    """``path`` parsed as JSON, or ``default`` where it is missing, unreadable or
    damaged; the caller checks the shape it needs."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default

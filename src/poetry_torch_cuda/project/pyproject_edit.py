"""Rewrite the ``variant`` key of pyproject.toml with tomlkit, leaving the rest as it was.

The new text replaces the file in one rename, never by rewriting it in place.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import tomlkit

from poetry_torch_cuda.project.config import TABLE


def set_variant(pyproject: Path, variant: str) -> bool:
    """Set ``[tool.poetry-torch-cuda] variant``; return whether the file changed.

    Comments, ordering and formatting elsewhere are preserved; the table is
    created when the project has none.
    """
    pending = prepare_variant(pyproject, variant)
    if pending is None:
        return False
    pending.commit()
    return True


def prepare_variant(pyproject: Path, variant: str) -> PendingWrite | None:
    """Write the new pyproject.toml beside the old one; ``None`` if nothing changes.

    Nothing replaces the old file until :meth:`PendingWrite.commit`, so a full
    disk or a read-only directory shows up before anything is installed.

    Raises:
        OSError: the new file could not be written.
    """
    original = pyproject.read_bytes().decode("utf-8")
    document = tomlkit.parse(original)
    tool = document.get("tool")
    if tool is None:
        tool = tomlkit.table(is_super_table=True)
        document["tool"] = tool
    table = tool.get(TABLE)
    if table is None:
        table = tomlkit.table()
        tool[TABLE] = table
    if table.get("variant") == variant:
        return None
    table["variant"] = variant
    updated = tomlkit.dumps(document)
    if updated == original:
        return None
    return PendingWrite(pyproject, updated.encode("utf-8"))


class PendingWrite:
    """New bytes for a file, written to a temporary file beside it.

    :meth:`commit` renames it over the file (atomic on POSIX and Windows);
    leaving the ``with`` block without committing removes it.
    """

    def __init__(self, target: Path, data: bytes) -> None:
        self.target = target.resolve()
        handle, name = tempfile.mkstemp(
            dir=self.target.parent, prefix=f".{self.target.name}.", suffix=".tmp"
        )
        self._temporary = Path(name)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            self._temporary.chmod(stat.S_IMODE(self.target.stat().st_mode))
        except BaseException:
            self._temporary.unlink(missing_ok=True)
            raise
        self._done = False

    def commit(self) -> None:
        """Put the new content in place."""
        self._temporary.replace(self.target)
        self._done = True

    def discard(self) -> None:
        """Forget the new content; the file stays as it was."""
        if not self._done:
            self._temporary.unlink(missing_ok=True)
            self._done = True

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self.discard()

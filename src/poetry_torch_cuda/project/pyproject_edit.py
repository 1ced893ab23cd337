"""Rewrite the ``variant`` key of pyproject.toml with tomlkit, leaving the rest as it was.

The edit applies to the file as it is when written (``switch`` runs for minutes): under
a lock, read again, edited, renamed over it, redone if someone changed it meanwhile; a
hard-linked file is rewritten in place."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from typing import TYPE_CHECKING

import tomlkit
from tomlkit.items import String

from poetry_torch_cuda import tempfiles
from poetry_torch_cuda.errors import ConfigError
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.project.config import TABLE


if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_ATTEMPTS = 5


def with_variant(text: str, variant: str) -> str | None:
    """``text`` (a pyproject.toml) with its ``variant`` replaced by a variant's name;
    ``None`` if it already says so. Only the value changes: the string's kind
    (``'cu129'``, ``'''cu129'''``), a multi-line one's first newline, the comment stay."""
    document = tomlkit.parse(text)
    table = document.get("tool", {}).get(TABLE)
    old = table.get("variant") if isinstance(table, dict) else None
    if not isinstance(old, String):  # switch checked it: edited since
        raise ConfigError(
            f"pyproject.toml no longer has a [tool.{TABLE}] table with a variant "
            "(edited while the switch ran); nothing was changed. Restore it, then run "
            "the switch again."
        )
    if old == variant:
        return None
    raw = old.as_string()[len(old.type.value) : -len(old.type.value)]
    kept = raw[: -len(old)] if old and raw.endswith(old) else ""  # decodes to nothing
    table["variant"] = String(old.type, variant, kept + variant, old.trivia)
    return tomlkit.dumps(document)


def prepare_variant(
    pyproject: Path, variant: str, always: bool = False
) -> PendingWrite | None:
    """The edit, its file written beside the old one now (a full disk shows before
    any install); ``None`` if nothing changes unless ``always`` (it may change)."""
    target = tempfiles.beside(pyproject)
    current = target.read_bytes()
    updated = with_variant(current.decode("utf-8"), variant)
    if updated is None and not always:
        return None
    data = current if updated is None else updated.encode()
    return PendingWrite(target, variant, data)


class PendingWrite:
    """The variant edit of one file, for :meth:`commit` inside its ``with`` block."""

    def __init__(self, target: Path, variant: str, data: bytes) -> None:
        self.target, self.variant = target, variant
        handle, temporary = tempfiles.make(target.parent, f".{target.name}.", ".tmp")
        self._temporary = temporary
        try:
            _write(handle, data)
        except BaseException:
            self._temporary.unlink(missing_ok=True)
            raise

    def commit(self) -> bool:
        """Apply the edit to the file as it is now; return whether it changed (a
        :class:`TorchCudaError`: it kept changing, is not TOML or not writable; a
        :class:`ConfigError`: it lost the table or its variant)."""
        why = "kept changing while the variant was written to it"
        try:
            with _locked(self.target):
                for _ in range(_ATTEMPTS):
                    current = self.target.read_bytes()
                    updated = with_variant(current.decode("utf-8"), self.variant)
                    if updated is None:
                        return False
                    data = updated.encode("utf-8")
                    linked = self.target.stat().st_nlink > 1  # then written in place
                    if not linked:
                        _write(os.open(self._temporary, os.O_WRONLY | os.O_TRUNC), data)
                        self._temporary.chmod(stat.S_IMODE(self.target.stat().st_mode))
                    if self.target.read_bytes() != current:
                        continue  # edited meanwhile by someone who takes no lock
                    if linked:
                        _write(os.open(self.target, os.O_WRONLY | os.O_TRUNC), data)
                    else:
                        self._temporary.replace(self.target)
                    return True
        except ValueError as error:  # tomlkit's ParseError, a bad byte
            why = f"is not valid TOML ({error})"
        except OSError as error:
            why = f"could not be written ({error.strerror or error})"
        raise TorchCudaError(
            f"{self.target.name} {why}; it was not changed. "
            f'Set variant = "{self.variant}" in it by hand.'
        )

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        self._temporary.unlink(missing_ok=True)  # the file stays as it was


def _write(handle: int, data: bytes) -> None:
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``target`` (two ``switch`` runs take turns)."""
    if os.name != "posix":
        yield
        return
    import fcntl

    while True:
        with target.open("rb") as stream:  # closing it releases the lock
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX)
            # The holder before us may have renamed a new file into place.
            if os.fstat(stream.fileno()).st_ino == target.stat().st_ino:
                yield
                return

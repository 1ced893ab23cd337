"""torch-cuda.lock: its format (``model``), the locker (``builder``), keeping it
in step (``service``) and the export; :class:`LockLookup` is what an install holds."""

from __future__ import annotations

from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.poetry import Poetry

    from poetry_torch_cuda.lockfile.model import VariantLock
    from poetry_torch_cuda.project.variants import Variant


class LockLookup:
    """``variant -> its entry of torch-cuda.lock`` for an install (locks it if
    needed); :meth:`undo` puts back a file that locking wrote, should the
    install fail: an entry is kept only once its files installed."""

    def __init__(self, poetry: Poetry, io: IO) -> None:
        self._path = poetry.locker.lock.parent / "torch-cuda.lock"
        self._poetry, self._io = poetry, io
        self._before: bytes | None = None
        self._wrote = False

    def _bytes(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except OSError:
            return None

    def __call__(self, variant: Variant) -> VariantLock:
        from poetry_torch_cuda.lockfile.service import variant_lock

        before = self._bytes()
        entry = variant_lock(self._poetry, variant, self._io)
        if not self._wrote and self._bytes() != before:
            self._before, self._wrote = before, True
        return entry

    def undo(self) -> None:
        """Restore torch-cuda.lock as it was before this install locked anything."""
        if self._wrote and self._before is None:
            self._path.unlink(missing_ok=True)
        elif self._wrote and self._before is not None:
            self._path.write_bytes(self._before)
        self._wrote = False

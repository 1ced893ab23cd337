"""The variant's entry of torch-cuda.lock for one install, read only when needed.

Every install hook builds one of these; a run with nothing to install never
calls it, so the lockfile code is not even imported then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from cleo.io.io import IO
    from poetry.poetry import Poetry

    from poetry_torch_cuda.lockfile.model import VariantLock
    from poetry_torch_cuda.project.variants import Variant


class LockLookup:
    """``variant -> its entry of torch-cuda.lock`` for an install (locks it if needed).

    When that locking wrote the file and the install then fails, :meth:`undo`
    puts the file back as it was: an entry is kept only once its files installed.
    """

    def __init__(self, poetry: Poetry, io: IO) -> None:
        self._poetry = poetry
        self._io = io
        self._before: bytes | None = None
        self._wrote = False

    def __call__(self, variant: Variant) -> VariantLock:
        from poetry_torch_cuda.lockfile.inputs import lock_path

        path = lock_path(self._poetry)
        try:
            before: bytes | None = path.read_bytes()
        except OSError:
            before = None
        from poetry_torch_cuda.lockfile.service import variant_lock

        entry = variant_lock(self._poetry, variant, self._io)
        try:
            after: bytes | None = path.read_bytes()
        except OSError:
            after = None
        if after != before:
            self._before, self._wrote = before, True
        return entry

    def undo(self) -> None:
        """Restore torch-cuda.lock as it was before this install locked anything."""
        if not self._wrote:
            return
        from poetry_torch_cuda.lockfile.inputs import lock_path

        path = lock_path(self._poetry)
        if self._before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(self._before)
        self._wrote = False

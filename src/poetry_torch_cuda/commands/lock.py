"""``poetry torch-cuda lock [--check]``: write torch-cuda.lock, or check it offline."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import ClassVar

from cleo.helpers import option

from poetry_torch_cuda.commands.base import ReportsErrors
from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.install import signals
from poetry_torch_cuda.lockfile.model import LOCK_NAME
from poetry_torch_cuda.lockfile.service import left
from poetry_torch_cuda.lockfile.service import lock_problem
from poetry_torch_cuda.lockfile.service import lock_project
from poetry_torch_cuda.output import PREFIX


if TYPE_CHECKING:
    from cleo.io.inputs.option import Option


class LockCommand(ReportsErrors):
    """Lock the variant builds (files and sha256) in torch-cuda.lock."""

    name = "torch-cuda lock"
    description = (
        "Write torch-cuda.lock: each locked variant's builds with every file's "
        "sha256 (--check: exit 1 when it does not match poetry.lock)."
    )
    options: ClassVar[list[Option]] = [
        option(
            "check",
            None,
            "Change nothing and ask no index: exit 1 when an install would not "
            "install exactly what torch-cuda.lock says (missing, unreadable, or not "
            "matching poetry.lock, the configuration or the variants to lock).",
        ),
        option(
            "accept-drift",
            None,
            "Re-lock trusting the index as it is now, even where a locked file's "
            "sha256 changed or the previous torch-cuda.lock cannot be read.",
        ),
    ]
    help = (
        "Locks, for the configured variant and every variant in <c1>lock-variants</> "
        "(for auto, every variant auto may choose that the index offers), the "
        "builds of the versions poetry.lock locks and the CUDA wheels they need, "
        "with every file and its sha256, in torch-cuda.lock beside poetry.lock. "
        "Installs then install exactly those files. Commit it."
    )

    def work(self) -> int:
        if self.option("check"):
            if (problem := lock_problem(self.poetry, whole=True)[2]) is not None:
                raise TorchCudaError(problem)
            self.line(f"{PREFIX}: {LOCK_NAME} matches poetry.lock")
            return 0
        with signals.stopping(
            lambda: f"the locking of {LOCK_NAME}. {left(self.poetry)}"
        ):
            drift = self.option("accept-drift")
            lock_project(self.poetry, self.io, refresh=True, accept_drift=drift)
        return 0

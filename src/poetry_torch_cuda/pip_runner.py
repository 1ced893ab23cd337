"""Run the environment's own pip with argument lists, never a shell."""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from poetry_torch_cuda.errors import TorchCudaError
from poetry_torch_cuda.urls import mask_url


if TYPE_CHECKING:
    from collections.abc import Iterable
    from collections.abc import Iterator
    from collections.abc import Sequence


_CONFLICT = "The conflict is caused by:"


class PipError(TorchCudaError):
    """pip exited non-zero; the message carries pip's own reason."""


class PipRunner:
    """Install and uninstall with one environment's pip.

    The index URL travels in ``PIP_INDEX_URL`` rather than on the command line,
    so credentials in it never show in ``/proc/<pid>/cmdline``.
    """

    def __init__(self, pip_command: Sequence[str], *, show_output: bool) -> None:
        self._pip = list(pip_command)
        self._show_output = show_output

    def install(
        self, requirements: Sequence[str], index_url: str, constraints: Iterable[str]
    ) -> None:
        """Install ``requirements`` from ``index_url``; ``constraints`` pin everything else."""
        with _constraints_file(constraints) as constraints_path:
            args = [
                *self._pip,
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--constraint",
                str(constraints_path),
                *requirements,
            ]
            returncode, errors = self._run(args, {"PIP_INDEX_URL": index_url})
        errors = errors.replace(index_url, mask_url(index_url))
        if returncode != 0:
            if _CONFLICT in errors:
                fix = (
                    "This build needs other versions of packages Poetry manages; "
                    "align them in pyproject.toml and run `poetry lock`, or choose "
                    "another variant with `poetry torch-cuda switch <variant>`."
                )
            else:
                fix = (
                    "Check that this variant offers these versions for this Python "
                    "and platform, or choose another with "
                    "`poetry torch-cuda switch <variant>`."
                )
            raise PipError(
                f"pip could not install {', '.join(requirements)} from "
                f"{mask_url(index_url)}: {errors}\n"
                f"The previous build is still installed. {fix}"
            )

    def uninstall(self, names: Sequence[str]) -> None:
        """Uninstall ``names``."""
        args = [*self._pip, "uninstall", "--disable-pip-version-check", "--yes", *names]
        returncode, errors = self._run(args, {})
        if returncode != 0:
            raise PipError(f"pip could not uninstall {', '.join(names)}: {errors}")

    def _run(self, args: list[str], extra_env: dict[str, str]) -> tuple[int, str]:
        env = {**os.environ, **extra_env, "PIP_NO_INPUT": "1"}
        if self._show_output:
            process = subprocess.run(
                args, env=env, stderr=subprocess.PIPE, text=True, check=False
            )
        else:
            process = subprocess.run(
                args, env=env, capture_output=True, text=True, check=False
            )
        return process.returncode, _reason(process.stderr or "", process.stdout or "")


def _reason(stderr: str, stdout: str) -> str:
    """pip's ERROR lines, with the resolver's "conflict is caused by" lines when present."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = [line for line in lines if line.startswith("ERROR:")] or lines[-3:]
    conflict = stdout.partition(_CONFLICT)[2].partition("\n\n")[0]
    causes = [line.strip() for line in conflict.splitlines() if line.strip()]
    if causes:
        chosen.append(f"{_CONFLICT} {'; '.join(causes)}.")
    return " ".join(chosen) or "pip gave no reason"


@contextmanager
def _constraints_file(constraints: Iterable[str]) -> Iterator[Path]:
    handle, name = tempfile.mkstemp(prefix="poetry-torch-cuda-", suffix=".txt")
    path = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(f"{line}\n" for line in constraints)
        yield path
    finally:
        path.unlink(missing_ok=True)

"""The project's configuration as it is on disk now, not as it was when the run began.

A run that waited for another one (the environment lock) must plan with what
that one left behind: a ``switch`` that finished meanwhile changed
``variant`` in pyproject.toml.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from typing import Any

from poetry_torch_cuda.output import PREFIX
from poetry_torch_cuda.project.config import ENV_VARIANT
from poetry_torch_cuda.project.config import load_config


if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from cleo.io.io import IO

    from poetry_torch_cuda.project.config import TorchCudaConfig


def read_pyproject(path: Path) -> dict[str, Any]:
    """pyproject.toml at ``path``, parsed afresh."""
    from poetry.core.pyproject.toml import PyProjectTOML

    return dict(PyProjectTOML(path).data)


def current_config(
    path: Path, environ: Mapping[str, str] = os.environ
) -> TorchCudaConfig | None:
    """The configuration pyproject.toml at ``path`` and the overrides give now.

    Raises:
        ConfigError: the table became invalid meanwhile.
    """
    return load_config(read_pyproject(path), environ)


def warn_overridden(
    io: IO, written: str, environ: Mapping[str, str] = os.environ
) -> None:
    """Say so when ``POETRY_TORCH_CUDA_VARIANT`` will keep overriding what was written."""
    override = environ.get(ENV_VARIANT, "").strip()
    if override and override != written:
        io.write_error_line(
            f"<warning>{PREFIX}: {ENV_VARIANT}={override} is set and overrides "
            f"pyproject.toml on every run; unset it to use {written}.</>"
        )

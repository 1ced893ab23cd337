"""Which project's configuration put the torch build into an environment.

Two projects can share one environment (``virtualenvs.create = false``, a
Docker image's system Python). If they configure different variants, each
install moves torch back to its own. The plugin notes, in the environment,
the project and variant of the last build it installed there, so the next
run of another project can say that it is undoing that one's choice.
"""

from __future__ import annotations

import json
from contextlib import suppress
from typing import TYPE_CHECKING

from poetry_torch_cuda.environment.envlock import state_dir


if TYPE_CHECKING:
    from pathlib import Path

MARKER = ".poetry-torch-cuda-owner.json"


def previous_owner(env_path: Path) -> tuple[str, str] | None:
    """``(project directory, variant)`` of the last install into the env, if known."""
    try:
        data = json.loads((state_dir(env_path) / MARKER).read_text(encoding="utf-8"))
        return str(data["project"]), str(data["variant"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def other_owner(env_path: Path, project: Path, variant: str) -> str | None:
    """A warning when another project's configuration installed another variant here."""
    owner = previous_owner(env_path)
    if owner is None:
        return None
    path, installed = owner
    if path == str(project) or installed == variant:
        return None
    return (
        f"this environment's torch build ({installed}) was installed for the project "
        f"in {path}; replacing it with {variant} for this one. Projects sharing one "
        "environment with different variants undo each other on every install: give "
        "each its own environment, or the same variant."
    )


def record_owner(env_path: Path, project: Path, variant: str) -> None:
    """Note that ``project`` just installed ``variant`` into the env (best effort)."""
    with suppress(OSError):
        (state_dir(env_path) / MARKER).write_text(
            json.dumps({"project": str(project), "variant": variant}),
            encoding="utf-8",
        )

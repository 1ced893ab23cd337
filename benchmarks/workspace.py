"""The projects the measurements run on, served by the tests' local index.

Every project has the same ``pyproject.toml`` (the tests' cu129 project:
``needs-torch`` and ``torchvision``) and the same ``poetry.lock``; they
differ only in which Poetry installed their ``.venv`` and how. ``no-table``
has no ``[tool.poetry-torch-cuda]`` table, ``noop-auto`` says ``variant =
"auto"`` and finds a fake ``nvidia-smi`` first on its ``PATH``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING

from tests.support.poetry_project import Project
from tests.support.poetry_project import isolated_env
from tests.support.poetry_project import render_pyproject
from tests.support.poetry_project import write_stub_executable

from benchmarks.timing import timed


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.index import IndexServer

    from benchmarks.timing import Sample
    from benchmarks.venvs import PoetryVenv

DEPS = {"needs-torch": "*", "torchvision": "*"}
TABLE = 'variant = "cu129"'
VARIANT = "cu129"
OTHER = "cu130"
NO_TABLE = "no-table"
AUTO = "noop-auto"
PROJECTS = (
    "noop-plugin",
    "noop-plain",
    "ritual",
    "switch-plugin",
    "switch-pip",
    NO_TABLE,
    AUTO,
)
PLAIN_BUILD = ("noop-plain", "ritual", NO_TABLE)
#: What ``nvidia-smi --query-gpu=driver_version,compute_cap,name`` says on a 4090.
NVIDIA_SMI = "575.57.08, 8.9, NVIDIA GeForce RTX 4090\n"


@dataclass
class Workspace:
    """The index, both Poetries and the prepared projects."""

    root: Path
    index: IndexServer
    plugin: PoetryVenv
    plain: PoetryVenv
    env: dict[str, str] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    wheels: tuple[str, str] = ("", "")  # torch, torchvision public versions

    def poetry(self, venv: PoetryVenv, project: Project, *args: str) -> Sample:
        return timed([venv.poetry, "--no-ansi", *args], project.path, project.env)

    def pip_install(self, project: Project, variant: str) -> None:
        torch, torchvision = self.wheels
        project.pip(
            "install",
            "--index-url",
            self.index.whl_url(variant),
            f"torch=={torch}+{variant}",
            f"torchvision=={torchvision}+{variant}",
        )


def prepare(
    root: Path,
    index: IndexServer,
    plugin: PoetryVenv,
    plain: PoetryVenv,
    names: tuple[str, ...] = PROJECTS,
) -> Workspace:
    """Create the projects and bring each ``.venv`` to its starting state."""
    # Bytecode is written as for any user; pip's cache is the benchmark's own.
    env = isolated_env(
        root,
        {
            "PYTHONDONTWRITEBYTECODE": None,
            "PIP_CACHE_DIR": str(root / "pip-cache"),
            "POETRY_TORCH_CUDA_VERIFY": None,  # verification on, as for users
        },
    )
    ws = Workspace(root, index, plugin, plain, env)
    text = render_pyproject(index, DEPS, torch_cuda=TABLE, name="bench-project")
    for name in names:
        project = Project(root / name, index, env)
        project.path.mkdir(parents=True)
        project.write_pyproject(text)
        ws.projects[name] = project
    first = ws.projects[names[0]]
    ws.poetry(plugin, first, "lock")
    locked = first.locked()
    ws.wheels = (locked["torch"], locked["torchvision"])
    for name, project in ws.projects.items():
        project.lockfile.write_text(first.lock_text())
        if name == NO_TABLE:
            project.write_pyproject(render_pyproject(index, DEPS, name="bench-project"))
        if name == AUTO:
            project.write_pyproject(text.replace(TABLE, 'variant = "auto"'))
            stub = write_stub_executable(root / "gpu-bin", "nvidia-smi", NVIDIA_SMI)
            project.env = {**env, "PATH": f"{stub.parent}{os.pathsep}{env['PATH']}"}
        ws.poetry(plain if name in PLAIN_BUILD else plugin, project, "install")
        if name == "ritual":
            ws.pip_install(project, VARIANT)
        torch = project.installed()["torch"]
        expected = locked["torch"]
        if name not in ("noop-plain", NO_TABLE, AUTO):
            expected += f"+{VARIANT}"
        if not torch.startswith(expected):
            raise SystemExit(f"bench: {name} has torch {torch}, not {expected}")
    return ws

"""Offline demo: ``python -m tests.support.demo`` (or ``nox -s demo``).

Builds the local indexes (a fake PyPI and download.pytorch.org-style variant
indexes) on 127.0.0.1, creates a throwaway project that depends on torch
through another package, and shows what the plugin does with the real
``poetry`` next to this Python: ``poetry install`` keeps ``+cu129`` and
``poetry torch-cuda switch cpu`` moves the project to the CPU build.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.support.catalog import build_universe
from tests.support.index import IndexServer
from tests.support.poetry_project import Project


TABLE = 'variant = "cu129"  # the team\'s CUDA build\n'
SHOWN = (
    "torch",
    "torchvision",
    "nvidia-cublas-cu12",
    "nvidia-cublas",
    "triton",
    "needs-torch",
)


def show(title: str, project: Project) -> None:
    installed = project.installed()
    print(f"\n--- {title}")
    for name in SHOWN:
        print(f"    {name:<20} {installed.get(name, '-')}")


def run(project: Project, *args: str) -> None:
    print(f"\n$ poetry {' '.join(args)}")
    result = project.run(*args)
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="poetry-torch-cuda-demo-") as tmp:
        root = Path(tmp)
        universe = build_universe(root / "indexes")
        with IndexServer(universe.root) as index:
            project = Project.create(
                root, index, {"needs-torch": "*", "torchvision": "*"}, TABLE
            )
            print(project.pyproject_text())
            run(project, "install")
            show(
                "after `poetry install` (PyPI's torch is unlabelled; the env holds +cu129)",
                project,
            )
            run(project, "install")
            show(
                "after a second `poetry install` (no downgrade, nothing to do)", project
            )
            run(project, "torch-cuda", "switch", "cpu")
            show("after `poetry torch-cuda switch cpu` (CUDA wheels swept)", project)
            print("\n--- [tool.poetry-torch-cuda] now reads:")
            text = project.pyproject_text()
            print(text[text.index("[tool.poetry-torch-cuda]") :])
            ok = project.installed().get("torch") == "2.14.1+cpu"
    print("demo finished:", "OK" if ok else "UNEXPECTED STATE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Offline demo: ``python -m tests.support.demo`` (or ``nox -s demo``); ``--help``.

Builds local indexes on 127.0.0.1 (a fake PyPI and a fake download.pytorch.org
holding the builds PyTorch publishes for torch 2.14, see
:mod:`tests.support.published`), creates a project that depends on torch and
torchvision, and shows what the plugin does with the real ``poetry`` next to
this Python: ``poetry install`` keeps ``+cu130`` and ``poetry torch-cuda
switch cu126`` moves the project to the CUDA 12.6 build. Each command's output
is shown as it happens. The builds behave like real ones on a machine
without a GPU (:func:`tests.support.fake_torch.demo_torch`), so every change is
verified as it would be for a user; a last step damages the installed build,
shows ``poetry torch-cuda verify`` failing and ``sync --force`` repairing it.

The project is kept (``.nox/demo-project`` in the repository, or ``--keep DIR``) with
an ``env.sh`` that sets up a shell for it; ``--serve`` keeps the indexes
running until Ctrl-C so the printed commands work there.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.fake_torch import CORE
from tests.support.fake_torch import make_demo_builds
from tests.support.gpus import machine_env
from tests.support.index import IndexServer
from tests.support.poetry_project import VERIFY_ON
from tests.support.poetry_project import Project
from tests.support.poetry_project import poetry_executable
from tests.support.poetry_project import with_overrides
from tests.support.published import VARIANTS
from tests.support.published import build_published_universe


REPOSITORY = Path(__file__).resolve().parents[2]
#: Beside, not inside, nox's own .nox/demo (the session's virtualenv).
DEFAULT_DIR = REPOSITORY / ".nox" / "demo-project"
#: A file that says a directory is a demo's, so a rerun may empty it.
STAMP = ".poetry-torch-cuda-demo"
TABLE = 'variant = "cu130"  # the team\'s CUDA build\n'
SHOWN = (
    "torch",
    "torchvision",
    "nvidia-cublas",
    "nvidia-cublas-cu12",
    "triton",
    "filelock",
)
NEXT_COMMANDS = (
    "poetry torch-cuda status",
    "poetry torch-cuda verify",
    "poetry torch-cuda detect",
    "poetry torch-cuda variants",
    "poetry torch-cuda switch cpu",
    "poetry install -v",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s demo --",
        description=(
            "Offline demo of poetry-torch-cuda against local indexes on 127.0.0.1: "
            "poetry install keeps torch 2.14.1+cu130, "
            "poetry torch-cuda switch cu126 moves to the CUDA 12.6 build."
        ),
    )
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        default=DEFAULT_DIR,
        help=(
            "where to build the indexes and the project, kept afterwards "
            f"(default: {DEFAULT_DIR.relative_to(REPOSITORY)}; a previous demo "
            "there is replaced, any other non-empty directory is refused)"
        ),
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the local indexes running after the demo until Ctrl-C, "
        "so the printed commands can be tried in the project",
    )
    return parser.parse_args(argv)


def prepare(directory: Path) -> Path:
    """An empty ``directory`` for the demo; refuses one that is not a demo's."""
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        if not (directory / STAMP).exists():
            raise SystemExit(
                f"{directory} is not empty and holds no earlier demo; "
                "choose an empty or new directory with --keep DIR"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STAMP).write_text("made by python -m tests.support.demo\n")
    return directory


def run(project: Project, env: dict[str, str], *args: str) -> int:
    """Run ``poetry *args`` with its output going straight to this terminal."""
    print(f"\n$ poetry {' '.join(args)}", flush=True)
    result = subprocess.run(
        [str(poetry_executable()), *args],
        cwd=project.path,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    sys.stdout.flush()
    return result.returncode


def damage(project: Project) -> Path:
    """Delete the installed build's compiled core, as a broken install loses a library."""
    core = project.site_packages() / CORE
    print(f"\n$ rm {core.relative_to(project.path)}", flush=True)
    core.unlink()
    return core


def show(title: str, project: Project) -> None:
    installed = project.installed()
    print(f"\n--- {title}")
    for name in SHOWN:
        print(f"    {name:<20} {installed.get(name, '-')}")
    sys.stdout.flush()


def write_env_script(directory: Path, env: dict[str, str]) -> Path:
    """``env.sh``: the settings the demo ran Poetry with, for a shell of one's own.

    It drops the shell's own pip settings and active virtualenv (as the tests
    do), and puts the demo's ``poetry`` and stand-in ``nvidia-smi`` first on PATH.
    """
    names = sorted(key for key in env if key.startswith(("PIP_", "POETRY_")))
    names += ["ROCM_PATH", "CUDA_HOME", "CUDA_PATH"]
    lines = [
        "# . this file to run the demo's poetry with the demo's settings",
        "unset VIRTUAL_ENV",
        "for name in $(env | sed -n 's/^\\(PIP_[A-Za-z0-9_]*\\)=.*/\\1/p'); do",
        '    unset "$name"',
        "done",
    ]
    lines += [
        f"export {name}={shlex.quote(env[name])}" for name in names if name in env
    ]
    front = f"{poetry_executable().parent}:{env['PATH'].split(':', 1)[0]}"
    lines.append(f'export PATH={shlex.quote(front)}:"$PATH"')
    script = directory / "env.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    root = prepare(options.keep)
    universe = build_published_universe(root / "indexes")
    make_demo_builds(universe, VARIANTS)
    with IndexServer(universe.root) as index:
        project = Project.create(
            root, index, {"torch": ">=2.8", "torchvision": "*"}, TABLE, name="project"
        )
        # This machine as it is, with no GPU: no nvidia-smi, no ROCm, no CUDA
        # toolkit. Verification stays on, as it is for a user.
        machine = machine_env(root / "machine")
        env = with_overrides({**project.env, **machine}, VERIFY_ON)
        print(f"The demo project: {project.path}\n")
        print(project.pyproject_text())
        run(project, env, "install")
        show(
            "after `poetry install` (the lock has PyPI's torch; the env holds +cu130)",
            project,
        )
        run(project, env, "install")
        show("after a second `poetry install` (nothing to do)", project)
        run(project, env, "torch-cuda", "switch", "cu126")
        show("after `poetry torch-cuda switch cu126` (CUDA 13 wheels swept)", project)
        text = project.pyproject_text()
        print("\n--- [tool.poetry-torch-cuda] now reads:")
        print(text[text.index("[tool.poetry-torch-cuda]") :])
        print(
            "\n--- a damaged install: verify finds it (status reads metadata only), "
            "sync --force repairs it"
        )
        damage(project)
        broken = run(project, env, "torch-cuda", "verify")
        repaired = run(project, env, "torch-cuda", "sync", "--force")
        ok = (
            project.installed().get("torch") == "2.14.1+cu126"
            and broken != 0
            and repaired == 0
            and (project.site_packages() / CORE).is_file()
        )
        print("demo finished:", "OK" if ok else "UNEXPECTED STATE")
        script = write_env_script(root, env)
        print(f"\nThe project stays in {project.path}")
        print("To explore it, in another shell:\n")
        print(f"    . {shlex.quote(str(script))}")
        print(f"    cd {shlex.quote(str(project.path))}")
        for command in NEXT_COMMANDS:
            print(f"    {command}")
        if not options.serve:
            print(
                "\nThose commands need the local indexes: rerun with --serve "
                "(nox -s demo -- --serve) to keep them running."
            )
            return 0 if ok else 1
        print(
            f"\nServing the local indexes at {index.url} until Ctrl-C ...", flush=True
        )
        # Ctrl-C stops it even where it was started ignoring SIGINT (as a shell
        # starts a background job without job control, e.g. `nohup ... &`).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nStopped the local indexes.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

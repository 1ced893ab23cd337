"""Where a cold, download-bound switch spends its time, phase by phase.

``python -m benchmarks.phases [--runs N]`` builds the world of rows 7-10
(:mod:`benchmarks.network`), then runs N cold ``poetry torch-cuda switch``
commands, alternating cu129 and cu130, each with a ``sitecustomize`` on
``PYTHONPATH`` that times the plugin's phases inside the Poetry process
(wrapping functions as their modules load) and logs every process start.
It prints one timeline per run and the median of each phase. The wrapped runs
are a profile, not a benchmark: ``benchmarks.bench`` gives the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import network
from benchmarks import timing
from benchmarks import workspace
from benchmarks.venvs import prepare as prepare_venvs


if TYPE_CHECKING:
    from collections.abc import Sequence

    from tests.support.poetry_project import Project

#: module -> attributes (``Class.method`` allowed) timed in the Poetry process.
TIMED: dict[str, tuple[str, ...]] = {
    "poetry_torch_cuda.plugins": ("TorchCudaPlugin._forward",),
    "poetry_torch_cuda.commands.base": ("TorchCudaCommand.handle",),
    "poetry_torch_cuda.commands.switch": ("SwitchCommand._target",),
    "poetry_torch_cuda.project.pyproject_edit": ("prepare_variant",),
    "poetry_torch_cuda.install.planning": ("plan_for",),
    "poetry_torch_cuda.install.reconcile": ("apply_plan", "_install_files"),
    "poetry_torch_cuda.install.request": ("pin_specifiers", "prepare_install"),
    "poetry_torch_cuda.lockfile.service": ("locked_entry",),
    "poetry_torch_cuda.install.download": ("download_files",),
    "poetry_torch_cuda.index.client": ("variant_authenticator",),
    "poetry_torch_cuda.install.pip": ("PipRunner.install_files", "PipRunner.uninstall"),
    "poetry_torch_cuda.install.undo": ("Stash.take",),
    "poetry_torch_cuda.environment.installed": ("installed_environment",),
    "poetry_torch_cuda.proof.after": ("prove_change",),
}

_SITE = """\
import importlib.abc, importlib.machinery, json, os, sys, time
_LOG = {log!r}
_TIMED = {timed!r}
def _write(record):
    with open(_LOG, "a") as stream:
        stream.write(json.dumps(record) + "\\n")
_write({{"event": "site", "t": time.time()}})
import atexit
atexit.register(lambda: _write({{"event": "call", "name": "atexit (interpreter finalising)",
                                  "t0": time.time(), "t1": time.time()}}))
def _wrap(name, function):
    def timed(*args, **kwargs):
        begun = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            _write({{"event": "call", "name": name, "t0": begun, "t1": time.time()}})
    timed.__wrapped__ = function
    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(timed, attr, getattr(function, attr, None))
    return timed
class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in _TIMED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module
        def exec_module(module):
            original(module)
            for dotted in _TIMED[fullname]:
                owner, _, attr = dotted.rpartition(".")
                holder = getattr(module, owner) if owner else module
                setattr(holder, attr, _wrap(dotted, getattr(holder, attr)))
        loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, _Finder())
def _hook(event, args):
    if event == "subprocess.Popen" and os.getppid() == {parent}:
        what = args[1] if isinstance(args[1], str) else " ".join(map(str, args[1]))
        _write({{"event": "popen", "t": time.time(), "what": what[:120]}})
sys.addaudithook(_hook)
"""


def site_env(directory: Path) -> tuple[dict[str, str], Path]:
    """``PYTHONPATH`` with the timing ``sitecustomize``, and its log."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "phases.log"
    text = _SITE.format(log=str(log), timed=TIMED, parent=os.getpid())
    (directory / "sitecustomize.py").write_text(text)
    return {"PYTHONPATH": str(directory)}, log


def timeline(log: Path, started: float, ended: float) -> list[tuple[float, float, str]]:
    """(start ms, end ms, what) relative to the command's start, in start order."""
    spans: list[tuple[float, float, str]] = []
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "site":
            spans.append((0.0, (record["t"] - started) * 1000, "interpreter up"))
        elif record["event"] == "call":
            spans.append(
                (
                    (record["t0"] - started) * 1000,
                    (record["t1"] - started) * 1000,
                    record["name"],
                )
            )
        else:
            at = (record["t"] - started) * 1000
            spans.append((at, at, f"process: {record['what']}"))
    spans.append((0.0, (ended - started) * 1000, "whole command"))
    return sorted(spans)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.phases")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument(
        "--venvs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "poetry-torch-cuda-bench",
    )
    parser.add_argument("--verbose", action="store_true", help="run switch with -vv")
    parser.add_argument(
        "--memory", action="store_true", help="also peak memory of Poetry's floor"
    )
    args = parser.parse_args(argv)
    plugin, plain = prepare_venvs(args.venvs.resolve())
    root = Path(tempfile.mkdtemp(prefix="poetry-torch-cuda-phases-"))
    world, megabytes = network.prepare(root, plugin, plain)
    project = world.ws.projects[network.NAMES[0]]
    extra, log = site_env(root / "site")
    totals: dict[str, list[float]] = {}
    target = workspace.VARIANT
    try:
        for run in range(args.runs):
            target = (
                workspace.OTHER if target == workspace.VARIANT else workspace.VARIANT
            )
            world.cold()
            log.unlink(missing_ok=True)
            command = [plugin.poetry, "--no-ansi", "torch-cuda", "switch", target]
            if args.verbose:
                command.insert(2, "-vv")
            env = {**project.env, **extra}
            begun = time.time()
            result = timing.captured(command, project.path, env)
            ended = time.time()
            if result.returncode != 0:
                print(result.stdout, result.stderr)
                return result.returncode
            print(f"\nrun {run + 1}: switch {target} ({megabytes} MB world)")
            if args.verbose:
                print(result.stdout)
            seen: dict[str, int] = {}
            for start, end, what in timeline(log, begun, ended):
                print(f"  {start:8.0f} {end:8.0f} {end - start:7.0f}  {what}")
                count = seen[what] = seen.get(what, 0) + 1
                key = what if count == 1 else f"{what} #{count}"
                if not what.startswith("process:"):
                    totals.setdefault(key, []).append(end - start)
        if args.memory:
            memory(plugin.poetry, project, target)
        print("\nmedian duration (ms) of each phase:")
        for key, values in sorted(
            totals.items(), key=lambda kv: -statistics.median(kv[1])
        ):
            print(f"  {statistics.median(values):8.0f}  {key}")
    finally:
        world.ws.index.stop()
    return 0


def peak_mib(command: Sequence[object], project: Project) -> float:
    """ru_maxrss of the largest process ``command`` runs, in MiB."""
    launcher = [sys.executable, str(Path(__file__).with_name("maxrss.py"))]
    result = timing.run([*launcher, *command], project.path, project.env)
    return int(result.stderr.strip().splitlines()[-1].split()[1]) / 1024


def memory(poetry: Path, project: Project, last: str, runs: int = 3) -> None:
    """Peak memory of Poetry alone, of a no-op plugin command, and of a cold switch."""
    back = workspace.OTHER if last == workspace.VARIANT else workspace.VARIANT
    commands = {
        "poetry --version": [poetry, "--version"],
        "poetry env info --path (project loaded)": [poetry, "env", "info", "--path"],
        "poetry torch-cuda status": [poetry, "torch-cuda", "status"],
        "python -m pip --version (the env's pip)": [
            project.python,
            "-m",
            "pip",
            "--version",
        ],
    }
    print(f"\npeak memory (ru_maxrss, MiB, median of {runs}):")
    for name, command in commands.items():
        values = [peak_mib(command, project) for _ in range(runs)]
        print(f"  {statistics.median(values):7.1f}  {name}")
    values = []
    for run in range(runs):
        target = back if run % 2 == 0 else last
        values.append(
            peak_mib([poetry, "--no-ansi", "torch-cuda", "switch", target], project)
        )
    print(f"  {statistics.median(values):7.1f}  poetry torch-cuda switch (warm caches)")


if __name__ == "__main__":
    sys.exit(main())

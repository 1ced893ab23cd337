"""The measurements: each returns one row of the table."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from benchmarks.probes import audit_env
from benchmarks.probes import importtime_env
from benchmarks.probes import is_ours
from benchmarks.probes import read_audit
from benchmarks.probes import self_times
from benchmarks.report import Row
from benchmarks.timing import Stopwatch
from benchmarks.timing import measure_pairs
from benchmarks.timing import run
from benchmarks.timing import timed
from benchmarks.workspace import AUTO
from benchmarks.workspace import NO_TABLE
from benchmarks.workspace import OTHER
from benchmarks.workspace import VARIANT


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.poetry_project import Project

    from benchmarks.probes import AuditEvent
    from benchmarks.timing import Sample
    from benchmarks.venvs import PoetryVenv
    from benchmarks.workspace import Workspace


def startup(ws: Workspace, pairs: int) -> Row:
    """``poetry --version``, with the plugin vs the same Poetry without it."""
    cwd = ws.root / "no-project"
    cwd.mkdir(exist_ok=True)
    result = measure_pairs(
        "startup",
        lambda: timed([ws.plugin.poetry, "--version"], cwd, ws.env),
        lambda: timed([ws.plain.poetry, "--version"], cwd, ws.env),
        pairs,
        warmup=2,
    )
    no_plugins = statistics.median(
        timed([ws.plain.poetry, "--no-plugins", "--version"], cwd, ws.env).wall
        for _ in range(5)
    )
    return Row(
        "1. startup: `poetry --version`",
        "with plugin",
        "same Poetry without it",
        result,
        "≤ 1.03",
        result.ratio <= 1.03,
        notes=f"for scale, `--no-plugins` (no plugin manager at all): {no_plugins * 1000:.0f} ms",
    )


def noop_install(ws: Workspace, pairs: int) -> Row:
    """``poetry install`` with nothing to do, with the plugin vs without it."""
    return _noop(ws, pairs, "noop-plugin", "2. no-op `poetry install`", "cu129")


def noop_auto(ws: Workspace, pairs: int) -> Row:
    """The same with ``variant = "auto"`` on a machine whose nvidia-smi says 575."""
    title = '2c. no-op `poetry install`, `variant = "auto"`'
    return _noop(ws, pairs, AUTO, title, "auto (fake nvidia-smi)", "(row 2's) ")


def _noop(
    ws: Workspace, pairs: int, name: str, title: str, variant: str, note: str = ""
) -> Row:
    project, plain = ws.projects[name], ws.projects["noop-plain"]
    before = project.installed()
    requests: list[str] = []

    def with_plugin() -> Sample:
        ws.index.clear_requests()
        sample = ws.poetry(ws.plugin, project, "install")
        requests.extend(ws.index.requests)
        return sample

    result = measure_pairs(
        title.split(" ", 1)[0] + " no-op install",
        with_plugin,
        lambda: ws.poetry(ws.plain, plain, "install"),
        pairs,
    )
    if project.installed() != before:
        raise SystemExit(f"bench: the no-op install changed {name}'s environment")
    ours = _audit(ws, ws.plugin, project, "install")
    theirs = _audit(ws, ws.plain, plain, "install")
    ours_spawned = [e.what for e in ours if e.ours and e.event != "socket.connect"]
    ours_net = [e.what for e in ours if e.ours and e.event == "socket.connect"]
    poetry_with = [e for e in ours if not e.ours and e.event != "socket.connect"]
    poetry_without = [e for e in theirs if e.event != "socket.connect"]
    whl = [path for path in requests if path.startswith("/whl/")]
    shown = "; ".join(_command_name(what) for what in ours_spawned)
    notes = (
        f"started by our code: {len(ours_spawned)} processes"
        f"{f' ({shown})' if shown else ''}, {len(ours_net)} connections; "
        f"by Poetry itself: {len(poetry_with)} processes with the plugin, "
        f"{len(poetry_without)} without; index requests in the {pairs + 1} runs "
        f"with the plugin: {len(requests)} ({len(whl)} to /whl/)"
    )
    met = result.ratio <= 1.05 and not ours_spawned and not ours_net and not whl
    return Row(
        title,
        f"with plugin, {variant} installed",
        "without plugin, PyPI build installed",
        result,
        f"{note}≤ 1.05, 0 subprocesses, 0 requests",
        met,
        notes=notes,
    )


def no_table(ws: Workspace, pairs: int) -> Row:
    """``poetry install`` with nothing to do in a project that does not use the plugin."""
    project = ws.projects[NO_TABLE]
    result = measure_pairs(
        "no-op install, no table",
        lambda: ws.poetry(ws.plugin, project, "install"),
        lambda: ws.poetry(ws.plain, project, "install"),
        pairs,
    )
    return Row(
        "2b. no-op `poetry install`, project without the table",
        "with plugin",
        "without plugin (same project, same .venv)",
        result,
        "(not in the issue) ≈ 1.00",
        result.ratio <= 1.02,
    )


def ritual(ws: Workspace, pairs: int) -> Row:
    """The plugin's no-op install vs ``poetry install`` + ``pip install torch…``."""
    project, manual = ws.projects["noop-plugin"], ws.projects["ritual"]

    def seed_ritual() -> Sample:
        with Stopwatch() as watch:
            run([ws.plain.poetry, "--no-ansi", "install"], manual.path, manual.env)
            ws.pip_install(manual, VARIANT)
        return watch.sample

    result = measure_pairs(
        "vs ritual",
        lambda: ws.poetry(ws.plugin, project, "install"),
        seed_ritual,
        pairs,
    )
    torch, torchvision = ws.wheels
    return Row(
        "3. vs the seed ritual",
        "plugin's no-op install",
        f"`poetry install` + `pip install torch=={torch}+{VARIANT} "
        f"torchvision=={torchvision}+{VARIANT} --index-url …/{VARIANT}`",
        result,
        "≤ 0.5",
        result.ratio <= 0.5,
    )


def switch(ws: Workspace, pairs: int, title: str = "") -> Row:
    """``poetry torch-cuda switch`` vs pip doing the same installs and removals."""
    project, manual = ws.projects["switch-plugin"], ws.projects["switch-pip"]
    current = {"a": VARIANT, "b": VARIANT}
    removed: dict[str, set[str]] = {}

    def flip(side: str) -> str:
        current[side] = OTHER if current[side] == VARIANT else VARIANT
        return current[side]

    def with_plugin() -> Sample:
        target = flip("a")
        before = set(project.installed())
        sample = ws.poetry(ws.plugin, project, "torch-cuda", "switch", target)
        removed.setdefault(target, before - set(project.installed()))
        return sample

    def bare_pip() -> Sample:
        target = flip("b")
        orphans = sorted(removed[target] & set(manual.installed()))
        with Stopwatch() as watch:
            ws.pip_install(manual, target)
            if orphans:
                manual.pip("uninstall", "--yes", *orphans)
        return watch.sample

    title = title or f"4. switch {VARIANT} ⇄ {OTHER}"
    result = measure_pairs(title.split(":")[0], with_plugin, bare_pip, pairs)
    same = project.installed() == manual.installed()
    return Row(
        title,
        "`poetry torch-cuda switch`",
        "`pip install` the same wheels from the same index + `pip uninstall` the same orphans",
        result,
        "≤ 1.10",
        result.ratio <= 1.10,
        notes="" if same else "WARNING: the two environments ended up different",
    )


def import_cost(ws: Workspace, runs: int = 5) -> Row:
    """What ``-X importtime`` attributes to the plugin when Poetry starts."""
    env = {**ws.env, **importtime_env(ws.root / "importtime-shim")}
    cwd = ws.root / "no-project"
    cwd.mkdir(exist_ok=True)

    def sample(venv: PoetryVenv, *args: str, where: Path = cwd) -> dict[str, int]:
        command = [str(venv.python), "-X", "importtime", "-m", "poetry", "--no-ansi"]
        command.extend(args)
        return self_times(run(command, where, env).stderr)

    pairs = [
        (sample(ws.plugin, "--version"), sample(ws.plain, "--version"))
        for _ in range(runs)
    ]
    baseline = set().union(*(b for _, b in pairs))
    ours = [sum(us for m, us in a.items() if is_ours(m)) for a, _ in pairs]
    extra_names = sorted(
        {m for a, _ in pairs for m in a if m not in baseline and not is_ours(m)}
    )
    extra = [sum(a.get(m, 0) for m in extra_names) for a, _ in pairs]
    total_ms = statistics.median(o + e for o, e in zip(ours, extra)) / 1000
    modules = sorted({m for a, _ in pairs for m in a if is_ours(m)})
    install = [
        sample(ws.plugin, "install", where=ws.projects["noop-plugin"].path)
        for _ in range(3)
    ]
    install_ms = (
        statistics.median(sum(us for m, us in a.items() if is_ours(m)) for a in install)
        / 1000
    )
    install_modules = len({m for a in install for m in a if is_ours(m)})
    return Row(
        "5. import cost on startup",
        "our modules + modules only the plugin imports",
        "—",
        None,
        "≤ 5 ms",
        total_ms <= 5,
        value=f"{total_ms:.1f} ms",
        notes=(
            f"`poetry --version` imports {', '.join(modules)}"
            f"{'; and ' + ', '.join(extra_names) if extra_names else '; nothing else'}; "
            f"the no-op install imports {install_modules} of our modules ({install_ms:.1f} ms)"
        ),
    )


def lock_time(ws: Workspace, pairs: int) -> Row:
    """``poetry torch-cuda lock`` of two variants (cu129, cu130): cold, then warm."""
    import shutil

    from tests.support.poetry_project import Project

    source = ws.projects["noop-plugin"]
    project = Project(ws.root / "lock-time", source.index, dict(source.env))
    project.path.mkdir(exist_ok=True)
    project.write_pyproject(
        source.pyproject_text().replace(
            'variant = "cu129"', 'variant = "cu129"\nlock-variants = ["cu129", "cu130"]'
        )
    )
    project.lockfile.write_text(source.lock_text())
    cache = ws.root / "lock-time-cache"
    project.env["POETRY_CACHE_DIR"] = str(cache)
    samples = []
    for _ in range(max(pairs, 3)):
        (project.path / "torch-cuda.lock").unlink(missing_ok=True)
        samples.append(ws.poetry(ws.plugin, project, "torch-cuda", "lock").wall)
    cold = samples[0]
    warm = statistics.median(samples[1:])
    shutil.rmtree(cache, ignore_errors=True)
    files = (project.path / "torch-cuda.lock").read_text().count("hash = ")
    return Row(
        "6. lock: `poetry torch-cuda lock`, 2 variants",
        "cu129 + cu130, every page asked afresh",
        "—",
        None,
        "reported",
        True,
        value=f"{warm * 1000:.0f} ms",
        notes=(
            f"first run with an empty metadata cache {cold * 1000:.0f} ms; "
            f"{files} files locked; median of {len(samples) - 1} warm runs"
        ),
    )


def _command_name(command: str) -> str:
    """``/long/path/nvidia-smi --query…`` -> ``nvidia-smi --query…``."""
    program, _, args = command.partition(" ")
    return f"{program.rsplit('/', 1)[-1]} {args}".strip()


def _audit(
    ws: Workspace, venv: PoetryVenv, project: Project, *args: str
) -> list[AuditEvent]:
    extra, log = audit_env(ws.root / "audit")
    run([venv.poetry, "--no-ansi", *args], project.path, {**project.env, **extra})
    return read_audit(log)

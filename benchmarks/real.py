"""The real-scale rows of issue 23 (``--real``): the real CUDA families over a capped link.

Per pair, each contender runs its whole sequence in a fresh venv (made untimed
with the virtualenv Poetry itself uses) from empty caches, the order of the
contenders flipped every pair:

- the plugin: ``poetry install`` (verification off) of a project configured for
  cu130 against this index, ``poetry torch-cuda verify`` (the verification row),
  ``switch cu126`` (cold for the CUDA 12 files), ``switch cu130`` (warm), then
  ``verify`` again, which must pass: the cu130 side has to import after a switch back;
- uv: ``uv pip install`` of the same builds, then the same two changes as
  ``uv pip install`` + ``uv pip uninstall`` of the other family's orphans;
- pip: ``pip install … --index-url`` (first install only).

``--real-variant NAME:KEY=VALUE[,KEY=VALUE]`` adds the plugin again with those
environment variables (upper-case KEY) or keys of the project's table (lower-case:
``no-stash:keep-previous-build=false``), for the per-optimisation table (with/without,
same run).
Every venv is deleted after its sequence (each holds ~6 GB).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.poetry_project import installed_distributions
from tests.support.poetry_project import isolated_env
from tests.support.poetry_project import render_pyproject

from benchmarks import realworld
from benchmarks import timing
from benchmarks.network import Measured
from benchmarks.network import uv_command
from benchmarks.report import Row
from benchmarks.timing import Pairs


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping
    from collections.abc import Sequence

    from benchmarks.venvs import PoetryVenv

MB = 1024 * 1024
BYTES_PER_SECOND = 40 * MB
LATENCY = 0.020
NEW, OLD = realworld.NEW, realworld.OLD
HERE = Path(__file__).resolve().parent
FIRST, SWITCH, BACK, VERIFY = "first", "switch", "back", "verify"


@dataclass
class Runs:
    """What one contender measured, step by step, pair by pair."""

    steps: dict[str, list[Measured]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    poetry_peaks: list[int] = field(default_factory=list)  # KiB, Poetry's own process
    noop_peaks: list[int] = field(default_factory=list)

    def add(self, step: str, sample: Measured) -> None:
        self.steps.setdefault(step, []).append(sample)


class Bench:
    """The served world, a locked template project and the contenders' sequences."""

    def __init__(
        self,
        root: Path,
        plugin: PoetryVenv,
        world: realworld.World,
        url: str,
        port_url: str,
    ) -> None:
        self.root = root
        self.plugin = plugin
        self.world = world
        self.url = url
        self.uv = uv_command()
        self.switching = OLD in world.families
        self.caches = root / "caches"
        self.rss_log = root / "rss.log"
        env = isolated_env(
            root,
            {
                "PIP_CACHE_DIR": str(self.caches / "pip"),
                "UV_CACHE_DIR": str(self.caches / "uv"),
                "UV_NO_CONFIG": "1",
                "PYTHONDONTWRITEBYTECODE": None,
                "POETRY_TORCH_CUDA_VERIFY": "0",
            },
        )
        self.env = env
        self.template = root / "template"
        self.template.mkdir(parents=True)

        class _Index:  # what render_pyproject reads
            url = port_url
            pypi_url = f"{port_url}/simple/"

        text = render_pyproject(
            _Index,  # type: ignore[arg-type]
            {"torch": realworld.TORCH, "torchvision": realworld.TORCHVISION},
            torch_cuda=f'variant = "{NEW}"',
            name="real-bench",
        )
        # Every wheel here is for CPython 3.11 (torch needs >= 3.10).
        text = text.replace('requires-python = ">=3.9"', 'requires-python = "~=3.11.0"')
        (self.template / "pyproject.toml").write_text(text)
        _say("locking the template project (poetry lock, poetry torch-cuda lock)")
        self.fresh_venv(self.template)
        for args in (["lock"], ["torch-cuda", "lock"]):
            timing.run([plugin.poetry, "--no-ansi", *args], self.template, env)
        shutil.rmtree(self.template / ".venv")

    # -- plumbing -------------------------------------------------------------

    def cold(self) -> None:
        home = Path(self.env["POETRY_CACHE_DIR"])
        for path in (home / "artifacts", home / "poetry-torch-cuda", self.caches):
            shutil.rmtree(path, ignore_errors=True)

    def fresh_venv(self, project: Path) -> Path:
        venv = project / ".venv"
        command = [self.plugin.python, "-m", "virtualenv", "--quiet", venv]
        timing.run(command, project, self.env)
        return venv

    def project(self, name: str) -> Path:
        path = self.root / "runs" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        for file in ("pyproject.toml", "poetry.lock", "torch-cuda.lock"):
            if (self.template / file).is_file():
                shutil.copy2(self.template / file, path / file)
        self.fresh_venv(path)
        return path

    def measured(
        self,
        commands: Sequence[Sequence[object]],
        cwd: Path,
        extra: Mapping[str, str | None] | None = None,
    ) -> Measured:
        env = dict(self.env)
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        peak, cpu = 0, 0.0
        begun = time.perf_counter()
        for command in commands:
            launcher = [sys.executable, str(HERE / "maxrss.py")]
            result = timing.run([*launcher, *command], cwd, env)
            last = result.stderr.strip().splitlines()[-1].split()
            peak = max(peak, int(last[1]))
            cpu += float(last[2])
        return Measured(time.perf_counter() - begun, cpu, peak)

    def torch(self, project: Path) -> str:
        return installed_distributions(project / ".venv").get("torch", "none")

    def expect(self, project: Path, variant: str, who: str) -> None:
        found = self.torch(project)
        if found != f"{realworld.TORCH}+{variant}":
            raise SystemExit(f"bench: {who} left torch {found}, not +{variant}")

    def requirements(self, variant: str) -> list[str]:
        return [
            f"torch=={realworld.TORCH}+{variant}",
            f"torchvision=={realworld.TORCHVISION}+{variant}",
        ]

    def present(self, project: Path, names: Sequence[str]) -> list[str]:
        installed = installed_distributions(project / ".venv")
        return [name for name in names if name in installed]

    def poetry_peak(self) -> int:
        """Poetry's own peak (KiB) in the last run that logged one, then clear the log."""
        lines = self.rss_log.read_text().splitlines() if self.rss_log.is_file() else []
        self.rss_log.unlink(missing_ok=True)
        peaks = [
            int(line.split()[-1])
            for line in lines
            if line.split()[1].endswith("poetry")
        ]
        return max(peaks, default=0)

    # -- the contenders ---------------------------------------------------------

    def plugin_sequence(self, runs: Runs, name: str, extra: Mapping[str, str]) -> None:
        project = self.project(name)
        # A lower-case KEY is a key of the project's table (keep-previous-build=false),
        # an upper-case one an environment variable.
        table = {k: v for k, v in extra.items() if k.islower()}
        extra = {k: v for k, v in extra.items() if not k.islower()}
        if table:
            pyproject = project / "pyproject.toml"
            text = pyproject.read_text()
            keys = "".join(f"{key} = {value}\n" for key, value in table.items())
            marker = "[tool.poetry-torch-cuda]\n"
            pyproject.write_text(text.replace(marker, marker + keys, 1))
        self.cold()
        poetry = [self.plugin.poetry, "--no-ansi"]
        rss = {"PYTHONPATH": str(HERE / "rss"), "PTC_BENCH_RSS_LOG": str(self.rss_log)}
        self.rss_log.unlink(missing_ok=True)
        runs.add(
            FIRST, self.measured([[*poetry, "install"]], project, {**extra, **rss})
        )
        runs.poetry_peaks.append(self.poetry_peak())
        self.expect(project, NEW, f"{name}: poetry install")
        self.measured([[*poetry, "install"]], project, {**extra, **rss})  # a no-op
        runs.noop_peaks.append(self.poetry_peak())
        verify = [*poetry, "torch-cuda", "verify"]
        no_flag = {**extra, "POETRY_TORCH_CUDA_VERIFY": None}
        runs.add(VERIFY, self.measured([verify], project, no_flag))
        if not self.switching:
            shutil.rmtree(project)
            return
        switch = [*poetry, "torch-cuda", "switch"]
        runs.add(SWITCH, self.measured([[*switch, OLD]], project, extra))
        self.expect(project, OLD, f"{name}: switch {OLD}")
        runs.add(BACK, self.measured([[*switch, NEW]], project, extra))
        self.expect(project, NEW, f"{name}: switch back to {NEW}")
        after = timing.captured(
            verify, project, {**self.env, **extra, "POETRY_TORCH_CUDA_VERIFY": "1"}
        )
        said = (after.stdout + after.stderr).strip().splitlines()
        runs.notes.append(
            f"verify after the switch back: exit {after.returncode}"
            + ("" if after.returncode == 0 else f" ({said[-1] if said else ''})")
        )
        shutil.rmtree(project)

    def uv_sequence(self, runs: Runs, name: str) -> None:
        assert self.uv is not None
        project = self.project(name)
        self.cold()
        python = str(project / ".venv" / "bin" / "python")

        def install(variant: str, orphans: Sequence[str] = ()) -> list[list[object]]:
            url = f"{self.url}/whl/{variant}"
            commands: list[list[object]] = [
                [self.uv, "pip", "install", "--python", python, "--index-url", url,
                 *self.requirements(variant)]
            ]  # fmt: skip
            if orphans:
                commands.append(
                    [self.uv, "pip", "uninstall", "--python", python, *orphans]
                )
            return commands

        runs.add(FIRST, self.measured(install(NEW), project))
        self.expect(project, NEW, "uv")
        if self.switching:
            gone = self.present(project, self.world.orphans(NEW, OLD))
            runs.add(SWITCH, self.measured(install(OLD, gone), project))
            self.expect(project, OLD, "uv switch")
            gone = self.present(project, self.world.orphans(OLD, NEW))
            runs.add(BACK, self.measured(install(NEW, gone), project))
            self.expect(project, NEW, "uv switch back")
        shutil.rmtree(project)

    def pip_sequence(self, runs: Runs, name: str) -> None:
        project = self.project(name)
        self.cold()
        python = project / ".venv" / "bin" / "python"
        url = f"{self.url}/whl/{NEW}"
        command = [
            python,
            "-m",
            "pip",
            "install",
            "--index-url",
            url,
            *self.requirements(NEW),
        ]
        runs.add(FIRST, self.measured([command], project))
        self.expect(project, NEW, "pip")
        shutil.rmtree(project)


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def parse_variants(texts: Sequence[str]) -> dict[str, dict[str, str]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` -> {NAME: {KEY: VALUE}}."""
    variants: dict[str, dict[str, str]] = {}
    for text in texts:
        name, _, assignments = text.partition(":")
        pairs = [item.partition("=") for item in assignments.split(",") if item]
        variants[name] = {key: value for key, _, value in pairs}
    return variants


def rows(
    root: Path,
    plugin: PoetryVenv,
    pairs: int,
    variants: Mapping[str, Mapping[str, str]],
    pip_pairs: int,
    report: Callable[[list[Row], list[str]], None],
) -> tuple[list[Row], list[str]]:
    """Build and serve the world, run the interleaved pairs; the rows and notes."""
    try:
        world = realworld.build(root / "world")
    except realworld.Unreachable as unreachable:
        _say(f"real-scale rows skipped: PyPI cannot be reached ({unreachable})")
        return [], [f"skipped: PyPI cannot be reached ({unreachable})"]
    index = realworld.RealIndex(world.root).start()
    try:
        bench = Bench(root / "work", plugin, world, index.url, index.url)
        index.bytes_per_second = BYTES_PER_SECOND
        index.latency_seconds = LATENCY
        index.immutable_files = True
        return _run(bench, pairs, variants, pip_pairs, report)
    finally:
        index.stop()


def _run(
    bench: Bench,
    pairs: int,
    variants: Mapping[str, Mapping[str, str]],
    pip_pairs: int,
    report: Callable[[list[Row], list[str]], None],
) -> tuple[list[Row], list[str]]:
    """Each pair's contenders in turn; ``report`` gets the rows so far after each pair."""
    names = ["plugin", *(f"plugin[{name}]" for name in variants)]
    results = {name: Runs() for name in names}
    contenders: list[tuple[str, object]] = [
        (name, lambda runs, n=name: bench.plugin_sequence(runs, n, dict(variants.get(n[7:-1], {}))))
        for name in names
    ]  # fmt: skip
    if bench.uv is not None:
        results["uv"] = Runs()
        contenders.append(("uv", lambda runs: bench.uv_sequence(runs, "uv")))
    else:
        _say("uv is not installed: its columns stay empty")
    if pip_pairs:
        results["pip"] = Runs()
        contenders.append(("pip", lambda runs: bench.pip_sequence(runs, "pip")))
    for index in range(pairs):
        order = contenders if index % 2 == 0 else contenders[::-1]
        for name, sequence in order:
            if name == "pip" and index >= pip_pairs:
                continue
            begun = time.perf_counter()
            sequence(results[name])  # type: ignore[operator]
            steps = ", ".join(
                f"{step} {samples[-1].wall:.1f} s"
                for step, samples in results[name].steps.items()
            )
            _say(
                f"pair {index + 1}/{pairs} {name}: {steps} ({time.perf_counter() - begun:.0f} s in all)"
            )
        report(_rows(bench, results, variants), _notes(bench, results, index + 1))
    return _rows(bench, results, variants), _notes(bench, results, pairs)


def _pairs(a: Runs, b: Runs, step: str) -> Pairs | None:
    if step not in a.steps or step not in b.steps:
        return None
    return Pairs(tuple(a.steps[step]), tuple(b.steps[step]))


def _rows(
    bench: Bench, results: dict[str, Runs], variants: Mapping[str, object]
) -> list[Row]:
    ours = results["plugin"]
    found: list[Row] = []
    spec = [
        (FIRST, "uv", "R1. first install, cold caches (cu130: torch + torchvision)",
         "`poetry install` (verification off)", "`uv pip install` of the same builds", 1.0),
        (FIRST, "pip", "R1b. the same vs pip", "`poetry install` (verification off)",
         "`pip install … --index-url`", 0.3),
        (SWITCH, "uv", f"R2. switch {NEW} → {OLD}, cold caches", f"`poetry torch-cuda switch {OLD}`",
         "`uv pip install` + `uv pip uninstall` of the same change", 1.0),
        (BACK, "uv", f"R3. switch back {OLD} → {NEW}, warm caches", f"`poetry torch-cuda switch {NEW}`",
         "uv's warm reinstall + `uv pip uninstall`", 1.0),
    ]  # fmt: skip
    for step, other, title, a, b, target in spec:
        if other not in results:
            continue
        pairs = _pairs(ours, results[other], step)
        if pairs is None:
            found.append(
                Row(title, a, b, None, f"≤ {target:.2f}", False, value="not run")
            )
            continue
        found.append(Row(title, a, b, pairs, f"≤ {target:.2f}", pairs.ratio <= target))
    verify = ours.steps.get(VERIFY, [])
    if verify:
        seconds = ", ".join(f"{s.wall:.1f} s" for s in verify)
        found.append(
            Row(
                "R4. verification of the real cu130 build",
                "`poetry torch-cuda verify` (one child imports torch) after the first install",
                "—",
                None,
                "measured",
                True,
                value=seconds,
            )
        )
    if "pip" in results and ours.poetry_peaks:
        pip_peak = statistics.median(s.peak_kib for s in results["pip"].steps[FIRST])
        first = statistics.median(ours.poetry_peaks)
        floor = statistics.median(ours.noop_peaks)
        added = max(first - floor, 0)
        found.append(
            Row(
                "R5. peak memory: the plugin's addition over Poetry's own",
                "Poetry's process in the first install minus in a no-op `poetry install`",
                "pip's peak in its first install",
                None,
                "≤ 0.20",
                added / pip_peak <= 0.20,
                value=(
                    f"{first / 1024:.0f} - {floor / 1024:.0f} = {added / 1024:.0f} MB vs "
                    f"{pip_peak / 1024:.0f} MB: **{added / pip_peak:.2f}**"
                ),
            )
        )
    for name in variants:
        theirs = results[f"plugin[{name}]"]
        for step, title in (
            (FIRST, "first install"),
            (SWITCH, "switch"),
            (BACK, "switch back"),
        ):
            pairs = _pairs(theirs, ours, step)
            if pairs is not None:
                found.append(
                    # without the optimisation / with it: it pays where this is >= 1.05
                    Row(f"O. {title}: plugin[{name}] vs plugin", f"with {name}", "as built",
                        pairs, "≥ 1.05: it pays", pairs.ratio >= 1.05)
                )  # fmt: skip
    return found


def _notes(bench: Bench, results: dict[str, Runs], done: int) -> list[str]:
    world = bench.world
    sizes = ", ".join(
        f"{variant} {len(names)} wheels, {world.megabytes[variant]} MB"
        for variant, names in world.families.items()
    )
    lines = [
        (
            f"world: {sizes}; {BYTES_PER_SECOND // MB} MB/s per connection, "
            f"{LATENCY * 1000:.0f} ms latency; {done} pair(s) done, "
            f"{environment_load()} at the end"
        )
    ]
    for name, runs in results.items():
        for step, samples in runs.steps.items():
            walls = ", ".join(f"{s.wall:.1f}" for s in samples)
            lines.append(
                f"{name} {step}: {walls} s (peak {max(s.peak_kib for s in samples) / 1024:.0f} MB)"
            )
        lines.extend(f"{name}: {note}" for note in runs.notes)
    return lines


def environment_load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"

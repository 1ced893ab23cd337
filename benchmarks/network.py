"""The download-bound world of issue 16: a real switch's wheels, scaled, over a capped link.

Each variant index holds torch, torchvision, triton and the twelve CUDA wheels of
its build with the real relative sizes, scaled to about ``MB_PER_VARIANT`` MB per
variant, PEP 658 metadata files beside them. The local server answers every
request after ``LATENCY`` seconds and sends each response body at
``BYTES_PER_SECOND`` per connection, as a CDN caps one flow; wheels are marked
immutable, as PyPI's and PyTorch's CDNs do, so pip's HTTP cache may keep them.
Every cold run starts with empty caches (Poetry's artifacts and the plugin's
index cache, pip's cache, uv's cache).
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.catalog import LINUX
from tests.support.catalog import WheelSpec
from tests.support.catalog import build_universe
from tests.support.catalog import default_specs
from tests.support.fake_torch import make_verifiable
from tests.support.index import IndexServer
from tests.support.wheels import canonical_name

from benchmarks import timing
from benchmarks import workspace
from benchmarks.heavy import _pad_wheel
from benchmarks.report import Row
from benchmarks.timing import Pairs
from benchmarks.timing import Sample


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Sequence

    from tests.support.catalog import Universe
    from tests.support.poetry_project import Project

    from benchmarks.venvs import PoetryVenv

MB = 1024 * 1024
MB_PER_VARIANT = 100
BYTES_PER_SECOND = 8 * MB
LATENCY = 0.030
TORCH = "2.14.1"
TORCHVISION = "0.29.1"
TRITON = ("triton", "3.6.0", 150)
#: (name, version, real size in MB) of each variant's CUDA wheels (Linux x86_64).
CUDA_WHEELS = {
    "cu129": (
        ("nvidia-cudnn-cu12", "9.10.2.21", 700),
        ("nvidia-cublas-cu12", "12.9.1.4", 590),
        ("nvidia-nccl-cu12", "2.27.3", 290),
        ("nvidia-cusparselt-cu12", "0.7.1", 290),
        ("nvidia-cusparse-cu12", "12.5.10.65", 290),
        ("nvidia-cusolver-cu12", "11.7.5.82", 260),
        ("nvidia-cufft-cu12", "11.4.1.4", 200),
        ("nvidia-cuda-nvrtc-cu12", "12.9.86", 90),
        ("nvidia-curand-cu12", "10.3.10.19", 60),
        ("nvidia-nvjitlink-cu12", "12.9.86", 40),
        ("nvidia-cuda-cupti-cu12", "12.9.79", 10),
        ("nvidia-cuda-runtime-cu12", "12.9.79", 1),
    ),
    "cu130": (
        ("nvidia-cudnn-cu13", "9.13.0.50", 650),
        ("nvidia-cublas", "13.0.2.14", 540),
        ("nvidia-nccl-cu13", "2.28.3", 290),
        ("nvidia-cusparselt-cu13", "0.8.0", 290),
        ("nvidia-cusparse", "12.6.3.3", 290),
        ("nvidia-cusolver", "12.0.4.66", 260),
        ("nvidia-cufft", "12.0.0.61", 200),
        ("nvidia-cuda-nvrtc", "13.0.88", 90),
        ("nvidia-curand", "10.4.0.35", 60),
        ("nvidia-nvjitlink", "13.0.88", 40),
        ("nvidia-cuda-cupti", "13.0.85", 10),
        ("nvidia-cuda-runtime", "13.0.96", 1),
    ),
}
REAL_MB = {"torch": 900, "torchvision": 8}
VARIANTS = (workspace.VARIANT, workspace.OTHER)
NAMES = ("net-plugin", "net-pip", "net-uv")


def build_world(root: Path) -> tuple[Universe, int]:
    """The default universe with the two variants' full CUDA closures, padded."""
    specs = default_specs()
    for variant in VARIANTS:
        closure = [(name, version) for name, version, _ in CUDA_WHEELS[variant]]
        closure.append(TRITON[:2])
        requires = (
            "filelock",
            *(f"{name}=={version}; {LINUX}" for name, version in closure),
        )
        specs[variant] = [
            WheelSpec("torch", f"{TORCH}+{variant}", requires),
            WheelSpec("torchvision", f"{TORCHVISION}+{variant}", (f"torch=={TORCH}",)),
            WheelSpec("filelock", "3.20.0"),
            *(WheelSpec(name, version) for name, version in closure),
        ]
    universe = build_universe(root, specs)
    # Builds that pass verification, which is on, as for users (before padding).
    make_verifiable(universe, VARIANTS)
    sizes = {variant: dict(REAL_MB) for variant in VARIANTS}
    for variant in VARIANTS:
        sizes[variant].update({n: mb for n, _, mb in (*CUDA_WHEELS[variant], TRITON)})
    total = 0
    for built in universe.wheels:
        real = sizes.get(built.index, {}).get(canonical_name(built.spec.name))
        if real is None:
            continue
        scale = MB_PER_VARIANT / sum(sizes[built.index].values())
        size = int(real * scale * MB)
        _pad_wheel(built.path, size)
        total += size
    return universe, total // MB


def uv_command() -> str | None:
    """``uv`` next to the bench's Python (installed by ``nox -s bench``), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


@dataclass
class World:
    """The served world, the three twin projects and their caches."""

    ws: workspace.Workspace
    uv: str | None

    @property
    def cache(self) -> Path:
        return Path(self.ws.env["POETRY_CACHE_DIR"])

    @property
    def pip_cache(self) -> Path:
        return Path(self.ws.env["PIP_CACHE_DIR"])

    @property
    def uv_cache(self) -> Path:
        return self.ws.root / "uv-cache"

    def cold(self) -> None:
        """Empty every download cache (not timed)."""
        for path in (
            self.cache / "artifacts",
            self.cache / "poetry-torch-cuda",
            self.pip_cache,
            self.uv_cache,
        ):
            shutil.rmtree(path, ignore_errors=True)

    def requirements(self, variant: str) -> list[str]:
        return [f"torch=={TORCH}+{variant}", f"torchvision=={TORCHVISION}+{variant}"]

    def pip(self, project: Project, variant: str, orphans: Sequence[str]) -> Sample:
        url = self.ws.index.whl_url(variant)
        commands = [
            [
                project.python,
                "-m",
                "pip",
                "install",
                "--index-url",
                url,
                *self.requirements(variant),
            ]
        ]
        if orphans:
            commands.append([project.python, "-m", "pip", "uninstall", "-y", *orphans])
        return measured(commands, project)

    def uv_switch(
        self, project: Project, variant: str, orphans: Sequence[str]
    ) -> Sample:
        assert self.uv is not None
        url = self.ws.index.whl_url(variant)
        python = str(project.python)
        env = {"UV_CACHE_DIR": str(self.uv_cache), "UV_NO_CONFIG": "1"}
        commands = [
            [
                self.uv,
                "pip",
                "install",
                "--python",
                python,
                "--index-url",
                url,
                *self.requirements(variant),
            ]
        ]
        if orphans:
            commands.append([self.uv, "pip", "uninstall", "--python", python, *orphans])
        return measured(commands, project, env)

    def switch(self, project: Project, variant: str) -> Sample:
        command = [self.ws.plugin.poetry, "--no-ansi", "torch-cuda", "switch", variant]
        return measured([command], project)


@dataclass(frozen=True)
class Measured(Sample):
    """A sample plus the peak resident memory of the largest process it ran (KiB)."""

    peak_kib: int = 0


def measured(
    commands: Sequence[Sequence[object]],
    project: Project,
    extra: dict[str, str] | None = None,
) -> Measured:
    """Run ``commands`` one after another; time and peak memory (through a launcher)."""
    env = {**project.env, **(extra or {})}
    peak = 0
    cpu = 0.0
    begun = time.perf_counter()
    for command in commands:
        launcher = [sys.executable, str(Path(__file__).with_name("maxrss.py"))]
        result = timing.run([*launcher, *command], project.path, env)
        last = result.stderr.strip().splitlines()[-1].split()
        peak = max(peak, int(last[1]))
        cpu += float(last[2])
    return Measured(time.perf_counter() - begun, cpu, peak)


def prepare(root: Path, plugin: PoetryVenv, plain: PoetryVenv) -> tuple[World, int]:
    """Build and serve the world; bring the twin projects to cu129 (not throttled)."""
    universe, megabytes = build_world(root / "net-universe")
    index = IndexServer(universe.root).start()
    print("bench: preparing the download-bound projects", file=sys.stderr, flush=True)
    ws = workspace.prepare(root / "net", index, plugin, plain, NAMES)
    index.bytes_per_second = BYTES_PER_SECOND
    index.latency_seconds = LATENCY
    index.immutable_files = True
    return World(ws, uv_command()), megabytes


def rows(world: World, pairs: int, megabytes: int) -> list[Row]:
    """Cold switch vs pip and vs uv, first install, warm switch back, peak memory."""
    try:
        return _rows(world, pairs, megabytes)
    finally:
        world.ws.index.stop()


def _rows(world: World, pairs: int, megabytes: int) -> list[Row]:
    ws = world.ws
    plugin, by_pip, by_uv = (ws.projects[name] for name in NAMES)
    state = dict.fromkeys(NAMES, workspace.VARIANT)
    orphans: dict[str, list[str]] = {}

    def flip(name: str) -> str:
        state[name] = (
            workspace.OTHER if state[name] == workspace.VARIANT else workspace.VARIANT
        )
        return state[name]

    def plugin_switch(warm: bool = False) -> Measured:
        target = flip("net-plugin")
        if not warm:
            world.cold()
        before = set(plugin.installed())
        sample = world.switch(plugin, target)
        orphans.setdefault(target, sorted(before - set(plugin.installed())))
        return sample

    def pip_switch(warm: bool = False) -> Measured:
        target = flip("net-pip")
        if not warm:
            world.cold()
        return world.pip(by_pip, target, _present(orphans[target], by_pip))

    def uv_switch() -> Measured:
        target = flip("net-uv")
        world.cold()
        return world.uv_switch(by_uv, target, _present(orphans[target], by_uv))

    # Learn the orphans of each direction (one untimed round trip).
    plugin_switch()
    plugin_switch()
    contenders: list[tuple[str, Callable[[], Measured]]] = [("pip", pip_switch)]
    if world.uv is not None:
        contenders.append(("uv", uv_switch))
    results = _interleaved("switch, cold", plugin_switch, contenders, pairs)
    found: list[Row] = []
    world_note = (
        f"{megabytes} MB of wheels in all, {MB_PER_VARIANT} MB per variant; "
        f"{BYTES_PER_SECOND // MB} MB/s per connection, {LATENCY * 1000:.0f} ms latency"
    )
    cold_pip = results["pip"]
    found.append(
        Row(
            f"7. switch {workspace.VARIANT} ⇄ {workspace.OTHER}, cold caches, download-bound",
            "`poetry torch-cuda switch`",
            "bare `pip install` + `pip uninstall` of the same",
            cold_pip,
            "≤ 0.50",
            cold_pip.ratio <= 0.50,
            notes=world_note,
        )
    )
    if "uv" in results:
        cold_uv = results["uv"]
        found.append(
            Row(
                "7b. the same vs uv",
                "`poetry torch-cuda switch`",
                "`uv pip install` + `uv pip uninstall` of the same",
                cold_uv,
                "≤ 1.00",
                cold_uv.ratio <= 1.00,
            )
        )
    else:
        found.append(
            Row("7b. the same vs uv", "—", "uv not installed", None, "≤ 1.00", False)
        )
    found.append(_first_install(world, pairs))
    state.update(dict.fromkeys(NAMES, workspace.VARIANT))  # what it left
    warm = _interleaved(
        "switch back, warm",
        lambda: plugin_switch(warm=True),
        [("pip", lambda: pip_switch(warm=True))],
        pairs,
        warmup=True,
    )["pip"]
    found.append(
        Row(
            "9. switch back to a variant installed before, warm caches",
            "`poetry torch-cuda switch`",
            "pip's warm reinstall + `pip uninstall`",
            warm,
            "≤ 0.80",
            warm.ratio <= 0.80,
        )
    )
    ours = statistics.median(s.peak_kib for s in cold_pip.a)  # type: ignore[attr-defined]
    theirs = statistics.median(s.peak_kib for s in cold_pip.b)  # type: ignore[attr-defined]
    alone, loaded = _poetry_floor(world, plugin)
    # The old "whole process <= 1.2x pip" row is retired (issue 23): Poetry alone,
    # before the plugin does anything, is above it. What the plugin adds is the row.
    added = max(ours - loaded, 0)
    found.append(
        Row(
            "10. the plugin's addition to peak memory, cold switch",
            "switch's peak minus `poetry env info --path`'s (Poetry with the project loaded)",
            "largest process of bare pip's",
            None,
            "≤ 0.20",
            added / theirs <= 0.20,
            value=f"{added / 1024:.1f} MB vs {theirs / 1024:.0f} MB: **{added / theirs:.2f}**",
            notes=(
                "ru_maxrss of the largest process, median of the row-7 runs; Poetry's own "
                f"floor, the same venv: `poetry --version` {alone / 1024:.0f} MB, "
                f"`poetry env info --path` {loaded / 1024:.0f} MB (the old 'whole process "
                "≤ 1.2 x pip' row is retired: Poetry alone is above it)"
            ),
        )
    )
    return found


def _poetry_floor(world: World, project: Project, runs: int = 3) -> tuple[float, float]:
    """Median peak (KiB) of ``poetry --version`` and of ``poetry env info --path``."""
    poetry = world.ws.plugin.poetry
    floors = []
    for args in (["--version"], ["--no-ansi", "env", "info", "--path"]):
        peaks = [measured([[poetry, *args]], project).peak_kib for _ in range(runs)]
        floors.append(statistics.median(peaks))
    return floors[0], floors[1]


def _first_install(world: World, pairs: int) -> Row:
    """``poetry install`` putting the torch part into an env that lacks it, vs pip."""
    ws = world.ws
    plugin, by_pip = ws.projects["net-plugin"], ws.projects["net-pip"]
    family = ["torch", "torchvision", "triton"] + [
        name for variant in VARIANTS for name, _, _ in CUDA_WHEELS[variant]
    ]

    def strip(project: Project) -> None:
        present = _present(family, project)
        if present:
            project.pip("uninstall", "-y", *present)

    def with_plugin() -> Measured:
        strip(plugin)
        world.cold()
        env_variant = {"POETRY_TORCH_CUDA_VARIANT": workspace.VARIANT}
        command = [ws.plugin.poetry, "--no-ansi", "install"]
        saved = plugin.env
        plugin.env = {**saved, **env_variant}
        try:
            return measured([command], plugin)
        finally:
            plugin.env = saved

    def with_pip() -> Measured:
        strip(by_pip)
        world.cold()
        return world.pip(by_pip, workspace.VARIANT, ())

    result = _interleaved("first install", with_plugin, [("pip", with_pip)], pairs)[
        "pip"
    ]
    return Row(
        "8. first `poetry install`, the torch part, cold caches",
        "`poetry install` into an env with Poetry's packages but no torch",
        "bare `pip install` of the same into the same state",
        result,
        "≤ 0.50",
        result.ratio <= 0.50,
        notes="A includes Poetry's own (no-op) install run",
    )


def _interleaved(
    name: str,
    run_a: Callable[[], Measured],
    others: Sequence[tuple[str, Callable[[], Measured]]],
    pairs: int,
    *,
    warmup: bool = False,
) -> dict[str, Pairs]:
    """A against each other contender, pair by pair, the order flipped every round."""
    for _ in range(2 if warmup else 0):  # both directions in every cache
        run_a()
        for _, run_b in others:
            run_b()
    a: dict[str, list[Sample]] = {key: [] for key, _ in others}
    b: dict[str, list[Sample]] = {key: [] for key, _ in others}
    for index in range(pairs):
        for key, run_b in others:
            if index % 2 == 0:
                a[key].append(run_a())
                b[key].append(run_b())
            else:
                b[key].append(run_b())
                a[key].append(run_a())
            print(
                f"bench: {name} vs {key} {index + 1}/{pairs}: "
                f"A {a[key][-1].wall * 1000:.0f} ms, B {b[key][-1].wall * 1000:.0f} ms",
                file=sys.stderr,
                flush=True,
            )
    return {key: Pairs(tuple(a[key]), tuple(b[key])) for key, _ in others}


def _present(names: Sequence[str], project: Project) -> list[str]:
    installed = set(project.installed())
    return [name for name in names if canonical_name(name) in installed]

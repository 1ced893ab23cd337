"""Interleaved A/B timing: per-pair ratios, their median, min and max.

Each run is measured twice: wall-clock time, which is what a user waits, and
the CPU time of the processes it started (user + system, from
``RUSAGE_CHILDREN``), which another job on a busy machine disturbs far less.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING


try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Mapping
    from collections.abc import Sequence
    from pathlib import Path
    from types import TracebackType

    from typing_extensions import Self


@dataclass(frozen=True)
class Sample:
    """One measured run: wall-clock and children's CPU seconds."""

    wall: float
    cpu: float


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.sample``."""

    sample = Sample(0.0, 0.0)

    def __enter__(self) -> Self:
        self._cpu = _children_cpu()
        self._wall = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        wall = time.perf_counter() - self._wall
        self.sample = Sample(wall, _children_cpu() - self._cpu)


def _children_cpu() -> float:
    if resource is None:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Pairs:
    """The A and B samples, pair by pair."""

    a: tuple[Sample, ...]
    b: tuple[Sample, ...]

    @property
    def ratios(self) -> list[float]:
        return [a.wall / b.wall for a, b in zip(self.a, self.b)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def ratio_min(self) -> float:
        return min(self.ratios)

    @property
    def ratio_max(self) -> float:
        return max(self.ratios)

    @property
    def cpu_ratio(self) -> float | None:
        if not all(sample.cpu for sample in (*self.a, *self.b)):
            return None
        return statistics.median(a.cpu / b.cpu for a, b in zip(self.a, self.b))

    @property
    def a_ms(self) -> float:
        return statistics.median(sample.wall for sample in self.a) * 1000

    @property
    def b_ms(self) -> float:
        return statistics.median(sample.wall for sample in self.b) * 1000


def measure_pairs(
    name: str,
    run_a: Callable[[], Sample],
    run_b: Callable[[], Sample],
    pairs: int,
    *,
    warmup: int = 1,
) -> Pairs:
    """Run A and B ``pairs`` times, alternating which goes first (AB BA AB ...).

    Each callable runs once and returns what it measured. ``warmup``
    unmeasured rounds of both come first (page cache, bytecode, pip's cache).
    """
    for _ in range(warmup):
        run_a()
        run_b()
    a: list[Sample] = []
    b: list[Sample] = []
    for index in range(pairs):
        if index % 2 == 0:
            a.append(run_a())
            b.append(run_b())
        else:
            b.append(run_b())
            a.append(run_a())
        print(
            f"bench: {name} {index + 1}/{pairs}: "
            f"A {a[-1].wall * 1000:.0f} ms, B {b[-1].wall * 1000:.0f} ms",
            file=sys.stderr,
            flush=True,
        )
    return Pairs(tuple(a), tuple(b))


def captured(
    command: Sequence[object], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to completion, no stdin, its output captured, any exit code."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def run(
    command: Sequence[object], cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to completion; a non-zero exit stops the benchmark."""
    result = captured(command, cwd, env)
    if result.returncode != 0:
        raise SystemExit(
            f"$ {' '.join(result.args)}\nexit code {result.returncode}\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


def timed(command: Sequence[str | Path], cwd: Path, env: Mapping[str, str]) -> Sample:
    """Run ``command``; what it took, from process start to exit."""
    with Stopwatch() as watch:
        run(command, cwd, env)
    return watch.sample

"""The results table, the machine's description and ``RESULTS.md``."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from benchmarks.timing import Pairs

START = "<!-- bench:start (written by `nox -s bench`; edit outside this block) -->"
END = "<!-- bench:end -->"
REAL_START = "<!-- bench-real:start (written by `nox -s bench -- --real`) -->"
REAL_END = "<!-- bench-real:end -->"

_TEMPLATE = """\
# Benchmarks

`nox -s bench` (or `python -m benchmarks.bench --pairs N`) measures what the plugin
costs Poetry and what it saves, against the offline local indexes the tests use.

{block}

## What moved the numbers

(Write down here what profiling found and what changed.)
"""


@dataclass(frozen=True)
class Row:
    """One line of the table: A against B, or a single value (``pairs`` is None)."""

    scenario: str
    a: str
    b: str
    pairs: Pairs | None
    target: str
    met: bool
    value: str | None = None
    notes: str = ""


def machine(
    poetry_python: Path, pairs: int, project_pip: str, load: tuple[float, float]
) -> list[str]:
    """Bullet lines describing this machine and run."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    versions = subprocess.run(
        [
            str(poetry_python),
            "-c",
            (
                "import platform, importlib.metadata as m; "
                "print(platform.python_version(), m.version('poetry'))"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        (
            f"CPU: {cpu}, {os.cpu_count()} logical cores; "
            f"load average {load[0]:.2f} before, {load[1]:.2f} after"
        ),
        f"OS: {platform.platform()}",
        (
            f"Python {versions[0]}, Poetry {versions[1]}, pip {project_pip} "
            "in the projects' virtualenvs"
        ),
        (
            f"{pairs} pairs per row, A and B interleaved (AB BA AB ...) after a "
            f"warm-up round; {date}"
        ),
    ]


def table(rows: list[Row]) -> str:
    """The Markdown table, one row per measurement, then the notes."""
    lines = [
        (
            "| Measurement | A | B | A median | B median | A - B "
            "| A/B median (min-max) | CPU A/B | Target | Met |"
        ),
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for row in rows:
        if row.pairs is None:
            cells = [row.value or "", "—", "—", "—", "—"]
        else:
            p = row.pairs
            cpu = p.cpu_ratio
            cells = [
                f"{p.a_ms:.0f} ms",
                f"{p.b_ms:.0f} ms",
                f"{p.a_ms - p.b_ms:+.0f} ms",
                f"**{p.ratio:.3f}** ({p.ratio_min:.3f}-{p.ratio_max:.3f})",
                "—" if cpu is None else f"{cpu:.3f}",
            ]
        verdict = "yes" if row.met else "**no**"
        lines.append(
            f"| {row.scenario} | {row.a} | {row.b} | {' | '.join(cells)} "
            f"| {row.target} | {verdict} |"
        )
    notes = [f"- {row.scenario}: {row.notes}" for row in rows if row.notes]
    return "\n".join([*lines, "", *notes])


def write_results(
    path: Path,
    rows: list[Row],
    description: list[str],
    markers: tuple[str, str] = (START, END),
    title: str = "## Latest run",
) -> None:
    """Replace the generated block of ``path`` between ``markers`` (create the file if needed)."""
    start, end = markers
    block = "\n".join(
        [start, title, "", *(f"- {line}" for line in description), "", table(rows), end]
    )
    text = (
        path.read_text()
        if path.is_file()
        else _TEMPLATE.format(block=f"{START}\n{END}")
    )
    if start not in text or end not in text:
        text = f"{text.rstrip()}\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{block}{tail}")

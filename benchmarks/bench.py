"""``python -m benchmarks.bench [--pairs N] [--only startup,noop,...] [--real]``.

Builds the tests' fake universe, serves it on 127.0.0.1, prepares one Poetry
with the plugin and the same Poetry without it, runs the measurements, prints
one table and writes it to ``benchmarks/RESULTS.md``. ``--real`` runs the
real-scale rows instead (``benchmarks/real.py``: the real CUDA families), into
their own block of the same file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.catalog import build_universe
from tests.support.fake_torch import make_verifiable
from tests.support.index import IndexServer

from benchmarks import network
from benchmarks import real
from benchmarks import scenarios
from benchmarks import workspace
from benchmarks.heavy import pad_universe
from benchmarks.report import REAL_END
from benchmarks.report import REAL_START
from benchmarks.report import machine
from benchmarks.report import table
from benchmarks.report import write_results
from benchmarks.venvs import prepare


if TYPE_CHECKING:
    from collections.abc import Callable

    from benchmarks.report import Row
    from benchmarks.venvs import PoetryVenv

MEASUREMENTS: dict[str, Callable[[workspace.Workspace, int], Row]] = {
    "startup": scenarios.startup,
    "noop": scenarios.noop_install,
    "notable": scenarios.no_table,
    "auto": scenarios.noop_auto,
    "ritual": scenarios.ritual,
    "switch": scenarios.switch,
    "imports": lambda ws, _pairs: scenarios.import_cost(ws),
    "verify": scenarios.verification,
    "lock": scenarios.lock_time,
}
HEAVY = "heavy"
#: The download-bound rows of issue 16 (benchmarks/network.py), run by default.
NETWORK = "network"
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench")
    parser.add_argument("--pairs", type=int, default=10, help="A/B pairs per row")
    parser.add_argument(
        "--only",
        default=",".join([*MEASUREMENTS, NETWORK]),
        help=f"comma-separated, from {', '.join([*MEASUREMENTS, NETWORK, HEAVY])} "
        f"(default: all but {HEAVY})",
    )
    parser.add_argument(
        "--net-pairs",
        type=int,
        default=3,
        help=f"pairs per {NETWORK} row (each run moves ~100 MB over a capped link)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=0.1,
        help="heavy switch: wheel sizes as a share of the real ones (default 0.1)",
    )
    parser.add_argument(
        "--venvs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "poetry-torch-cuda-bench",
        help="where the two Poetry venvs are kept between runs",
    )
    parser.add_argument(
        "--plugin-src",
        type=Path,
        default=HERE.parent,
        help="the checkout of poetry-torch-cuda to measure (default: this tree)",
    )
    parser.add_argument(
        "--real",
        action="store_true",
        help="only the real-scale rows: the real CUDA 13.0 and 12 families "
        "(~6 GB of wheels cached in ~/.cache/ptc-real; each venv ~6 GB, deleted after use)",
    )
    parser.add_argument(
        "--real-pairs", type=int, default=2, help="pairs of the real-scale rows"
    )
    parser.add_argument(
        "--real-variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="with --real: the plugin again with these environment variables "
        "(an optimisation switched off), compared with the plugin as built",
    )
    parser.add_argument(
        "--real-pip-pairs",
        type=int,
        default=None,
        help="with --real: in how many of the pairs pip runs (default: all; 0: never)",
    )
    parser.add_argument(
        "--real-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="with --real: where the world and the venvs are made (needs ~25 GB)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - {*MEASUREMENTS, HEAVY, NETWORK})
    if unknown or args.pairs < 1:
        parser.error(f"unknown measurement {unknown}" if unknown else "--pairs >= 1")

    load = os.getloadavg()[0]
    source = args.plugin_src.resolve()
    plugin, plain = prepare(args.venvs.resolve(), source=source, plain=not args.real)
    if args.real:
        return real_rows(args, plugin, load)
    root = Path(tempfile.mkdtemp(prefix="poetry-torch-cuda-bench-"))
    try:
        rows: list[Row] = []
        project_pip = "?"
        if set(chosen) & set(MEASUREMENTS):
            universe = build_universe(root / "universe")
            # Builds that pass verification, which is on, as for users.
            make_verifiable(universe, (workspace.VARIANT, workspace.OTHER))
            with IndexServer(universe.root) as index:
                print("bench: preparing the projects", file=sys.stderr, flush=True)
                ws = workspace.prepare(root / "work", index, plugin, plain)
                project_pip = ws.projects["noop-plugin"].installed()["pip"]
                rows = [
                    MEASUREMENTS[name](ws, args.pairs)
                    for name in chosen
                    if name in MEASUREMENTS
                ]
        if NETWORK in chosen:
            world, megabytes = network.prepare(root, plugin, plain)
            project_pip = world.ws.projects[network.NAMES[0]].installed()["pip"]
            rows.extend(network.rows(world, max(1, args.net_pairs), megabytes))
        if HEAVY in chosen:
            rows.append(heavy_switch(root, plugin, plain, args.pairs, args.scale))
    finally:
        if args.keep:
            print(f"bench: workspace kept at {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    description = machine(
        plugin.python, args.pairs, project_pip, (load, os.getloadavg()[0])
    )
    print("\n".join(f"- {line}" for line in description))
    print()
    print(table(rows))
    if not args.no_write:
        write_results(args.output, rows, description)
        print(f"\nbench: wrote {args.output}", file=sys.stderr)
    return 0


def real_rows(args: argparse.Namespace, plugin: PoetryVenv, load: float) -> int:
    """The real-scale rows (issue 23), written between their own markers."""
    root = Path(tempfile.mkdtemp(prefix="ptc-real-bench-", dir=args.real_dir))
    pairs = max(1, args.real_pairs)
    pip_pairs = pairs if args.real_pip_pairs is None else args.real_pip_pairs

    def report(found: list[Row], notes: list[str]) -> None:
        description = machine(
            plugin.python, pairs, "(each venv's own)", (load, os.getloadavg()[0])
        )
        description[-1] = description[-1].replace(
            "A and B interleaved (AB BA AB ...) after a warm-up round",
            "each contender's whole sequence in turn, the order flipped every pair, "
            f"no warm-up; pip in {min(pip_pairs, pairs)} of them",
        )
        description.append(f"plugin from {args.plugin_src.resolve()}")
        description.extend(notes)
        print("\n".join(f"- {line}" for line in description))
        print()
        print(table(found), flush=True)
        if not args.no_write and found:
            write_results(
                args.output,
                found,
                description,
                (REAL_START, REAL_END),
                "### Latest run",
            )
            print(f"\nbench: wrote {args.output}", file=sys.stderr)

    try:
        variants = real.parse_variants(args.real_variant)
        real.rows(root, plugin, pairs, variants, min(pip_pairs, pairs), report)
    finally:
        if args.keep:
            print(f"bench: workspace kept at {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def heavy_switch(
    root: Path, plugin: PoetryVenv, plain: PoetryVenv, pairs: int, scale: float
) -> Row:
    """The switch row again, on wheels padded to ``scale`` of their real size."""
    universe = build_universe(root / "heavy-universe")
    make_verifiable(universe, (workspace.VARIANT, workspace.OTHER))
    megabytes = pad_universe(universe, (workspace.VARIANT, workspace.OTHER), scale)
    with IndexServer(universe.root) as index:
        print("bench: preparing the heavy projects", file=sys.stderr, flush=True)
        names = ("switch-plugin", "switch-pip")
        ws = workspace.prepare(root / "heavy", index, plugin, plain, names)
        title = f"4b. switch, wheels at {scale:g}x real size ({megabytes} MB in all)"
        return scenarios.switch(ws, max(3, (pairs + 1) // 2), title)


if __name__ == "__main__":
    sys.exit(main())

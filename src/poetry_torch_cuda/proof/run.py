"""Run :mod:`.child` with an environment's Python: an argument list, a timeout and its
own session, so a hung CUDA initialisation dies with all it started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


CHILD = Path(__file__).with_name("child.py")
#: Kept in step with ``child.MARKER`` (the child is never imported here).
MARKER = "@@poetry-torch-cuda-proof@@"
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class ProbeRun:
    """The child's report, or why there is none; its stderr for ``-vvv``."""

    report: dict[str, Any] | None
    error: str | None = None
    stderr: str = ""
    timed_out: bool = False


def probe_command(python: str, packages: list[str]) -> list[str]:
    """The child's argument list: ``python -I child.py '{"packages": [...]}'``."""
    request = json.dumps({"packages": packages})
    return [python, "-I", str(CHILD), request]


def run_probe(python: str, packages: list[str], timeout: float) -> ProbeRun:
    """Run the probe in ``python``'s environment; give up after ``timeout`` seconds."""
    try:
        process = subprocess.Popen(
            probe_command(python, packages),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as error:
        return ProbeRun(None, f"could not start {python}: {error.strerror or error}")
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException as error:  # a timeout, Ctrl-C, SIGTERM: the group dies with it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if hasattr(os, "killpg"):
                os.killpg(process.pid, signal.SIGKILL)
            else:  # Windows: no process groups
                process.kill()
        out, err = process.communicate()
        if not isinstance(error, subprocess.TimeoutExpired):
            raise
        return ProbeRun(
            None,
            f"the check did not finish within {timeout:g} s (stopped it)",
            err,
            True,
        )
    report = parse_output(out)
    if report is not None:
        return ProbeRun(report, None, err)
    return ProbeRun(None, _died(process.returncode, err), err)


def parse_output(stdout: str) -> dict[str, Any] | None:
    """The report after the last marker line of ``stdout``, or ``None``."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            with contextlib.suppress(ValueError):
                data = json.loads(line[len(MARKER) :])
                if isinstance(data, dict):
                    return data
            return None
    return None


def _died(returncode: int, stderr: str) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return (
            f"the check process was killed by {name} (the Python or a library crashed)"
        )
    last = next(
        (line.strip() for line in reversed(stderr.splitlines()) if line.strip()),
        "no output",
    )
    return f"the check process exited with code {returncode}: {last}"

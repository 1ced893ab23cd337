"""Run :mod:`.child` with an environment's Python: an argument list, a timeout and its
own session, so a hung CUDA initialisation dies with all it started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poetry_torch_cuda.install.signals import signal_name
from poetry_torch_cuda.proof.child import MARKER


CHILD = Path(__file__).with_name("child.py")
#: A hang at exit after the report (a note); a timeout's, a SIGKILL's cause and fix.
HUNG = "the check hung at exit after its report; verify-timeout ({}) stopped it (a "
HUNG += "library's thread or exit handler never returns: programs using torch may too)"
STAYS = "the build stays installed; {} and run `poetry torch-cuda verify`"
SLOW = "importing torch or starting the GPU takes longer than verify-timeout (a first "
SLOW += "CUDA import from a network filesystem can)"
OOM = "most likely out of memory: the kernel's out-of-memory killer sends SIGKILL"
SIGNED = "macOS kills with SIGKILL a process loading a library whose code signature it "
SIGNED += "refuses (a changed or unsigned .so or .dylib), or one out of memory"
CONSOLE = "its crash report in Console says which (CODESIGNING: reinstall the package "
CONSOLE += "of the library it names; else free memory)"


@dataclass(frozen=True)
class ChildRun:
    """The child's report, or why there is none; its stderr for ``-vvv``."""

    report: dict[str, Any] | None
    error: str | None = None
    stderr: str = ""
    unchecked: tuple[str, str] | None = None  # cause, fix: neither proof nor failure


def run_child(python: str, packages: list[str], timeout: float) -> ChildRun:
    """Run ``python -I child.py '["torch", ...]'`` (a crash says where on stderr);
    give up after ``timeout`` s."""
    try:
        process = subprocess.Popen(
            [python, "-I", "-X", "faulthandler", str(CHILD), json.dumps(packages)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as error:
        return ChildRun(None, f"could not start {python}: {error.strerror or error}")
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException as error:  # a timeout, Ctrl-C, SIGTERM: the group dies with it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if hasattr(os, "killpg"):
                os.killpg(process.pid, signal.SIGKILL)
            else:  # Windows: no process groups
                process.kill()
        out = err = ""
        with contextlib.suppress(subprocess.TimeoutExpired):  # stuck in a driver
            out, err = process.communicate(timeout=3)
        if not isinstance(error, subprocess.TimeoutExpired):
            raise
        stopped = f"the check did not finish within {timeout:g} s (stopped it)"
        why = SLOW, STAYS.format("raise verify-timeout in [tool.poetry-torch-cuda]")
        if (report := parse_output(out)) is None:  # else it hung at exit: a note
            return ChildRun(None, stopped, err, why)
        return ChildRun(report, HUNG.format(f"{timeout:g} s"), err)
    if (report := parse_output(out)) is not None:
        return ChildRun(report, None, err)
    killed = signal_name(-code) if (code := process.returncode) < 0 else None
    if killed == "SIGKILL":  # no trace, no crash: the kernel's, likely
        why = OOM, STAYS.format("free memory (or raise the container's memory limit)")
        if sys.platform == "darwin":  # the env's kernel too; elsewhere as on Linux
            why = SIGNED, STAYS.format(CONSOLE)
        return ChildRun(None, "the check process was killed by SIGKILL", err, why)
    last = [line.strip() for line in err.splitlines() if line.strip()] or ["no output"]
    died = f"exited with code {code}: {last[-1]}"
    if killed:
        died = f"was killed by {killed} (the Python or a library crashed)"
    return ChildRun(None, f"the check process {died}", err)


def parse_output(stdout: str) -> dict[str, Any] | None:
    """The report after the last marker line of ``stdout``, or ``None``."""
    found = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    with contextlib.suppress(IndexError, ValueError):  # no marker, or no JSON after it
        data = json.loads(found[-1][len(MARKER) :])
        return data if isinstance(data, dict) else None
    return None

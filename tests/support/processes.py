"""Run ``poetry`` in the background and look at the processes it starts (Linux /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.poetry_project import poetry_executable
from tests.support.poetry_project import with_overrides


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterator
    from collections.abc import Mapping
    from collections.abc import Sequence

    from tests.support.index import IndexServer
    from tests.support.poetry_project import Project


__all__ = [
    "captured",
    "cmdline",
    "descendants",
    "environ",
    "finish",
    "mounted_tmpfs",
    "paused_at",
    "pip_processes",
    "run_sampled",
    "running",
    "start_poetry",
    "wait_for",
    "wait_for_request",
]


def start_poetry(
    project: Project,
    *args: str,
    env_extra: Mapping[str, str | None] | None = None,
    wrapper: Sequence[str] = (),
) -> subprocess.Popen[str]:
    """Start ``[*wrapper] poetry --no-ansi *args`` in a session (process group) of its own.

    Its output is captured; ``os.killpg(process.pid, ...)`` signals the
    whole group, as a terminal's Ctrl-C or a CI runner's cancel does.
    """
    return subprocess.Popen(
        [*wrapper, str(poetry_executable()), "--no-ansi", *args],
        cwd=project.path,
        env=with_overrides(project.env, env_extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


#: A removal's last step, its .dist-info's, once the files are gone: Poetry 2.5's
#: uninstaller deletes it; pip (Poetry 2.0-2.4) moves it aside as it moved the files.
LAST_STEP = ("shutil.rmtree", "os.rename")

#: Loaded by every Python started with :func:`paused_at`'s variables.
_PAUSE = """\
import os, sys, time
def _pause(event, args):
    paths = args[:2] if event == "os.rename" else args[:1]  # a rename's target too
    if event not in {events!r} or not any(
        str(path).rstrip("/").endswith({suffix!r}) for path in paths
    ):
        return
    if event == "open" and "w" not in str(args[1] or ""):
        return
    if not os.path.exists({marker!r}):
        with open({marker!r} + ".new", "w") as stream:
            stream.write(str(os.getpid()))
        os.replace({marker!r} + ".new", {marker!r})  # it appears with the pid
        for _ in range(12000):  # until a signal ends it, or the test lets it go on
            if os.path.exists({marker!r} + "-go"):
                break
            time.sleep(0.05)
sys.addaudithook(_pause)
"""


def paused_at(
    directory: Path, suffix: str, event: str | tuple[str, ...] = "open"
) -> tuple[dict[str, str], Path]:
    """Variables that make a Python started with them (Poetry, and the pip it
    runs) wait at the audit ``event`` (or the first of several) on a path ending
    with ``suffix`` (``open``: for writing; ``os.remove``; ``os.rename``: its
    source, pip's folders with a ``/``, or its target: an atomic write's
    ``os.replace``), until a signal stops it; and the file
    that appears then, holding its pid.

    A test signals at that moment, not after a sleep: ``wait_for`` the file; a
    ``<file>-go`` file lets it go on (where its signals wait, ``signals.held``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / "paused"
    marker.unlink(missing_ok=True)
    events = (event,) if isinstance(event, str) else event
    code = _PAUSE.format(events=events, suffix=suffix, marker=str(marker))
    (directory / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": str(directory)}, marker


def captured(
    command: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to the end with no stdin; its output captured as text.

    With ``check`` a non-zero exit raises ``CalledProcessError``.
    """
    return subprocess.run(
        list(command),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


@contextmanager
def running(
    project: Project,
    *args: str,
    env_extra: Mapping[str, str | None] | None = None,
    wrapper: Sequence[str] = (),
) -> Iterator[subprocess.Popen[str]]:
    """:func:`start_poetry`; whatever happens inside, its process group is
    killed on the way out if it is still running (a failed wait, a timeout)."""
    process = start_poetry(project, *args, env_extra=env_extra, wrapper=wrapper)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def finish(
    process: subprocess.Popen[str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Wait up to ``timeout`` seconds for ``process`` to end; what it printed."""
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def wait_for_request(index: IndexServer, prefix: str, timeout: float = 120) -> None:
    """Wait until ``index`` has received a request for a path starting with ``prefix``."""
    wait_for(
        lambda: any(path.startswith(prefix) for path in index.requests),
        timeout,
        f"a request for {prefix}",
    )


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Process ids of every living descendant of ``pid``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name))
            if parent is not None:
                parents[int(entry.name)] = parent
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


#: Whether the kernel has ``/proc/<pid>/task/<tid>/children`` (CONFIG_PROC_CHILDREN).
_HAS_CHILDREN_FILES = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def _children_tree(pid: int) -> list[int]:
    """Like :func:`descendants`, from ``/proc/<pid>/task/<tid>/children``: cheap
    enough to call every few milliseconds (it reads only the tree's own files)."""
    if not _HAS_CHILDREN_FILES:
        return descendants(pid)
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            frontier.extend(children)
    return found


def cmdline(pid: int) -> list[str]:
    """The argument list of a process, as any user of the machine can read it."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def environ(pid: int) -> dict[str, str]:
    """The environment of a process (readable by its own user only)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def pip_processes(pid: int) -> list[int]:
    """Descendants of ``pid`` that run pip (``-m pip`` or an embedded pip wheel)."""
    found = []
    for child in descendants(pid):
        try:
            args = cmdline(child)
        except OSError:
            continue
        if any(arg == "pip" or arg.endswith(("/pip", ".whl/pip")) for arg in args):
            found.append(child)
    return found


def run_sampled(
    project: Project,
    *args: str,
    env_extra: Mapping[str, str | None] | None = None,
    interval: float = 0.02,
) -> tuple[subprocess.CompletedProcess[str], set[tuple[str, ...]]]:
    """Run ``poetry --no-ansi *args`` to the end, sampling command lines meanwhile.

    Every ``interval`` seconds the argument lists of Poetry's process and all
    its living descendants are read from ``/proc``, as any user of the
    machine could. Returns the finished process and every distinct
    argument list seen.
    """
    process = start_poetry(project, *args, env_extra=env_extra)
    seen: set[tuple[str, ...]] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in (process.pid, *_children_tree(process.pid)):
                try:
                    seen.add(tuple(cmdline(pid)))
                except OSError:
                    continue  # it ended in between
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        stdout, stderr = process.communicate(timeout=project.timeout)
    finally:
        done.set()
        sampler.join()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    command = [str(poetry_executable()), "--no-ansi", *args]
    result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    return result, seen


@contextmanager
def mounted_tmpfs(directory: Path) -> Iterator[Path]:
    """A 1 MB tmpfs at ``directory``, a disk to fill; the test skips where mounting
    is not allowed."""
    directory.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(directory)]
    if subprocess.run(mount, capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=False)

"""Watch a ``poetry`` process from inside: what it starts, connects to and imports.

:func:`audit_env` writes a ``sitecustomize`` that Python loads at start-up
(through ``PYTHONPATH``) and that adds an audit hook to the process. Every
process start (``subprocess.Popen``, ``os.system``, ``os.posix_spawn``,
``os.exec``) and every ``socket.connect`` is logged as one JSON line with a flag
that says whether our plugin's code was on the stack. When the process that
loaded it was started by the test itself, it also records at exit which of our
modules it imported. :class:`Audit` reads both back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from pathlib import Path

    from tests.support.index import IndexServer

_SITECUSTOMIZE = """\
import atexit, json, os, sys
_LOG = {log!r}
_MODULES = {modules!r}
_PARENT = {parent}
_WATCHED = ("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "socket.connect")
def _ours():
    frame = sys._getframe(1)
    while frame is not None:
        if "poetry_torch_cuda" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False
def _argv(event, args):
    if event == "subprocess.Popen":
        argv = args[1]
    elif event == "os.system":
        argv = args[0]
    elif event == "socket.connect":
        return [repr(args[-1])]
    else:
        argv = args[1]
    if isinstance(argv, (str, bytes)):
        return [os.fsdecode(argv)]
    return [os.fsdecode(a) if isinstance(a, (str, bytes)) else str(a) for a in argv]
def _hook(event, args):
    if event in _WATCHED:
        line = json.dumps({{"event": event, "argv": _argv(event, args), "ours": _ours()}})
        with open(_LOG, "a") as stream:
            stream.write(line + "\\n")
def _dump():
    modules = sorted(m for m in sys.modules if m.split(".")[0] == "poetry_torch_cuda")
    with open(_MODULES, "w") as stream:
        json.dump(modules, stream)
sys.addaudithook(_hook)
if os.getppid() == _PARENT:
    atexit.register(_dump)
"""


@dataclass(frozen=True)
class Event:
    """One audited event: its name, the argv (or address) and whether our code did it."""

    event: str
    argv: list[str]
    ours: bool

    @property
    def command(self) -> str:
        """The argv joined with spaces."""
        return " ".join(self.argv)


@dataclass(frozen=True)
class Audit:
    """Where one watched run logs its events and modules."""

    directory: Path

    @property
    def log(self) -> Path:
        return self.directory / "events.jsonl"

    @property
    def modules_file(self) -> Path:
        return self.directory / "modules.json"

    def env(self) -> dict[str, str]:
        """Variables that make a ``poetry`` run load the hook; clears earlier logs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log.unlink(missing_ok=True)
        self.modules_file.unlink(missing_ok=True)
        (self.directory / "sitecustomize.py").write_text(
            _SITECUSTOMIZE.format(
                log=str(self.log), modules=str(self.modules_file), parent=os.getpid()
            )
        )
        return {"PYTHONPATH": str(self.directory)}

    def events(self) -> list[Event]:
        """Every event logged so far, in order."""
        if not self.log.exists():
            return []
        return [Event(**json.loads(line)) for line in self.log.read_text().splitlines()]

    def started(self) -> list[Event]:
        """The processes started (not the connections)."""
        return [event for event in self.events() if event.event != "socket.connect"]

    def modules(self) -> list[str]:
        """Our modules the watched ``poetry`` process had imported when it exited."""
        return list(json.loads(self.modules_file.read_text()))


def whl_requests(index: IndexServer) -> list[str]:
    """The requests the index saw for its per-variant ``/whl/`` pages and files."""
    return [path for path in index.requests if path.startswith("/whl/")]

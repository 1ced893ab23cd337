"""Probes put into Poetry's process with a ``sitecustomize`` on ``PYTHONPATH``.

Probed runs are never the timed ones.

* :func:`audit_env`: an audit hook logs every process start and socket
  connection of the Poetry process, marked ``ours`` when a frame of
  ``poetry_torch_cuda`` is on the stack at that moment.
* :func:`importtime_env`: ``-X importtime`` only sees the ``import`` statement,
  not ``importlib.import_module`` - which is how Poetry loads entry points and
  how ``plugins.py`` loads commands - so this shim routes ``import_module``
  through ``__import__`` to make those imports visible too.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from pathlib import Path

OURS = "poetry_torch_cuda"

_AUDIT = """\
import json, os, sys
_LOG = {log!r}
_PARENT = {parent}
_EVENTS = ("subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn",
           "os.exec", "os.fork", "socket.connect")
def _ours():
    frame = sys._getframe(2)
    while frame is not None:
        if "/poetry_torch_cuda/" in frame.f_code.co_filename.replace("\\\\", "/"):
            return True
        frame = frame.f_back
    return False
def _hook(event, args):
    if event in _EVENTS and os.getppid() == _PARENT:
        if event == "subprocess.Popen":
            what = args[1] if isinstance(args[1], str) else " ".join(map(str, args[1]))
        else:
            what = args[-1] if args else ""
        with open(_LOG, "a") as stream:
            stream.write(json.dumps({{"event": event, "ours": _ours(),
                                      "what": str(what)[:160]}}) + "\\n")
sys.addaudithook(_hook)
"""

_IMPORT_SHIM = """\
import importlib, importlib.metadata, sys
_original = importlib.import_module
def _visible(name, package=None):
    if package or name.startswith("."):
        return _original(name, package)
    __import__(name)
    return sys.modules[name]
importlib.import_module = _visible
importlib.metadata.import_module = _visible
"""


@dataclass(frozen=True)
class AuditEvent:
    event: str
    ours: bool
    what: str


def audit_env(directory: Path) -> tuple[dict[str, str], Path]:
    """Env additions that log the Poetry process's events, and the log's path."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "audit.log"
    log.unlink(missing_ok=True)
    text = _AUDIT.format(log=str(log), parent=os.getpid())
    (directory / "sitecustomize.py").write_text(text)
    return {"PYTHONPATH": str(directory)}, log


def read_audit(log: Path) -> list[AuditEvent]:
    if not log.exists():
        return []
    return [AuditEvent(**json.loads(line)) for line in log.read_text().splitlines()]


def importtime_env(directory: Path) -> dict[str, str]:
    """Env additions that make ``-X importtime`` see ``import_module`` too."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_IMPORT_SHIM)
    return {"PYTHONPATH": str(directory)}


_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


def self_times(stderr: str) -> dict[str, int]:
    """Module -> self time in microseconds, from ``-X importtime`` output."""
    times: dict[str, int] = {}
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if match:
            times[match.group(4)] = int(match.group(1))
    return times


def is_ours(module: str) -> bool:
    return module == OURS or module.startswith(f"{OURS}.")

"""Signals during the plugin's own work: their names, and handlers only while it runs.

Handlers are set in the main thread on POSIX for the duration of one block
and the previous ones put back after it: the plugin never changes how
Poetry's process handles signals outside its own work.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import NoReturn


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterator

#: The signals that stop a run: Ctrl-C, ``kill``, a closed terminal.
STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15; ``signal 99`` for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop(signum: int) -> NoReturn:
    """The handler that makes SIGTERM and SIGHUP stop the work as Ctrl-C does: a
    ``KeyboardInterrupt`` carrying the signal's number."""
    raise KeyboardInterrupt(signum)


def signum_of(interrupt: KeyboardInterrupt) -> int:
    """The signal behind ``interrupt`` (a plain Ctrl-C is SIGINT)."""
    signum = interrupt.args[0] if interrupt.args else None
    return signum if isinstance(signum, int) else signal.SIGINT


@contextmanager
def handling(handler: Callable[[int], None]) -> Iterator[None]:
    """``handler(signum)`` runs on each stopping signal during the block."""
    if os.name != "posix" or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda n, _: handler(n)) for s in STOPPING}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def held() -> Iterator[None]:
    """The stopping signals wait until the block is done (it must not be cut short).

    Recorded by a handler and raised again after the block, not masked: a mask
    holds back only this thread's signals, while ``kill`` may be taken by any
    thread of the process and its Python handler still runs here at once.
    """
    received: list[int] = []
    with handling(received.append):
        yield
    if received:
        signal.raise_signal(received[0])

"""Signals during the plugin's own work: their names, and handlers only while it runs
(in the main thread on POSIX, the previous ones put back after the block)."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import NoReturn

from poetry_torch_cuda.errors import TorchCudaError


if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Iterator


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15; ``signal 99`` for a number with no name."""
    return next((s.name for s in signal.Signals if s == signum), f"signal {signum}")


def stop(signum: int) -> NoReturn:
    """The handler that makes SIGTERM and SIGHUP stop the work as Ctrl-C does."""
    raise KeyboardInterrupt(signum)


def signum_of(interrupt: KeyboardInterrupt) -> int:
    """The signal behind ``interrupt`` (a plain Ctrl-C is SIGINT)."""
    return next((n for n in interrupt.args[:1] if isinstance(n, int)), signal.SIGINT)


def stopped(interrupt: KeyboardInterrupt, what: str) -> TorchCudaError:
    """``SIGTERM stopped {what}``, to end the run with 128 + the signal's number."""
    error = TorchCudaError(f"{signal_name(signum_of(interrupt))} stopped {what}")
    error.exit_code = 128 + signum_of(interrupt)
    return error


@contextmanager
def stopping(what: Callable[[], str]) -> Iterator[None]:
    """SIGTERM and SIGHUP as Ctrl-C during the block; a stop ends the run with
    ``{signal} stopped {what()}`` (the words read once it stopped)."""
    try:
        with handling(stop):
            yield
    except KeyboardInterrupt as interrupt:
        raise stopped(interrupt, what()) from None


#: The blocks that must finish running now (a put-back): their handler outranks inner ones.
_finishing: list[Callable[[int], None]] = []


@contextmanager
def handling(handler: Callable[[int], None], *, finish: bool = False) -> Iterator[None]:
    """``handler(signum)`` runs on each stopping signal during the block; in a block
    that must ``finish``, its own handler and not an inner block's (pip's forwarding)."""
    here = os.name == "posix" and threading.current_thread() is threading.main_thread()
    # Ctrl-C, ``kill``, a closed terminal (POSIX names: Windows has no SIGHUP); one
    # ignored before (nohup's SIGHUP, a script's background job's SIGINT) stays so.
    every = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if here else ()
    stopping = [s for s in every if signal.getsignal(s) != signal.SIG_IGN]
    handler = _finishing[-1] if _finishing else handler
    previous = {s: signal.signal(s, lambda n, _: handler(n)) for s in stopping}
    finish = finish and here
    if finish:
        _finishing.append(handler)
    try:
        yield
    finally:
        if finish:
            _finishing.pop()
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def held() -> Iterator[None]:
    """The stopping signals wait until the block is done (it must not be cut short).

    Recorded and raised again after the block, not masked: a mask holds back only this
    thread's signals, while any thread may take a ``kill``, whose handler runs here.
    """
    received: list[int] = []
    with handling(received.append, finish=True):
        yield
    if received:
        signal.raise_signal(received[0])

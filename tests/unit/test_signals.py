"""Signal names, and handlers set only for the duration of the plugin's own work."""

from __future__ import annotations

import os
import signal

import pytest

from poetry_torch_cuda.install import signals


def test_names_and_numbers_without_a_name() -> None:
    assert signals.signal_name(signal.SIGTERM) == "SIGTERM"
    assert signals.signal_name(99) == "signal 99"


def test_a_stopping_signal_raises_inside_the_block_only() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as raised, signals.handling(signals.stop):
        os.kill(os.getpid(), signal.SIGTERM)
    assert signals.signum_of(raised.value) == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_ignored_before_the_block_stays_ignored() -> None:
    """nohup ignores SIGHUP (a script's background job, SIGINT): the plugin's blocks,
    stopping or holding, leave it ignored, as Poetry and pip do."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with signals.handling(signals.stop), signals.held():
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_held_signals_arrive_after_the_block() -> None:
    arrived: list[str] = []
    with pytest.raises(KeyboardInterrupt), signals.handling(signals.stop):
        with signals.held():
            os.kill(os.getpid(), signal.SIGHUP)
            arrived.append("block finished")
        arrived.append("not reached")
    assert arrived == ["block finished"]


def test_a_block_that_must_finish_keeps_its_handler_over_inner_ones() -> None:
    """A put-back runs pip's removal on Poetry before 2.5; pip's run forwards a stop
    to pip, which died halfway through the put-back a signal was meant to wait for."""
    outer: list[int] = []
    inner: list[int] = []
    with signals.handling(outer.append, finish=True):
        with signals.handling(inner.append):  # pip's forwarding, say
            signal.raise_signal(signal.SIGTERM)
        with signals.held():  # recorded by the outer block, not raised again after
            signal.raise_signal(signal.SIGINT)
    assert (outer, inner) == ([signal.SIGTERM, signal.SIGINT], [])
    with signals.handling(inner.append):  # no block to finish: the inner one's
        signal.raise_signal(signal.SIGTERM)
    assert inner == [signal.SIGTERM]

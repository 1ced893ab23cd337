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


def test_held_signals_arrive_after_the_block() -> None:
    arrived: list[str] = []
    with pytest.raises(KeyboardInterrupt), signals.handling(signals.stop):
        with signals.held():
            os.kill(os.getpid(), signal.SIGHUP)
            arrived.append("block finished")
        arrived.append("not reached")
    assert arrived == ["block finished"]

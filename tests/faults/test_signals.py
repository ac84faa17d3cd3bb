"""The run's signal handling in-process: one exception per run, none during cleanup, handlers kept
until cleanup is over (a second Ctrl-C used to kill cleanup with the default handler)."""

from __future__ import annotations

import os
import signal

import pytest
from oomlab.errors import Interrupted
from oomlab.run.signals import RunSignals


def test_first_signal_raises_and_later_ones_only_hurry_cleanup():
    before = signal.getsignal(signal.SIGINT)
    with RunSignals() as signals:
        with pytest.raises(Interrupted) as stop:
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.value.signum == signal.SIGINT and not signals.hurried
        with signals.cleaning_up():
            os.kill(os.getpid(), signal.SIGINT)  # would be KeyboardInterrupt with the default handler
            os.kill(os.getpid(), signal.SIGTERM)  # would end the process
            assert signal.getsignal(signal.SIGTERM) == signals._handle
        assert signals.hurried and signals.received == [signal.SIGINT, signal.SIGINT, signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_signal_during_cleanup_of_a_finished_run_does_not_raise():
    with RunSignals() as signals, signals.cleaning_up():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signals.hurried

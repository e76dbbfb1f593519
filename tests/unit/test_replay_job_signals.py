"""The replay's parent and its job processes under SIGTERM: a signal that arrives while a job
is being spawned must neither be lost nor leave an untracked child."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from streams.replay_jobs import ReplayInterrupted, _sigterm_interrupts, _stop


def _job_that_waits() -> None:
    time.sleep(60)


def test_sigterm_raises_at_once_outside_a_hold() -> None:
    with _sigterm_interrupts(), pytest.raises(ReplayInterrupted, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises long before this ends


def test_sigterm_while_held_is_raised_when_the_hold_ends() -> None:
    reached_the_end_of_the_hold = False
    with (_sigterm_interrupts() as sigterm,
          pytest.raises(ReplayInterrupted, match="SIGTERM"),
          sigterm.held()):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler has run by now: it only noted the signal
        reached_the_end_of_the_hold = True
    assert reached_the_end_of_the_hold


def test_the_previous_sigterm_handler_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with _sigterm_interrupts():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_stopping_skips_a_job_never_started() -> None:
    ctx = multiprocessing.get_context("spawn")
    never_started = ctx.Process(target=_job_that_waits, daemon=True)
    _stop([never_started])  # no "can only join a started process"
    assert never_started.pid is None

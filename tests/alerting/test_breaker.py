"""Circuit breaker states on a fake clock, and the backoff's growth and jitter (pure)."""

from __future__ import annotations

from streams.alerting.backoff import backoff_s
from streams.alerting.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10.0, clock)
    breaker.record_failure()
    breaker.record_success()  # a success in between: the count starts over
    for _ in range(2):
        breaker.record_failure()
    assert (breaker.state, breaker.permit()) == (CLOSED, 0.0)
    breaker.record_failure()
    assert breaker.state == OPEN and breaker.permit() == 10.0

    clock.now += 10.0
    assert breaker.permit() == 0.0 and breaker.state == HALF_OPEN  # this caller probes
    assert breaker.permit() > 0  # one probe at a time
    breaker.record_failure()  # failed probe: open again, a full cool-down
    assert breaker.state == OPEN and breaker.permit() == 10.0 and breaker.opened_count == 2

    clock.now += 10.0
    assert breaker.permit() == 0.0
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.permit() == 0.0


def test_cancelled_probe_lets_another_caller_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 1.0, clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.permit() == 0.0
    breaker.release()
    assert breaker.permit() == 0.0


def test_backoff_grows_to_the_cap_with_bounded_jitter() -> None:
    for attempt, step in [(1, 0.5), (2, 1.0), (3, 2.0), (8, 30.0), (200, 30.0)]:
        delays = [backoff_s(attempt, 0.5, 30.0) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 1  # jittered

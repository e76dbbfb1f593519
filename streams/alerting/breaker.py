"""A circuit breaker per receiver: stop hammering a receiver that is down, probe it later.

closed --N consecutive failures--> open --cool-down over--> half-open (one probe at a time)
half-open --probe succeeds--> closed;  half-open --probe fails--> open (cool-down restarts)

While open, senders wait instead of sending (their records are not failed for it; only the
give-up age ends a record). Time is ``time.monotonic`` unless a clock is passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_PROBE_BUSY_WAIT_S = 0.05  # how often a sender re-checks while another one probes


class CircuitBreaker:
    def __init__(self, failure_threshold: int, cooldown_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.state = CLOSED
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self.opened_count = 0  # times it opened, for counters and tests
        self._probing = False

    def permit(self) -> float:
        """0.0 = send now (in half-open this caller is the probe); else seconds to wait."""
        if self.state == CLOSED:
            return 0.0
        if self.state == OPEN:
            left = self.opened_at + self.cooldown_s - self._clock()
            if left > 0:
                return left
            self.state = HALF_OPEN
        if self._probing:
            return _PROBE_BUSY_WAIT_S
        self._probing = True
        return 0.0

    def record_success(self) -> None:
        self.state, self.consecutive_failures, self._probing = CLOSED, 0, False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        probe_failed = self.state == HALF_OPEN
        self._probing = False
        if probe_failed or (self.state == CLOSED
                            and self.consecutive_failures >= self.failure_threshold):
            self.state, self.opened_at = OPEN, self._clock()
            self.opened_count += 1

    def release(self) -> None:
        """The permitted attempt did not happen (cancelled): let another caller probe."""
        self._probing = False

"""StreamClock watermark and the Deadlines wheel: ordering, replacement, boundaries, snapshots."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tables.clock import Deadlines, StreamClock


def test_clock_is_none_before_any_event() -> None:
    assert StreamClock(1_000).now() is None


def test_clock_subtracts_allowed_lateness() -> None:
    clock = StreamClock(allowed_lateness_ms=5_000)
    clock.observe(100_000)
    assert clock.now() == 95_000
    assert clock.max_event_ms == 100_000


def test_clock_never_goes_backwards() -> None:
    clock = StreamClock(0)
    clock.observe(2_000)
    clock.observe(1_000)  # late event
    assert clock.now() == 2_000
    clock.observe(3_000)
    assert clock.now() == 3_000


def test_clock_rejects_negative_lateness() -> None:
    with pytest.raises(ValueError):
        StreamClock(-1)


@pytest.mark.parametrize("events", [[], [5, 1, 9]])
def test_clock_snapshot_round_trip(events: list[int]) -> None:
    clock = StreamClock(3)
    for event_time in events:
        clock.observe(event_time)
    snapshot = json.loads(json.dumps(clock.snapshot()))
    restored = StreamClock.restore(snapshot)
    assert restored.now() == clock.now()
    assert restored.allowed_lateness_ms == 3
    restored.observe(100)
    assert restored.now() == 97


@given(st.lists(st.integers(min_value=0, max_value=10**13), min_size=1))
def test_clock_watermark_is_running_max(events: list[int]) -> None:
    clock = StreamClock(7)
    previous = None
    for event_time in events:
        clock.observe(event_time)
        now = clock.now()
        assert now is not None
        assert previous is None or now >= previous
        previous = now
    assert clock.now() == max(events) - 7


def test_deadlines_fire_in_due_then_id_order() -> None:
    wheel = Deadlines()
    wheel.schedule("b", 20, {"n": 1})
    wheel.schedule("c", 10, {"n": 2})
    wheel.schedule("a", 20, {"n": 3})
    assert wheel.next_due() == 10
    assert wheel.pop_due(100) == [("c", {"n": 2}), ("a", {"n": 3}), ("b", {"n": 1})]
    assert len(wheel) == 0
    assert wheel.next_due() is None


def test_deadline_due_equal_to_now_fires_and_later_ones_wait() -> None:
    wheel = Deadlines()
    wheel.schedule("x", 10, {})
    wheel.schedule("y", 11, {})
    assert wheel.pop_due(9) == []
    assert wheel.pop_due(10) == [("x", {})]
    assert wheel.next_due() == 11
    assert len(wheel) == 1


def test_rescheduling_replaces_due_and_payload() -> None:
    wheel = Deadlines()
    wheel.schedule("x", 10, {"v": 1})
    wheel.schedule("x", 30, {"v": 2})
    assert len(wheel) == 1
    assert wheel.get("x") == (30, {"v": 2})
    assert wheel.pop_due(20) == []
    assert wheel.pop_due(30) == [("x", {"v": 2})]
    # Moving earlier works too.
    wheel.schedule("y", 50, {})
    wheel.schedule("y", 5, {})
    assert wheel.pop_due(5) == [("y", {})]
    assert wheel.pop_due(1_000) == []


def test_cancel_removes_and_ignores_unknown() -> None:
    wheel = Deadlines()
    wheel.schedule("x", 10, {})
    wheel.schedule("y", 20, {})
    wheel.cancel("x")
    wheel.cancel("never-scheduled")
    assert "x" not in wheel
    assert len(wheel) == 1
    assert wheel.next_due() == 20
    assert wheel.pop_due(100) == [("y", {})]


def test_cancel_then_reschedule_fires_once() -> None:
    wheel = Deadlines()
    wheel.schedule("x", 10, {"v": 1})
    wheel.cancel("x")
    wheel.schedule("x", 10, {"v": 2})
    assert wheel.pop_due(10) == [("x", {"v": 2})]


def test_deadlines_snapshot_round_trip_is_json() -> None:
    wheel = Deadlines()
    wheel.schedule("b", 20, {"order_id": "o2"})
    wheel.schedule("a", 10, {"order_id": "o1"})
    wheel.schedule("gone", 5, {})
    wheel.cancel("gone")
    snapshot = json.loads(json.dumps(wheel.snapshot()))
    assert [d["id"] for d in snapshot["deadlines"]] == ["a", "b"]
    restored = Deadlines.restore(snapshot)
    assert len(restored) == 2
    assert restored.pop_due(20) == wheel.pop_due(20)


def test_churn_keeps_heap_bounded() -> None:
    wheel = Deadlines()
    for due in range(10_000):
        wheel.schedule("same", due, {})
    assert len(wheel) == 1
    assert len(wheel._heap) < 200
    assert wheel.pop_due(10**9) == [("same", {})]


_ops = st.lists(
    st.tuples(
        st.sampled_from(["schedule", "cancel", "pop"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(min_value=0, max_value=50),
    ),
    max_size=60,
)


@given(_ops)
def test_deadlines_match_a_naive_model(ops: list[tuple[str, str, int]]) -> None:
    wheel = Deadlines()
    model: dict[str, tuple[int, dict[str, int]]] = {}
    for op, deadline_id, t in ops:
        if op == "schedule":
            wheel.schedule(deadline_id, t, {"t": t})
            model[deadline_id] = (t, {"t": t})
        elif op == "cancel":
            wheel.cancel(deadline_id)
            model.pop(deadline_id, None)
        else:
            expected = sorted(
                ((due, i, p) for i, (due, p) in model.items() if due <= t),
                key=lambda e: (e[0], e[1]),
            )
            for _due, i, _p in expected:
                del model[i]
            assert wheel.pop_due(t) == [(i, p) for _due, i, p in expected]
        assert len(wheel) == len(model)
        assert wheel.next_due() == (min(due for due, _ in model.values()) if model else None)


def test_deadlines_are_deterministic_across_instances() -> None:
    rng = random.Random(7)
    calls = [(f"id{rng.randrange(50)}", rng.randrange(1_000)) for _ in range(500)]

    def run() -> list[tuple[str, dict[str, int]]]:
        wheel = Deadlines()
        for deadline_id, due in calls:
            wheel.schedule(deadline_id, due, {"due": due})
        return wheel.pop_due(500) + wheel.pop_due(1_000)

    assert run() == run()

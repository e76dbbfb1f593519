"""The projection's memory: latest record per key, every live one, done ones bounded by
stream-time retention and count; catch-up to the end offsets seen at start."""

from __future__ import annotations

from typing import Any

from streams.projection_store import ALERT, MISMATCH, CatchUp, LatestRecords, Retention

HOUR = 3_600_000


def alert(fp: str, state: str, starts_at: int, ends_at: int | None = None) -> dict[str, Any]:
    return {"fingerprint": fp, "state": state, "starts_at": starts_at, "ends_at": ends_at}


def mismatch(mid: str, status: str, detected_at: int, resolved_at: int | None = None
             ) -> dict[str, Any]:
    return {"mismatch_id": mid, "status": status, "detected_at": detected_at,
            "resolved_at": resolved_at}


def keys(store: LatestRecords) -> set[str]:
    return {store.shape.key(r) for r in store.values()}


def test_the_latest_record_of_a_key_replaces_the_earlier_one() -> None:
    store = LatestRecords(ALERT, Retention())
    store.put(alert("a", "firing", 10))
    store.put(alert("b", "firing", 20))
    store.put(alert("a", "resolved", 10, ends_at=30))
    assert len(store) == 2
    assert store.get("a") == alert("a", "resolved", 10, ends_at=30)
    assert (store.live_count, store.done_count) == (1, 1)
    store.put(alert("a", "firing", 40))  # fires again: live, and only once
    assert (store.live_count, store.done_count) == (2, 0)
    assert store.get("a")["state"] == "firing"  # type: ignore[index]


def test_done_records_leave_after_the_window_of_stream_time_live_ones_stay() -> None:
    store = LatestRecords(MISMATCH, Retention(window_ms=24 * HOUR, max_done=100))
    store.put(mismatch("old-open", "open", 0))
    store.put(mismatch("done-early", "resolved", 0, resolved_at=1 * HOUR))
    store.put(mismatch("done-later", "resolved", 0, resolved_at=10 * HOUR))
    assert keys(store) == {"old-open", "done-early", "done-later"}
    store.put(mismatch("new", "open", 25 * HOUR + 1))  # stream time moves past done-early
    assert keys(store) == {"old-open", "done-later", "new"}
    assert store.clock == 25 * HOUR + 1
    store.put(mismatch("new", "open", 40 * HOUR))
    assert keys(store) == {"old-open", "new"}


def test_a_done_record_older_than_the_window_still_ends_its_live_one() -> None:
    store = LatestRecords(ALERT, Retention(window_ms=HOUR, max_done=100))
    store.put(alert("a", "firing", 0))
    store.put(alert("b", "firing", 5 * HOUR))
    store.put(alert("a", "resolved", 0, ends_at=2 * HOUR))  # a late partition's resolve
    assert keys(store) == {"b"}


def test_at_most_max_done_are_kept_oldest_dropped_first() -> None:
    store = LatestRecords(ALERT, Retention(window_ms=1_000 * HOUR, max_done=3))
    for i in (5, 1, 4, 2, 3):  # resolve times out of order, as across partitions
        store.put(alert(f"a{i}", "resolved", 0, ends_at=i * HOUR))
    store.put(alert("live", "firing", 0))
    assert keys(store) == {"a3", "a4", "a5", "live"}
    # Re-resolving a key moves it, its old place in the age order is ignored.
    store.put(alert("a3", "resolved", 0, ends_at=9 * HOUR))
    store.put(alert("a6", "resolved", 0, ends_at=6 * HOUR))
    assert keys(store) == {"a3", "a5", "a6", "live"}


def test_memory_stays_bounded_when_keys_flap_many_times() -> None:
    store = LatestRecords(ALERT, Retention(window_ms=1_000 * HOUR, max_done=10))
    for i in range(20_000):
        store.put(alert(f"a{i % 50}", "resolved", 0, ends_at=i))
    assert store.done_count == 10
    assert len(store._done_by_age) <= 2 * 10 + 1024
    assert keys(store) == {f"a{i % 50}" for i in range(19_990, 20_000)}


def test_catch_up_is_done_when_every_partition_reached_its_start_end() -> None:
    catch_up = CatchUp({("alerts", 0): 3, ("alerts", 1): 0, ("mismatches", 0): 5})
    assert not catch_up.done
    assert catch_up.waiting_for == [("alerts", 0), ("mismatches", 0)]
    catch_up.reached(("alerts", 0), 3)
    catch_up.reached(("mismatches", 0), -1001)  # nothing read yet
    catch_up.reached(("mismatches", 0), 4)
    assert catch_up.waiting_for == [("mismatches", 0)]
    catch_up.reached(("mismatches", 0), 7)  # records appended since start count as read
    assert catch_up.done


def test_catch_up_over_empty_topics_is_done_at_once() -> None:
    assert CatchUp({}).done
    assert CatchUp({("alerts", 0): 0}).done

"""Which changelog partitions the bulk restore takes on, and from which offset (Faust's offset
conventions: highwater = last offset, persisted = last offset already in the store)."""

from __future__ import annotations

from faust.types import TP

from streams.bulk_restore import Span, Target, plan

A, B, C, D = (TP("t-changelog", p) for p in range(4))


def test_empty_store_restores_from_the_earliest_offset() -> None:
    spans = plan({A: 999}, {A: None}, {A: 0}, min_records=10)
    assert spans == {A: Span(0, 1000)}
    assert spans[A].records == 1000


def test_persisted_offset_is_the_start_and_compaction_moves_it_up() -> None:
    spans = plan({A: 999, B: 999}, {A: 499, B: 10}, {A: 0, B: 200}, min_records=10)
    assert spans == {A: Span(500, 1000), B: Span(200, 1000)}


def test_partitions_nearly_up_to_date_or_empty_are_left_to_faust() -> None:
    spans = plan({A: 999, B: -1, C: None, D: 999}, {A: 995, D: None}, {}, min_records=10)
    assert spans == {D: Span(0, 1000)}


def test_threshold_is_inclusive_and_zero_turns_bulk_restore_off() -> None:
    assert plan({A: 9}, {}, {}, min_records=10) == {A: Span(0, 10)}
    assert plan({A: 8}, {}, {}, min_records=10) == {}
    assert plan({A: 999}, {}, {}, min_records=0) == {}


def test_progress_never_moves_back_before_the_span() -> None:
    target = Target(Span(500, 1000), db=None, offset_key=b"k")
    target.advance(200)  # an end-of-partition offset below the start: nothing lost
    assert target.persisted == 499
    target.advance(700)
    target.advance(650)
    assert target.persisted == 700

"""The worker's GC threshold: only the young generation moves, and 0 leaves Python's default."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.gc_tuning import set_young_threshold
from streams.settings import Settings


@pytest.fixture(autouse=True)
def restore_threshold() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_sets_only_the_young_generation() -> None:
    gc.set_threshold(700, 11, 12)
    set_young_threshold(50_000)
    assert gc.get_threshold() == (50_000, 11, 12)


def test_zero_leaves_the_threshold_alone() -> None:
    gc.set_threshold(700, 10, 10)
    set_young_threshold(0)
    assert gc.get_threshold() == (700, 10, 10)


def test_setting_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_young_threshold == 50_000
    monkeypatch.setenv("FSTREAMS_GC_YOUNG_THRESHOLD", "0")
    assert Settings().gc_young_threshold == 0

"""Deterministic replay of the log: conflicts refused, tombstones, ids never reused."""

from __future__ import annotations

from typing import Any

import pytest

from registry import records
from registry.records import MalformedRecord, RecordKey, decode
from registry.state import Outcome, RegistryState


def value(subject: str, version: int, schema_id: int, text: str = '"int"', deleted: bool = False
          ) -> dict[str, Any]:
    return {"subject": subject, "version": version, "id": schema_id, "schema": text,
            "deleted": deleted}


def put(state: RegistryState, subject: str, version: int, schema_id: int, text: str = '"int"',
        deleted: bool = False) -> Outcome:
    return state.apply(records.schema_key(subject, version),
                       value(subject, version, schema_id, text, deleted))


def test_same_schema_under_two_subjects_shares_the_id() -> None:
    state = RegistryState()
    assert put(state, "a", 1, 1) is Outcome.APPLIED
    assert put(state, "b", 1, 1) is Outcome.APPLIED
    assert state.schemas[1].users == {("a", 1), ("b", 1)}


@pytest.mark.parametrize(
    ("subject", "version", "schema_id", "text"),
    [
        ("b", 1, 1, '"long"'),  # id 1 already names another schema
        ("b", 1, 2, '"int"'),  # schema already has id 1
        ("a", 1, 2, '"long"'),  # a/1 already holds id 1
    ],
)
def test_conflicting_records_are_refused_and_remembered(
    subject: str, version: int, schema_id: int, text: str
) -> None:
    state = RegistryState()
    put(state, "a", 1, 1)
    assert put(state, subject, version, schema_id, text) is Outcome.CONFLICT
    assert records.schema_key(subject, version) in state.conflicts
    assert state.schemas[1].text == '"int"' and set(state.schemas) == {1}
    # The writer repairs by re-publishing what the state says for that key.
    expected = None if subject == "b" else value("a", 1, 1)
    assert state.current_value(records.schema_key(subject, version)) == expected


def test_tombstone_removes_version_and_unused_schema_but_ids_stay_used() -> None:
    state = RegistryState()
    put(state, "a", 1, 1)
    put(state, "a", 2, 2, '"long"')
    state.apply(records.schema_key("a", 2), None)
    assert 2 not in state.schemas and state.versions("a")[-1].version == 1
    assert state.max_id == 2  # id 2 is never handed out again
    assert state.next_version("a") == 2


def test_id_floor_survives_compaction_of_deleted_schemas() -> None:
    # After compaction only the floor record and the surviving schema remain.
    state = RegistryState()
    state.apply(records.id_floor_key(), {"max_id": 7})
    put(state, "a", 1, 3)
    assert state.max_id == 7


def test_soft_delete_keeps_the_id_and_hides_the_version() -> None:
    state = RegistryState()
    put(state, "a", 1, 1)
    put(state, "a", 1, 1, deleted=True)
    assert state.versions("a") == [] and state.versions("a", include_deleted=True)[0].deleted
    assert state.subject_names() == [] and state.subject_names(include_deleted=True) == ["a"]
    assert 1 in state.schemas


def test_references_index_and_referrers() -> None:
    state = RegistryState()
    put(state, "money", 1, 1, '{"type":"fixed","name":"Money","size":8}')
    ref_value = value("order", 1, 2, '"Money"')
    ref_value["references"] = [{"name": "Money", "subject": "money", "version": 1}]
    state.apply(records.schema_key("order", 1), ref_value)
    assert state.referrers("money", 1, include_deleted=False) == [2]
    state.apply(records.schema_key("order", 1), {**ref_value, "deleted": True})
    # A soft-deleted referrer no longer blocks a soft delete, but still blocks a hard delete.
    assert state.referrers("money", 1, include_deleted=False) == []
    assert state.referrers("money", 1, include_deleted=True) == [2]


def test_config_mode_and_legacy_delete_subject_records() -> None:
    state = RegistryState()
    state.apply(records.config_key(None), {"compatibilityLevel": "FULL"})
    state.apply(records.config_key("a"), {"compatibilityLevel": "NONE"})
    state.apply(records.mode_key(None), {"mode": "READONLY"})
    assert state.configs == {None: "FULL", "a": "NONE"} and state.modes == {None: "READONLY"}
    state.apply(records.config_key("a"), None)
    assert state.configs == {None: "FULL"}
    put(state, "a", 1, 1)
    put(state, "a", 2, 2, '"long"')
    state.apply(RecordKey(records.DELETE_SUBJECT, "a"), {"subject": "a", "version": 2})
    assert state.versions("a") == []


def test_replay_is_deterministic() -> None:
    log = [
        (records.schema_key("a", 1), value("a", 1, 1)),
        (records.schema_key("b", 1), value("b", 1, 2, '"int"')),  # conflict: same schema, new id
        (records.schema_key("a", 2), value("a", 2, 3, '"long"')),
        (records.id_floor_key(), {"max_id": 3}),
        (records.schema_key("a", 2), None),
    ]
    states = []
    for _ in range(2):
        state = RegistryState()
        for key, val in log:
            state.apply(key, val)
        states.append((sorted(state.schemas), state.max_id, sorted(state.conflicts)))
    assert states[0] == states[1] == ([1], 3, [records.schema_key("b", 1)])


def test_keys_encode_to_stable_bytes_and_decode_back() -> None:
    key = records.schema_key("orders-value", 3)
    assert key.encode() == (
        b'{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}'
    )
    assert decode(key.encode(), b'{"x":1}') == (key, {"x": 1})
    assert decode(records.config_key(None).encode(), None) == (records.config_key(None), None)
    for bad in (b"nope", b"[]", b'{"keytype":"SCHEMA","subject":"a"}'):
        with pytest.raises(MalformedRecord):
            decode(bad, None)

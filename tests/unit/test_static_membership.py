"""The LeaveGroup a static member sends when it stops (KIP-345's version 3, which names the
group instance), checked byte for byte against the Kafka protocol's layout."""

from __future__ import annotations

import struct

import pytest
from aiokafka.errors import IncompatibleBrokerVersion

from streams.static_membership import (
    LeaveGroupRequest_v3,
    LeaveGroupResponse_v3,
    StaticLeaveGroupRequest,
    instance_id,
    leave_errors,
)

LEAVE_GROUP = 13


def kafka_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def test_request_names_the_member_and_its_instance() -> None:
    request = StaticLeaveGroupRequest("app", "member-7", instance_id("app", "worker-1"))
    built = request.prepare({LEAVE_GROUP: (0, 5)})  # the broker takes v0..v5: v3 is sent
    assert isinstance(built, LeaveGroupRequest_v3)
    assert built.encode() == (kafka_string("app") + struct.pack(">i", 1)
                              + kafka_string("member-7") + kafka_string("app-worker-1"))


def test_brokers_without_version_3_are_refused_rather_than_sent_a_dynamic_leave() -> None:
    request = StaticLeaveGroupRequest("app", "member-7", "app-worker-1")
    with pytest.raises((IncompatibleBrokerVersion, NotImplementedError)):
        request.prepare({LEAVE_GROUP: (0, 2)})


def test_response_errors_of_the_request_and_of_each_member() -> None:
    def response(error: int, member_error: int) -> LeaveGroupResponse_v3:
        raw = (struct.pack(">ihi", 0, error, 1) + kafka_string("member-7")
               + kafka_string("app-worker-1") + struct.pack(">h", member_error))
        return LeaveGroupResponse_v3.decode(raw)

    assert leave_errors(response(0, 0)) == []
    assert leave_errors(response(0, 25)) == [25]  # UNKNOWN_MEMBER_ID for this member
    assert leave_errors(response(16, 0)) == [16]  # NOT_COORDINATOR

"""Static group membership (KIP-345): a worker that restarts under its worker id takes its
partitions back at once, and a worker that stops cleanly still leaves the group at once.

A restarted worker used to join as a new member; the broker then waited for the killed one to
miss its session (Faust's default 60 s) before it rebalanced, and its partitions stood still
meanwhile. With `group.instance.id` = the worker id the broker knows the newcomer is the same
member: it takes the old member's place and its assignment, with no session to wait out.

aiokafka never sends a LeaveGroup for a static member (a static member's absence is meant to
last until its session expires), so a worker stopped for good would hold its partitions that
long. `install()` makes a clean stop send the LeaveGroup form that names the instance
(version 3), which removes it from the group at once, as a dynamic member's leave does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

from aiokafka import errors
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Int16, Int32, Schema, String
from faust.assignor import PartitionAssignor

log = logging.getLogger(__name__)


def instance_id(app_id: str, worker_id: str) -> str:
    """The worker's static identity in its group (worker ids are unique per app)."""
    return f"{app_id}-{worker_id}"


class LeaveGroupResponse_v3(Response):  # aiokafka names protocol versions so
    API_KEY = 13
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("members", Array(("member_id", String("utf-8")),
                          ("group_instance_id", String("utf-8")),
                          ("error_code", Int16))),
    )


class LeaveGroupRequest_v3(RequestStruct):
    API_KEY = 13
    API_VERSION = 3
    RESPONSE_TYPE = LeaveGroupResponse_v3
    SCHEMA = Schema(
        ("group_id", String("utf-8")),
        ("members", Array(("member_id", String("utf-8")),
                          ("group_instance_id", String("utf-8")))),
    )


class StaticLeaveGroupRequest(Request[LeaveGroupRequest_v3]):
    """LeaveGroup for one static member (brokers since Kafka 2.4 take version 3)."""

    API_KEY = 13

    def __init__(self, group: str, member_id: str, group_instance_id: str) -> None:
        self._group = group
        self._member = (member_id, group_instance_id)

    def build(self, request_struct_class: type[LeaveGroupRequest_v3]) -> LeaveGroupRequest_v3:
        return request_struct_class(self._group, [self._member])


def leave_errors(response: Any) -> list[int]:
    """Error codes of a LeaveGroup v3 response (the request's and each member's), 0s dropped."""
    codes = [response.error_code, *(member[2] for member in response.members)]
    return [code for code in codes if code]


async def _leave_as_static_member(coordinator: Any) -> None:
    request = StaticLeaveGroupRequest(coordinator.group_id, coordinator.member_id,
                                      coordinator._group_instance_id)
    try:
        response = await coordinator._send_req(request)
    except errors.KafkaError as exc:  # best effort, as aiokafka's own leave: the session ends
        log.warning("leaving the group failed; the broker drops this worker when its session "
                    "expires: %s", exc)
        return
    failed = leave_errors(response)
    if failed:
        log.warning("leaving the group failed (error codes %s); the broker drops this worker "
                    "when its session expires", failed)
    else:
        log.info("left the group", extra={"group_instance_id": coordinator._group_instance_id})


def install() -> None:
    """Make aiokafka's static members leave their group when they stop (idempotent)."""
    coordinator: Any = GroupCoordinator
    if getattr(coordinator, "_fstreams_static_leave", False):
        return
    leave_dynamic = coordinator._maybe_leave_group

    async def maybe_leave_group(self: Any) -> None:
        if self.generation > 0 and self._group_instance_id is not None:
            await _leave_as_static_member(self)
        await leave_dynamic(self)  # a static member: only forgets its generation

    coordinator._maybe_leave_group = maybe_leave_group
    coordinator._fstreams_static_leave = True


class StaticMemberAssignor(PartitionAssignor):
    """Faust's assignor, for a static member that may be handed its predecessor's assignment.

    The broker gives a restarted static member the assignment the group's leader made for
    its predecessor, with no rebalance. Faust refuses one made for another address (the
    worker's URL, which other workers route table queries to) or for other tables, and the
    consumer would stop. Then the assignment is taken as it is for now, and once its tables
    are recovered the group is asked to rebalance: the next assignment is made for this
    worker as it is.

    Why not rebalance at once: that second rebalance lands in the middle of the recovery the
    first assignment started, and Faust's recovery does not always survive that. Once in CI,
    it swallowed the interruption as the end of the restore, and the recovery the new
    assignment started read nothing from the changelogs for the 90 s the test waited ("No
    event received for active tp ... since recovery start").
    """

    _rebalanced_for_stale = False

    def on_assignment(self, assignment: Any) -> None:
        try:
            super().on_assignment(assignment)
        except AssertionError:
            if self._rebalanced_for_stale:  # not the predecessor's: fail as Faust would
                raise
            self._rebalanced_for_stale = True
            log.info("handed the assignment of this worker's previous run (another address "
                     "or other tables); the group rebalances once its tables are recovered")
            # Called on the consumer thread's loop, where the coordinator lives.
            coordinator = self.app.consumer._thread._consumer._coordinator
            future = asyncio.run_coroutine_threadsafe(
                _rejoin_after_recovery(self.app, coordinator, asyncio.get_running_loop()),
                self.app.loop)
            future.add_done_callback(_log_failure)


async def _rejoin_after_recovery(app: Any, coordinator: Any,
                                 coordinator_loop: asyncio.AbstractEventLoop) -> None:
    await app.tables.recovery.completed.wait()
    log.info("tables recovered; rebalancing the group for this worker's own assignment")
    coordinator_loop.call_soon_threadsafe(coordinator.request_rejoin)


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not ask the group to rebalance", exc_info=future.exception())

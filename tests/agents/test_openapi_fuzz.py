"""Schemathesis against a running worker, driven by the worker's own `/openapi.json`: for every
operation, generated input that fits the spec and input that does not never gets a 5xx, and
every 4xx is the JSON error body of streams/web/errors.py."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.schemas import APIOperation

from streams.broker.launcher import free_port
from streams.generator.build import generate
from streams.generator.config import GeneratorConfig
from streams.generator.output import produce_to_kafka
from streams.settings import Settings
from streams.topics import TopicNames
from tests.agents.conftest import StartWorker
from tests.kafka_helpers import wait_for_zero_lag

pytestmark = pytest.mark.broker

# Enough to reach every parameter's edge cases (empty, overlong, wrong type, missing body)
# while keeping ~13 operations x 2 modes well under a minute on a shared machine.
EXAMPLES_PER_MODE = 25


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return 0


def _assert_json_error(case: Case, response: Response) -> None:
    """A 4xx says what was wrong in the shape of errors.json_error, never HTML or text."""
    if not 400 <= response.status_code < 500:
        return
    where = f"{case.as_curl_command()} -> {response.status_code}: {response.text!r}"
    content_types = response.headers.get("content-type", [])
    assert content_types and content_types[0].startswith("application/json"), where
    try:
        body = json.loads(response.text)
    except ValueError:
        raise AssertionError(f"4xx body is not JSON: {where}") from None
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), where
    assert body["error"].get("status") == response.status_code, where
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], where


def _fuzz(operation: APIOperation, mode: GenerationMode, base_url: str,
          session: requests.Session, statuses: Counter[int]) -> Callable[[], None]:
    # Derandomized: the same cases every run, so a red build is reproducible. No shrinking: a
    # failure is reported with its curl command as found, and a failing run stays short.
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=10)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])
        _assert_json_error(case, response)

    return run


def _modes(operation: APIOperation) -> tuple[GenerationMode, ...]:
    """Input that breaks the spec needs something to break: a parameter or a body."""
    has_input = any(True for _ in operation.iter_parameters()) or bool(operation.body)
    return (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else \
        (GenerationMode.POSITIVE,)


def test_generated_requests_never_get_a_5xx_and_4xx_are_json_errors(
        app_settings: Settings, start_worker: StartWorker) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    worker = start_worker(FSTREAMS_WEB_PORT=str(port))
    worker.wait_until(lambda: _status(f"{base_url}/readyz") == 200, timeout=90, what="ready")

    # A little traffic, so that tables, alerts and windows hold something to query.
    s = app_settings
    generated = generate(GeneratorConfig(orders=8, seed=11))
    produce_to_kafka(generated.events, bootstrap=s.bootstrap_servers,
                     registry_url=s.registry_url, topic_prefix=s.topic_prefix,
                     partitions=s.partitions)
    wait_for_zero_lag(s.bootstrap_servers, s.app_id, TopicNames.with_prefix(s.topic_prefix).inputs,
                      workers=[worker])

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()
                  if isinstance(result, Ok)]
    assert len(operations) == sum(len(methods) for methods in schema.raw_schema["paths"].values())
    # Every operation is fuzzed, writes included: POST /silences adds at most 25 silences to
    # this test's own topic, DELETE /silences/{id} on generated ids must 404 or 400 cleanly.
    known_order = next(iter(generated.truth.orders))
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    with requests.Session() as session:
        for operation in operations:
            for mode in _modes(operation):
                try:
                    _fuzz(operation, mode, base_url, session, statuses)()
                except Exception as exc:  # collect every operation's failure
                    failures.append(f"{operation.label} [{mode.value}]: {exc}")
        # Generated ids hardly ever exist: the 200 paths of the order endpoints once each.
        for path in (f"/orders/{known_order}", f"/orders/{known_order}/timeline"):
            assert session.get(f"{base_url}{path}", timeout=10).status_code == 200, path
    assert not failures, "\n\n".join(failures)
    # The generated requests did reach the handlers, and bad ones were turned away.
    assert statuses[200] > 0 and statuses[400] > 0 and statuses[404] > 0, statuses

"""The REST API over HTTP: every endpoint and every Confluent-compatible error code."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from registry_helpers import CT, RegistryProcess, StartRegistry, record_schema

V1 = record_schema("Order", {"name": "id", "type": "string"})
V2 = record_schema("Order", {"name": "id", "type": "string"},
                   {"name": "qty", "type": "int", "default": 0})
V2_NO_DEFAULT = record_schema("Order", {"name": "id", "type": "string"},
                              {"name": "qty", "type": "int"})


def new_subject() -> str:
    return f"api-{uuid.uuid4().hex[:12]}"


def register(http: httpx.Client, subject: str, schema: str, **extra: object) -> httpx.Response:
    return http.post(f"/subjects/{subject}/versions", json={"schema": schema, **extra})


def registered_id(http: httpx.Client, subject: str, schema: str, **extra: object) -> int:
    response = register(http, subject, schema, **extra)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def error(response: httpx.Response, status: int, code: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/vnd.schemaregistry.v1+json")
    body = response.json()
    assert body["error_code"] == code, body
    return str(body["message"])


# -- happy paths --------------------------------------------------------------------------------
def test_root_and_types(http: httpx.Client) -> None:
    assert http.get("/").json() == {}
    assert http.get("/schemas/types").json() == ["AVRO"]


def test_register_lookup_and_read_back(http: httpx.Client, subject: str) -> None:
    first = registered_id(http, subject, V1)
    assert registered_id(http, subject, json.dumps(json.loads(V1), indent=2)) == first
    second = registered_id(http, subject, V2)
    assert second > first
    assert http.get(f"/subjects/{subject}/versions").json() == [1, 2]
    latest = http.get(f"/subjects/{subject}/versions/latest").json()
    assert latest == {"subject": subject, "version": 2, "id": second,
                      "schema": json.dumps(json.loads(V2), separators=(",", ":"))}
    assert http.get(f"/subjects/{subject}/versions/-1").json() == latest
    assert http.get(f"/subjects/{subject}/versions/1").json()["id"] == first
    assert json.loads(http.get(f"/subjects/{subject}/versions/2/schema").text) == json.loads(V2)
    assert json.loads(http.get(f"/schemas/ids/{first}").json()["schema"]) == json.loads(V1)
    assert http.get(f"/schemas/ids/{first}", params={"subject": subject}).status_code == 200
    assert json.loads(http.get(f"/schemas/ids/{second}/schema").text) == json.loads(V2)
    assert http.get(f"/schemas/ids/{second}/versions").json() == [
        {"subject": subject, "version": 2}
    ]
    found = http.post(f"/subjects/{subject}", json={"schema": V1}).json()
    assert (found["version"], found["id"], found["subject"]) == (1, first, subject)
    assert subject in http.get("/subjects").json()
    assert http.get("/subjects", params={"subjectPrefix": subject}).json() == [subject]
    listed = http.get("/schemas", params={"subjectPrefix": subject, "latestOnly": "true"}).json()
    assert [(s["subject"], s["version"]) for s in listed] == [(subject, 2)]


def test_same_schema_under_two_subjects_shares_one_id(http: httpx.Client) -> None:
    schema = record_schema("Shared" + uuid.uuid4().hex[:6], {"name": "x", "type": "long"})
    a, b = new_subject(), new_subject()
    assert registered_id(http, a, schema) == registered_id(http, b, schema)
    schema_id = registered_id(http, a, schema)
    versions = http.get(f"/schemas/ids/{schema_id}/versions").json()
    assert sorted((v["subject"], v["version"]) for v in versions) == sorted([(a, 1), (b, 1)])


@pytest.mark.parametrize(
    "content_type",
    ["application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json",
     "application/json", "application/json; charset=utf-8"],
)
def test_accepted_content_types(http: httpx.Client, content_type: str) -> None:
    response = http.post(f"/subjects/{new_subject()}/versions",
                         content=json.dumps({"schema": '"string"'}),
                         headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def test_compatibility_endpoints(http: httpx.Client, subject: str) -> None:
    registered_id(http, subject, V1)
    url = f"/compatibility/subjects/{subject}/versions"
    assert http.post(f"{url}/latest", json={"schema": V2}).json() == {"is_compatible": True}
    verbose = http.post(f"{url}/1", params={"verbose": "true"},
                        json={"schema": V2_NO_DEFAULT}).json()
    assert verbose["is_compatible"] is False
    assert any("'qty'" in m and "no default" in m for m in verbose["messages"])
    assert http.post(url, json={"schema": V2_NO_DEFAULT}).json() == {"is_compatible": False}
    assert http.post(f"/compatibility/subjects/{new_subject()}/versions",
                     json={"schema": V1}).json() == {"is_compatible": True}


def test_subject_config_and_mode(http: httpx.Client, subject: str) -> None:
    assert http.put(f"/config/{subject}", json={"compatibility": "none"}).json() == {
        "compatibility": "NONE"}
    assert http.get(f"/config/{subject}").json() == {"compatibilityLevel": "NONE"}
    registered_id(http, subject, V1)
    registered_id(http, subject, V2_NO_DEFAULT)  # NONE: anything goes
    assert http.delete(f"/config/{subject}").json() == {"compatibilityLevel": "NONE"}
    assert http.get(f"/config/{subject}", params={"defaultToGlobal": "true"}).json() == {
        "compatibilityLevel": "BACKWARD"}
    assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert http.get("/mode").json() == {"mode": "READWRITE"}
    assert http.put(f"/mode/{subject}", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
    assert http.get(f"/mode/{subject}").json() == {"mode": "READONLY"}
    error(register(http, subject, V2), 422, 42205)
    error(http.delete(f"/subjects/{subject}"), 422, 42205)
    assert http.delete(f"/mode/{subject}").json() == {"mode": "READONLY"}
    assert http.get(f"/mode/{subject}", params={"defaultToGlobal": "true"}).json() == {
        "mode": "READWRITE"}
    registered_id(http, subject, V2)


def test_import_mode_keeps_given_ids_and_versions(http: httpx.Client, subject: str) -> None:
    assert http.put(f"/mode/{subject}", json={"mode": "IMPORT"}).json() == {"mode": "IMPORT"}
    schema = record_schema("Imported" + uuid.uuid4().hex[:6], {"name": "a", "type": "int"})
    big_id = 900_000 + int(uuid.uuid4().int % 90_000)
    assert registered_id(http, subject, schema, id=big_id, version=7) == big_id
    assert http.get(f"/subjects/{subject}/versions/7").json()["id"] == big_id
    other = record_schema("Other" + uuid.uuid4().hex[:6], {"name": "a", "type": "int"})
    message = error(register(http, subject, other, id=big_id), 422, 42205)
    assert str(big_id) in message
    http.put(f"/mode/{subject}", json={"mode": "READWRITE"})
    # Ids keep growing past imported ones: never reused.
    assert registered_id(http, new_subject(), other) > big_id


def test_references(http: httpx.Client) -> None:
    money_subject, order_subject = new_subject(), new_subject()
    ns = "ref" + uuid.uuid4().hex[:6]
    money = json.dumps({"type": "fixed", "name": "Money", "namespace": ns, "size": 8})
    money_id = registered_id(http, money_subject, money)
    order = json.dumps({"type": "record", "name": "Order", "namespace": ns,
                        "fields": [{"name": "amount", "type": "Money"}]})
    refs = [{"name": f"{ns}.Money", "subject": money_subject, "version": 1}]
    message = error(register(http, order_subject, order), 422, 42201)
    assert "unknown type 'Money'" in message
    order_id = registered_id(http, order_subject, order, references=refs)
    got = http.get(f"/schemas/ids/{order_id}").json()
    assert got["references"] == refs
    assert http.get(f"/subjects/{order_subject}/versions/1").json()["references"] == refs
    assert http.get(f"/subjects/{money_subject}/versions/1/referencedby").json() == [order_id]
    assert http.post(f"/subjects/{order_subject}",
                     json={"schema": order, "references": refs}).json()["id"] == order_id
    # 42206: a referenced version cannot be deleted, neither whole subject nor version.
    error(http.delete(f"/subjects/{money_subject}/versions/1"), 422, 42206)
    error(http.delete(f"/subjects/{money_subject}"), 422, 42206)
    bad_refs = [{"name": f"{ns}.Money", "subject": money_subject, "version": 9}]
    assert "does not exist" in error(
        register(http, new_subject(), order, references=bad_refs), 422, 42201)
    # Once the referrer is gone (soft, then hard), the referenced schema can go too.
    http.delete(f"/subjects/{order_subject}")
    assert http.delete(f"/subjects/{money_subject}/versions/1").json() == 1
    error(http.delete(f"/subjects/{money_subject}/versions/1", params={"permanent": "true"}),
          422, 42206)
    assert http.delete(f"/subjects/{order_subject}", params={"permanent": "true"}).json() == [1]
    assert http.delete(f"/subjects/{money_subject}/versions/1",
                       params={"permanent": "true"}).json() == 1
    error(http.get(f"/schemas/ids/{money_id}"), 404, 40403)


def test_soft_then_hard_delete(http: httpx.Client, subject: str) -> None:
    # Names unique to this test: the shared registry gives equal schemas one id.
    name = "Deleted" + uuid.uuid4().hex[:8]
    v1 = record_schema(name, {"name": "id", "type": "string"})
    v2 = record_schema(name, {"name": "id", "type": "string"}, {"name": "n", "type": "int",
                                                                "default": 0})
    first = registered_id(http, subject, v1)
    registered_id(http, subject, v2)
    http.put(f"/config/{subject}", json={"compatibility": "FULL"})
    # Version-level deletes.
    assert http.delete(f"/subjects/{subject}/versions/2").json() == 2
    error(http.delete(f"/subjects/{subject}/versions/2"), 404, 40406)
    assert http.get(f"/subjects/{subject}/versions").json() == [1]
    assert http.get(f"/subjects/{subject}/versions", params={"deleted": "true"}).json() == [1, 2]
    error(http.get(f"/subjects/{subject}/versions/2"), 404, 40402)
    assert http.get(f"/subjects/{subject}/versions/2", params={"deleted": "true"}).json()[
        "version"] == 2
    error(http.delete(f"/subjects/{subject}/versions/1", params={"permanent": "true"}),
          404, 40407)
    assert http.delete(f"/subjects/{subject}/versions/2", params={"permanent": "true"}
                       ).json() == 2
    # Subject-level deletes.
    error(http.delete(f"/subjects/{subject}", params={"permanent": "true"}), 404, 40405)
    assert http.delete(f"/subjects/{subject}").json() == [1]
    error(http.delete(f"/subjects/{subject}"), 404, 40404)
    error(http.get(f"/subjects/{subject}/versions"), 404, 40401)
    assert subject not in http.get("/subjects").json()
    assert subject in http.get("/subjects", params={"deleted": "true"}).json()
    error(http.post(f"/subjects/{subject}", json={"schema": v1}), 404, 40401)
    assert http.post(f"/subjects/{subject}", params={"deleted": "true"},
                     json={"schema": v1}).json()["id"] == first
    assert http.get(f"/schemas/ids/{first}").status_code == 200  # soft: id still served
    assert http.delete(f"/subjects/{subject}", params={"permanent": "true"}).json() == [1]
    error(http.get(f"/subjects/{subject}/versions", params={"deleted": "true"}), 404, 40401)
    error(http.get(f"/schemas/ids/{first}"), 404, 40403)
    error(http.get(f"/config/{subject}"), 404, 40408)  # its settings went with it
    # Registering again after a hard delete gets a fresh id: ids are never reused.
    assert registered_id(http, subject, v1) > first


# -- error codes --------------------------------------------------------------------------------
def test_not_found_errors(http: httpx.Client, subject: str) -> None:
    assert "not found" in error(http.get(f"/subjects/{subject}/versions"), 404, 40401)
    error(http.get(f"/subjects/{subject}/versions/1"), 404, 40401)
    error(http.delete(f"/subjects/{subject}"), 404, 40401)
    registered_id(http, subject, V1)
    error(http.get(f"/subjects/{subject}/versions/5"), 404, 40402)
    error(http.delete(f"/subjects/{subject}/versions/5"), 404, 40402)
    error(http.get("/schemas/ids/987654321"), 404, 40403)
    error(http.get("/schemas/ids/987654321/versions"), 404, 40403)
    error(http.post(f"/subjects/{subject}", json={"schema": V2}), 404, 40403)
    error(http.get(f"/config/{subject}"), 404, 40408)
    error(http.get(f"/mode/{subject}"), 404, 40409)
    error(http.get("/no/such/route"), 404, 404)
    error(http.patch("/subjects"), 405, 405)


def test_incompatible_schema_says_which_field_and_why(http: httpx.Client, subject: str) -> None:
    registered_id(http, subject, V1)
    message = error(register(http, subject, V2_NO_DEFAULT), 409, 409)
    assert "'qty'" in message and "no default value" in message and subject in message
    retyped = record_schema("Order", {"name": "id", "type": "int"})
    message = error(register(http, subject, retyped), 409, 409)
    assert "'id'" in message and "int" in message and "string" in message


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "record", "name": "A", "fields": [{"name": "x"}]}', "has no 'type'"),
        ('{"type": "record", "name": "A", "fields": [{"name": "x", "type": "int",'
         ' "default": "nope"}]}', "invalid default for field 'x'"),
        ('"NoSuchType"', "unknown type 'NoSuchType'"),
        ("", "Empty schema"),
    ],
)
def test_invalid_schema_includes_the_parse_error(
    http: httpx.Client, subject: str, schema: str, fragment: str
) -> None:
    assert fragment in error(register(http, subject, schema), 422, 42201)


@pytest.mark.parametrize("schema_type", ["JSON", "PROTOBUF", "XML"])
def test_unknown_schema_types_are_rejected_clearly(
    http: httpx.Client, subject: str, schema_type: str
) -> None:
    message = error(register(http, subject, '{"type": "object"}', schemaType=schema_type),
                    422, 42201)
    assert schema_type in message and "only AVRO" in message
    error(http.get(f"/subjects/{subject}/versions"), 404, 40401)  # nothing was stored


@pytest.mark.parametrize("version", ["abc", "0", "-2", "2147483648", "1.5"])
def test_invalid_versions(http: httpx.Client, subject: str, version: str) -> None:
    registered_id(http, subject, V1)
    error(http.get(f"/subjects/{subject}/versions/{version}"), 422, 42202)
    error(http.delete(f"/subjects/{subject}/versions/{version}"), 422, 42202)
    error(http.post(f"/compatibility/subjects/{subject}/versions/{version}",
                    json={"schema": V1}), 422, 42202)


def test_invalid_compatibility_level_and_mode(http: httpx.Client, subject: str) -> None:
    error(http.put(f"/config/{subject}", json={"compatibility": "SIDEWAYS"}), 422, 42203)
    error(http.put(f"/config/{subject}", json={"compatibility": None}), 422, 42203)
    error(http.put(f"/mode/{subject}", json={"mode": "WRITEONLY"}), 422, 42204)


def test_id_outside_import_mode_is_not_permitted(http: httpx.Client, subject: str) -> None:
    assert "import mode" in error(register(http, subject, V1, id=12345), 422, 42205)


def test_import_mode_on_existing_subject_needs_force(http: httpx.Client, subject: str) -> None:
    registered_id(http, subject, V1)
    error(http.put(f"/mode/{subject}", json={"mode": "IMPORT"}), 422, 42205)
    assert http.put(f"/mode/{subject}", params={"force": "true"},
                    json={"mode": "IMPORT"}).json() == {"mode": "IMPORT"}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{broken", CT, 400, 400),
        (b"", CT, 400, 400),
        (b"[1, 2]", CT, 400, 400),
        (b'"just a string"', CT, 400, 400),
        (b'{"schema": 42}', CT, 422, 42201),
        (b'{"schema": "\\"int\\"", "references": "x"}', CT, 422, 42201),
        (b'{"schema": "\\"int\\""}', "text/plain", 415, 415),
        (b"\xff\xfe", CT, 400, 400),
        (b"[" * 200_000, CT, 400, 400),
    ],
)
def test_malformed_bodies_get_json_4xx(
    http: httpx.Client, subject: str, content: bytes, content_type: str, status: int, code: int
) -> None:
    for path in (f"/subjects/{subject}/versions", f"/subjects/{subject}",
                 f"/compatibility/subjects/{subject}/versions"):
        response = http.post(path, content=content, headers={"Content-Type": content_type})
        if path == f"/subjects/{subject}" and code == 42201 and response.status_code == 404:
            continue  # lookup of an unknown subject answers 40401 before parsing
        error(response, status, code)
    error(http.put("/config", content=content, headers={"Content-Type": content_type}),
          status if code in (400, 415) else 422, code if code in (400, 415) else 42203)


def test_metrics_count_requests_by_route_and_status(http: httpx.Client, subject: str) -> None:
    http.get(f"/subjects/{subject}/versions")
    text = http.get("/metrics").text
    assert ('fstreams_registry_http_requests_total{method="GET",'
            'route="/subjects/{subject}/versions",status="404"}') in text
    assert "fstreams_registry_http_request_duration_seconds_bucket" in text
    assert "fstreams_registry_schemas " in text and "fstreams_registry_is_writer 1.0" in text


# -- server-side failures: 50001, 50002, 50003 ---------------------------------------------------
def test_store_error_for_a_record_the_log_cannot_hold(http: httpx.Client, subject: str) -> None:
    huge = json.dumps({"type": "record", "name": "Huge", "doc": "x" * 2_000_000, "fields": []})
    assert "writing to" in error(register(http, subject, huge), 500, 50001)


@pytest.fixture(scope="module")
def slow_store(start_registry: StartRegistry) -> Iterator[RegistryProcess]:
    # A write timeout no real write can meet: every write times out.
    proc = start_registry(env={"FSTREAMS_REGISTRY_WRITE_TIMEOUT": "0.0001"})
    yield proc
    proc.stop()


def test_write_timeout(slow_store: RegistryProcess) -> None:
    with httpx.Client(base_url=slow_store.url, timeout=30) as client:
        response = client.post(f"/subjects/{new_subject()}/versions", json={"schema": V1})
        assert "timed out" in error(response, 500, 50002)


@pytest.fixture(scope="module")
def leaderless(start_registry: StartRegistry) -> Iterator[RegistryProcess]:
    # The only instance may not write, so no writer is ever elected.
    proc = start_registry(eligible=False, env={"FSTREAMS_REGISTRY_FORWARD_TIMEOUT": "1"})
    yield proc
    proc.stop()


def test_forwarding_error_when_no_writer(leaderless: RegistryProcess) -> None:
    with httpx.Client(base_url=leaderless.url, timeout=30) as client:
        assert client.get("/subjects").json() == []  # reads still work
        response = client.post(f"/subjects/{new_subject()}/versions", json={"schema": V1})
        assert "forwarding" in error(response, 500, 50003)


def test_every_response_carries_a_request_id_that_the_log_names(
    http: httpx.Client, subject: str, registry: RegistryProcess
) -> None:
    """A sane client id is echoed (so a producer's id follows its request into our log);
    otherwise each request gets its own. Writes and failures are logged with the id."""
    given = f"producer-{uuid.uuid4().hex[:8]}"
    response = http.post(f"/subjects/{subject}/versions", json={"schema": '"string"'},
                         headers={"X-Request-Id": given})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == given
    first = http.get("/schemas/types").headers["X-Request-Id"]
    second = http.get("/schemas/types").headers["X-Request-Id"]
    assert first and second and first != second
    junk = http.get("/schemas/types", headers={"X-Request-Id": "no spaces allowed"})
    assert junk.headers["X-Request-Id"] != "no spaces allowed"
    missing = http.get(f"/subjects/{subject}-absent/versions")
    assert missing.status_code == 404
    deadline = time.monotonic() + 10
    wanted = [given, missing.headers["X-Request-Id"]]
    while not all(rid in registry.log_path.read_text() for rid in wanted):
        assert time.monotonic() < deadline, f"request ids {wanted} not in the registry log"
        time.sleep(0.1)

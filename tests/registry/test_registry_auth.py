"""HTTP basic auth: anonymous rejected, read-only users cannot write, writers can (also when
their request is forwarded to the elected writer)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from registry_helpers import RegistryProcess, StartRegistry

from registry.auth import Authenticator, AuthFileError, load_users

SCHEMA = json.dumps({"type": "record", "name": "Audit", "fields": [{"name": "a", "type": "int"}]})
WRITER = ("writer", "w-secret")
READER = ("viewer", "r-secret")


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()  # cheap rounds: tests


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "users.json"
    path.write_text(json.dumps({"users": [
        {"username": WRITER[0], "password_hash": _hash(WRITER[1]), "role": "read-write"},
        {"username": READER[0], "password_hash": _hash(READER[1]), "role": "read-only"},
    ]}))
    return path


@pytest.fixture(scope="module")
def secured(
    start_registry: StartRegistry, users_file: Path
) -> Iterator[tuple[RegistryProcess, ...]]:
    a = start_registry(auth_file=users_file)
    b = start_registry(topic=a.topic, group_id=a.group_id, auth_file=users_file)
    yield a, b
    b.stop()
    a.stop()


def test_anonymous_and_bad_credentials_are_rejected(secured: tuple[RegistryProcess, ...]) -> None:
    url = secured[0].url
    for auth in (None, ("writer", "wrong"), ("nobody", "x")):
        response = httpx.get(f"{url}/subjects", auth=auth)
        assert response.status_code == 401
        assert response.json()["error_code"] == 40101
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    garbled = httpx.get(f"{url}/subjects", headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401
    # Health and metrics stay open for probes and scrapers.
    assert httpx.get(f"{url}/_ready").status_code == 200
    assert httpx.get(f"{url}/metrics").status_code == 200


def test_read_only_user_reads_but_cannot_write(secured: tuple[RegistryProcess, ...]) -> None:
    url = secured[0].url
    subject = f"audit-{uuid.uuid4().hex[:8]}"
    assert httpx.post(f"{url}/subjects/{subject}/versions", json={"schema": SCHEMA},
                      auth=WRITER).status_code == 200
    assert httpx.get(f"{url}/subjects/{subject}/versions", auth=READER).json() == [1]
    assert httpx.post(f"{url}/subjects/{subject}", json={"schema": SCHEMA},
                      auth=READER).status_code == 200
    assert httpx.post(f"{url}/compatibility/subjects/{subject}/versions/latest",
                      json={"schema": SCHEMA}, auth=READER).json() == {"is_compatible": True}
    for method, path, body in (
        ("POST", f"/subjects/{subject}/versions", {"schema": SCHEMA}),
        ("DELETE", f"/subjects/{subject}", None),
        ("DELETE", f"/subjects/{subject}/versions/1", None),
        ("PUT", "/config", {"compatibility": "NONE"}),
        ("PUT", f"/mode/{subject}", {"mode": "READONLY"}),
    ):
        response = httpx.request(method, f"{url}{path}", json=body, auth=READER)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error_code"] == 40301
    assert httpx.get(f"{url}/subjects/{subject}/versions", auth=READER).json() == [1]


def test_writes_forwarded_by_a_non_writer_keep_the_credentials(
    secured: tuple[RegistryProcess, ...],
) -> None:
    a, b = secured
    assert httpx.get(f"{b.url}/_ready").json()["writer"] == a.url
    subject = f"audit-{uuid.uuid4().hex[:8]}"
    assert httpx.post(f"{b.url}/subjects/{subject}/versions", json={"schema": SCHEMA},
                      auth=READER).status_code == 403
    response = httpx.post(f"{b.url}/subjects/{subject}/versions", json={"schema": SCHEMA},
                          auth=WRITER)
    assert response.status_code == 200, response.text


def test_confluent_client_with_basic_auth(secured: tuple[RegistryProcess, ...]) -> None:
    for extra in ("authlib", "cachetools"):  # the client's schema-registry extras
        pytest.importorskip(extra, reason=f"confluent-kafka schema-registry extra {extra} missing")
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": secured[0].url,
                                   "basic.auth.user.info": f"{WRITER[0]}:{WRITER[1]}"})
    subject = f"audit-{uuid.uuid4().hex[:8]}"
    schema_id = client.register_schema(subject, Schema(SCHEMA, "AVRO"))
    assert client.get_schema(schema_id).schema_str is not None


async def test_authenticator_caches_verified_credentials(tmp_path: Path) -> None:
    auth = Authenticator(load_users(_users(tmp_path)))
    header = "Basic " + base64.b64encode(b"writer:w-secret").decode()
    user = await auth.authenticate(header)
    assert user.role == "read-write" and await auth.authenticate(header) is user


def _users(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": [
        {"username": "writer", "password_hash": _hash("w-secret"), "role": "read-write"}]}))
    return path


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"users": [{"username": "x"}]}',
     '{"users": [{"username": "x", "password_hash": "h", "role": "admin"}]}'],
)
def test_bad_users_files_are_refused_with_a_reason(tmp_path: Path, content: str) -> None:
    path = tmp_path / "users.json"
    path.write_text(content)
    with pytest.raises(AuthFileError):
        load_users(path)

"""Optional HTTP basic authentication against a users file of bcrypt hashes.

The file is JSON::

    {"users": [{"username": "ci", "password_hash": "$2b$12$...", "role": "read-write"},
               {"username": "viewer", "password_hash": "$2b$12$...", "role": "read-only"}]}

``read-only`` users may call every endpoint that changes nothing (GETs, schema lookups,
compatibility checks); ``read-write`` users may also register, delete and change config/mode.
When auth is enabled, anonymous requests get 401. Make a hash with
``python -m registry.auth PASSWORD``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from registry.errors import Forbidden, Unauthorized

READ_ONLY, READ_WRITE = "read-only", "read-write"
ROLES = (READ_ONLY, READ_WRITE)
REALM = 'Basic realm="fstreams-registry"'
# Verified credentials are remembered (by digest) so bcrypt's deliberate slowness is paid once
# per user and process, not once per request.
CACHE_LIMIT = 1024


class AuthFileError(ValueError):
    """The users file is unreadable or malformed; the message says which entry."""


@dataclass(frozen=True)
class User:
    username: str
    password_hash: bytes
    role: str


def load_users(path: Path) -> dict[str, User]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise AuthFileError(f"cannot read users file {path}: {exc}") from exc
    entries = doc.get("users") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise AuthFileError(f"users file {path} must be an object with a 'users' list")
    users: dict[str, User] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise AuthFileError(f"users[{i}] in {path} must be an object")
        name, hashed, role = entry.get("username"), entry.get("password_hash"), entry.get("role")
        if not isinstance(name, str) or not name or not isinstance(hashed, str):
            raise AuthFileError(f"users[{i}] in {path} needs a username and a password_hash")
        if role not in ROLES:
            raise AuthFileError(f"users[{i}] in {path}: role must be one of {', '.join(ROLES)}")
        users[name] = User(name, hashed.encode(), role)
    return users


class Authenticator:
    def __init__(self, users: dict[str, User]) -> None:
        self.users = users
        self._verified: dict[bytes, User] = {}

    @classmethod
    def from_file(cls, path: Path) -> Authenticator:
        return cls(load_users(path))

    async def authenticate(self, header: str | None) -> User:
        if not header or not header.startswith("Basic "):
            raise Unauthorized("Unauthorized", {"WWW-Authenticate": REALM})
        digest = hashlib.sha256(header.encode()).digest()
        user = self._verified.get(digest)
        if user is not None:
            return user
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            username, password = decoded.split(":", 1)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Unauthorized("Unauthorized", {"WWW-Authenticate": REALM}) from None
        candidate = self.users.get(username)
        if candidate is None or not await asyncio.to_thread(
            bcrypt.checkpw, password.encode(), candidate.password_hash
        ):
            raise Unauthorized("Unauthorized", {"WWW-Authenticate": REALM})
        if len(self._verified) >= CACHE_LIMIT:
            self._verified.clear()
        self._verified[digest] = candidate
        return candidate

    @staticmethod
    def authorize(user: User, writes: bool) -> None:
        if writes and user.role != READ_WRITE:
            raise Forbidden(f"User '{user.username}' is not allowed to change the registry")


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m registry.auth PASSWORD   (prints a bcrypt hash for the file)")
    print(hash_password(sys.argv[1]))

"""A silence asked for over HTTP (``POST /silences``), checked before anything is written.

Pure: the JSON body in, a ``SilenceRequest`` out, or ``SilenceError`` saying what to change.
The body::

    {"matchers": ["rule=ship_by_breached", {"label": "warehouse", "op": "=", "value": "x"}],
     "duration": "2h",            # or "ends_at": <epoch ms>
     "starts_at": <epoch ms>,     # optional, default now (a later start makes it pending)
     "created_by": "jane", "comment": "carrier outage, INC-123"}

Matchers are the CLI's text form (``label=value``, ``!=``, ``=~``, ``!~``) or objects with
``label`` (or Alertmanager's ``name``), ``value`` and either ``op`` or Alertmanager's
``isRegex``/``isEqual`` flags.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.alerting.silences import SilenceError, parse_matcher
from tables.alerts import Matcher
from tables.sla_rules import RuleError, parse_duration

MAX_COMMENT = 2_000
MAX_CREATED_BY = 200
MAX_MATCHERS = 32
_OPS = ("=", "!=", "=~", "!~")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # as the CLI's matcher syntax
_FIELDS = ("matchers", "duration", "ends_at", "starts_at", "created_by", "comment")


@dataclass(frozen=True)
class SilenceRequest:
    matchers: tuple[Matcher, ...]
    starts_at: int
    duration_ms: int
    created_by: str
    comment: str


def parse_silence_request(body: Any, now_ms: int) -> SilenceRequest:
    if not isinstance(body, Mapping):
        raise SilenceError("the body must be a JSON object with matchers, duration (or "
                           "ends_at) and comment")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise SilenceError(f"unknown field(s) {', '.join(map(repr, unknown))}; "
                           f"known: {', '.join(_FIELDS)}")
    matchers = _matchers(body.get("matchers"))
    starts_at = now_ms if body.get("starts_at") is None else _millis(body, "starts_at")
    has_duration, has_end = body.get("duration") is not None, body.get("ends_at") is not None
    if has_duration == has_end:
        raise SilenceError("give exactly one of duration (e.g. \"2h\") or ends_at (epoch ms)")
    if has_duration:
        if not isinstance(body["duration"], str):
            raise SilenceError("duration must be a string such as \"30m\", \"2h\" or \"1d\"")
        try:
            duration_ms = parse_duration(body["duration"])
        except RuleError as exc:
            raise SilenceError(str(exc)) from None
    else:
        duration_ms = _millis(body, "ends_at") - starts_at
    if duration_ms <= 0:
        raise SilenceError("the silence must end after it starts")
    if starts_at + duration_ms <= now_ms:
        raise SilenceError("the silence would end in the past")
    return SilenceRequest(matchers=matchers, starts_at=starts_at, duration_ms=duration_ms,
                          created_by=_string(body, "created_by", MAX_CREATED_BY),
                          comment=_comment(body))


def _matchers(raw: Any) -> tuple[Matcher, ...]:
    if not isinstance(raw, list) or not raw:
        raise SilenceError("matchers must be a non-empty list, e.g. [\"warehouse=wms-east\"] "
                           "(a silence without matchers would mute everything)")
    if len(raw) > MAX_MATCHERS:
        raise SilenceError(f"at most {MAX_MATCHERS} matchers")
    return tuple(_matcher(item) for item in raw)


def _matcher(item: Any) -> Matcher:
    if isinstance(item, str):
        return parse_matcher(item)
    if not isinstance(item, Mapping):
        raise SilenceError(f"a matcher is a string like \"label=value\" or an object with "
                           f"label, op and value, got {item!r}")
    label = item.get("label", item.get("name"))
    value = item.get("value")
    if not isinstance(label, str) or not isinstance(value, str):
        raise SilenceError(f"matcher {dict(item)!r} needs string label (or name) and value")
    op = item.get("op")
    if op is None:
        regex, equal = item.get("isRegex", False), item.get("isEqual", True)
        op = ("=~" if equal else "!~") if regex else ("=" if equal else "!=")
    if op not in _OPS:
        raise SilenceError(f"matcher op must be one of {', '.join(_OPS)}, got {op!r}")
    if not _LABEL.match(label):
        raise SilenceError(f"matcher label {label!r} must be letters, digits and _ "
                           "(not starting with a digit)")
    try:
        return Matcher(label, op, value)
    except ValueError as exc:  # a regex that does not compile
        raise SilenceError(f"bad matcher {label}{op}{value}: {exc}") from None


def _millis(body: Mapping[str, Any], name: str) -> int:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SilenceError(f"{name} must be epoch milliseconds (a whole number), got {value!r}")
    return value


def _string(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise SilenceError(f"{name} must be a string of at most {limit} characters")
    return value.strip()


def _comment(body: Mapping[str, Any]) -> str:
    comment = _string(body, "comment", MAX_COMMENT)
    if not comment:
        raise SilenceError("say why in the comment (the next on-call reads it)")
    return comment

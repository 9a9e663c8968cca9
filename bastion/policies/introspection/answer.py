"""Reads an RFC 7662 introspection answer into a decision: active with an identity, or not.

Pure: no I/O, the wall-clock time is passed in. RFC 7662 §2.2:
https://www.rfc-editor.org/rfc/rfc7662#section-2.2
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from bastion.core.context import Identity

METHOD = "introspection"
"""`Identity.method` of callers authenticated by this policy."""
_MAX_SCOPES = 256


class AnswerError(Exception):
    """The answer is not an RFC 7662 document; the message is for logs."""


@dataclass(frozen=True, slots=True)
class Rules:
    """What an active answer must also satisfy."""

    audiences: frozenset[str] = frozenset()
    issuer: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for one token: `identity` None means inactive (with the reason, for logs).

    `expires_at` is the token's `exp` (Unix seconds) when the answer gave one.
    """

    identity: Identity | None
    reason: str = ""
    expires_at: float | None = None


def _number(document: dict[str, object], name: str) -> float | None:
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnswerError(f"`{name}` is not a number")
    return float(value)


def _string(document: dict[str, object], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AnswerError(f"`{name}` is not a string")
    return value


def read_answer(body: bytes, rules: Rules, now: float) -> Verdict:
    """The verdict of an introspection answer `body` at wall-clock time `now`.

    An answer is active only when `active` is the JSON `true` (RFC 7662 §2.2), it names a
    caller (`sub`, else `client_id`), has not expired (`exp`), is already valid (`nbf`), and
    matches the configured audience and issuer.

    Raises:
        AnswerError: the body is not a JSON object with a boolean `active`, or a member has
            the wrong type. The policy treats this as the endpoint failing (fail closed).
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AnswerError("the answer is not JSON") from exc
    if not isinstance(document, dict):
        raise AnswerError("the answer is not a JSON object")
    active = document.get("active")
    if not isinstance(active, bool):
        raise AnswerError("`active` is missing or not a boolean")
    if not active:
        return Verdict(None, "inactive")
    expires_at = _number(document, "exp")
    not_before = _number(document, "nbf")
    subject = _string(document, "sub") or _string(document, "client_id")
    scope = _string(document, "scope")
    issuer = _string(document, "iss")
    token_id = _string(document, "jti")
    if expires_at is not None and expires_at <= now:
        return Verdict(None, "expired")
    if not_before is not None and not_before > now:
        return Verdict(None, "not_yet_valid")
    if not subject or not subject.isprintable():
        return Verdict(None, "no_subject")
    if rules.issuer is not None and issuer != rules.issuer:
        return Verdict(None, "wrong_issuer")
    if rules.audiences and not _audience_matches(document.get("aud"), rules.audiences):
        return Verdict(None, "wrong_audience")
    scopes = frozenset(scope.split()) if scope else frozenset()
    if len(scopes) > _MAX_SCOPES or any(not item.isprintable() for item in scopes):
        return Verdict(None, "bad_scope")
    identity = Identity(
        consumer_id=subject,
        scopes=scopes,
        credential_id=token_id if token_id and token_id.isprintable() else None,
        method=METHOD,
    )
    return Verdict(identity, expires_at=expires_at)


def _audience_matches(value: object, wanted: frozenset[str]) -> bool:
    if isinstance(value, str):
        return value in wanted
    if isinstance(value, list):
        return any(isinstance(item, str) and item in wanted for item in value)
    return False

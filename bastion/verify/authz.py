"""Probes for authorization and lockout: scopes, acl and brute_force fire on the running gateway.

Authorization can only be proved with a credential that authenticates but lacks what the route
requires. It comes from `--limited-auth` (its JWT claims are read, unverified, to know what it
lacks: a credential that holds the scopes proves nothing and is a skip), or is minted with the
route's own HMAC secret. Brute-force probes lock a random identity from the probe's address (an
API key id or a Basic user nobody has) and then show another identity from the same address is
not locked out; the per-address threshold alone (bearer tokens name no identity) locks the
address out of the route for the cool-down, so it runs only with `--allow-lockout`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import secrets

import orjson
from pydantic import BaseModel

from bastion.policies.acl.config import ACLConfig
from bastion.policies.api_key.config import APIKeyConfig
from bastion.policies.basic_auth.config import BasicAuthConfig
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.jwt.config import JWTConfig
from bastion.policies.scopes.config import ScopesConfig
from bastion.store.secrets import new_api_key
from bastion.verify import forge
from bastion.verify.client import ProbeError, Reply
from bastion.verify.model import Check, Outcome
from bastion.verify.probes import AUTH_POLICIES, Session, report_only
from bastion.verify.targets import RoutePlan

Headers = list[tuple[str, str]]
_OUTSIDER = "bastion-verify-outsider"
_NO_LIMITED = (
    "needs a credential that authenticates without it: pass --limited-auth, or give the jwt"
    " policy an HMAC secret"
)


def _check(policy: str, plan: RoutePlan, name: str, outcome: Outcome, reason: str) -> Check:
    return Check(policy, f"route {plan.name}", name, outcome, reason)


def jwt_claims(headers: Headers) -> dict[str, object] | None:
    """The payload of a Bearer JWT among `headers`, decoded WITHOUT verification (or None).

    Only used to learn what a credential the user supplied claims to lack; the gateway is the
    one that verifies it.
    """
    for name, value in headers:
        scheme, _, token = value.partition(" ")
        if name.lower() != "authorization" or scheme.lower() != "bearer":
            continue
        parts = token.strip().split(".")
        if len(parts) != 3:
            return None
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (binascii.Error, ValueError):
            return None
        return payload if isinstance(payload, dict) else None
    return None


def _words(value: object) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}
    return set()


def _required(config: ScopesConfig, plan: RoutePlan) -> tuple[str | None, list[str], str]:
    """A method of the route that needs scopes, the scopes, and how they match."""
    for method in (plan.method, plan.body_method):
        if method is None:
            continue
        rule = config.methods.get(method)
        required, match = (rule.required, rule.match) if rule else (config.required, config.match)
        if required:
            return method, required, match
    return None, [], "all"


def _lacks(held: set[str], required: list[str], match: str) -> bool:
    if match == "any":
        return not held.intersection(required)
    return not held.issuperset(required)


def _sole_jwt(plan: RoutePlan) -> JWTConfig | None:
    config = plan.policies.get("jwt")
    only = [name for name in AUTH_POLICIES if name in plan.policies] == ["jwt"]
    return config if isinstance(config, JWTConfig) and only else None


def _minted(session: Session, plan: RoutePlan, claims: dict[str, object]) -> Headers | None:
    config = _sole_jwt(plan)
    if config is None:
        return None
    token = forge.signed_token(config, expired=False, claims=claims)
    if token is None:
        return None
    return [("Authorization", "Bearer " + session.remember("JWT", token))]


def _send_expecting_403(
    session: Session,
    plan: RoutePlan,
    policy: str,
    name: str,
    method: str,
    headers: Headers,
    challenge: str | None,
) -> Check:
    body = b"{}" if method == plan.body_method else None
    sent = [("Content-Type", "application/json"), *headers] if body is not None else headers
    try:
        reply: Reply = session.send(plan, method=method, headers=sent, body=body)
    except ProbeError as exc:
        return _check(policy, plan, name, "fail", str(exc))
    if reply.status != 403:
        return _check(policy, plan, name, "fail", f"expected 403, got {reply.status}")
    if challenge is not None and not any(challenge in v for v in reply.all("www-authenticate")):
        return _check(policy, plan, name, "fail", f"403 without a WWW-Authenticate {challenge}")
    return _check(policy, plan, name, "pass", "403")


def scopes_check(
    session: Session, plan: RoutePlan, config: ScopesConfig, limited: Headers
) -> Check:
    """A credential without the route's scopes gets 403 `insufficient_scope` (RFC 6750 §3.1)."""
    policy = "scopes"
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return skipped
    method, required, match = _required(config, plan)
    name = f"credential without {' '.join(required) or 'scopes'}"
    if method is None:
        return _check(policy, plan, name, "skip", "no method the probe can send needs a scope")
    headers: Headers | None = None
    if limited:
        claims = jwt_claims(limited)
        if claims is None:
            reason = "--limited-auth is not a JWT: what it lacks is unknown"
            return _check(policy, plan, name, "skip", reason)
        held = _words(claims.get("scope")) | _words(claims.get("scp"))
        if not _lacks(held, required, match):
            reason = "the --limited-auth credential holds the scopes this route requires"
            return _check(policy, plan, name, "skip", reason)
        headers = limited
    else:
        acl = plan.policies.get("acl")
        admitted = [acl.allow[0]] if isinstance(acl, ACLConfig) and acl.allow else []
        jwt_config = _sole_jwt(plan)
        groups_claim = jwt_config.groups_claim if jwt_config is not None else "groups"
        # In an admitted group, so that a 403 can only come from the missing scope.
        headers = _minted(session, plan, {"scope": _OUTSIDER, groups_claim: admitted})
    if headers is None:
        return _check(policy, plan, name, "skip", _NO_LIMITED)
    return _send_expecting_403(
        session, plan, policy, name, method, headers, 'error="insufficient_scope"'
    )


def acl_check(session: Session, plan: RoutePlan, config: ACLConfig, limited: Headers) -> Check:
    """A caller outside the allowed groups (or in a denied one) gets 403."""
    policy = "acl"
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return skipped
    outsider = [config.deny[0]] if config.deny else [_OUTSIDER]
    name = f"caller in group {outsider[0]}" if config.deny else "caller outside the allowed groups"
    jwt_config = _sole_jwt(plan)
    groups_claim = jwt_config.groups_claim if jwt_config is not None else "groups"
    headers: Headers | None = None
    if limited:
        claims = jwt_claims(limited)
        groups = _words(claims.get(groups_claim)) if claims is not None else None
        refused = groups is not None and (
            bool(groups.intersection(config.deny))
            or (bool(config.allow) and not groups.intersection(config.allow))
        )
        if not refused:
            reason = "the --limited-auth credential may belong to an admitted group"
            return _check(policy, plan, name, "skip", reason)
        headers = limited
    else:
        # With every scope the route asks for, so that a 403 can only come from the groups.
        scopes = plan.policies.get("scopes")
        held: set[str] = set()
        if isinstance(scopes, ScopesConfig):
            held.update(scopes.required)
            for rule in scopes.methods.values():
                held.update(rule.required)
        headers = _minted(session, plan, {groups_claim: outsider, "scope": " ".join(sorted(held))})
    if headers is None:
        return _check(policy, plan, name, "skip", _NO_LIMITED)
    return _send_expecting_403(session, plan, policy, name, plan.method, headers, None)


def _identity_credentials(plan: RoutePlan) -> functools.partial[Headers] | None:
    """Makes wrong credentials that all name one new identity, or None for bearer-only routes."""
    api_key = plan.policies.get("api_key")
    if isinstance(api_key, APIKeyConfig):
        key_id, _ = new_api_key()
        return functools.partial(_wrong_key, api_key.header, key_id)
    if isinstance(plan.policies.get("basic_auth"), BasicAuthConfig):
        user = "bastion-verify-" + secrets.token_hex(4)
        return functools.partial(_wrong_password, user)
    return None


def _wrong_key(header: str, key_id: str) -> Headers:
    return [(header, new_api_key(key_id)[1])]


def _wrong_password(user: str) -> Headers:
    pair = f"{user}:{secrets.token_urlsafe(12)}".encode()
    return [("Authorization", "Basic " + base64.b64encode(pair).decode())]


def brute_force_checks(
    session: Session,
    plan: RoutePlan,
    config: BruteForceConfig,
    *,
    failures_sent: int,
    allow_lockout: bool,
) -> list[Check]:
    """Repeated failures lock the (address, identity) pair with 429 + Retry-After, not others.

    Args:
        session: The verify run.
        plan: The route probed.
        config: Its brute_force settings.
        failures_sent: failed authentications the earlier probes already sent to this route
            (they count toward the per-address threshold).
        allow_lockout: whether the probe may lock this machine's address out of the route.
    """
    policy = "brute_force"
    skipped = report_only(policy, plan, config)
    if skipped is not None:
        return [skipped]
    make, make_other = _identity_credentials(plan), _identity_credentials(plan)
    if make is None or make_other is None:
        return [_per_address(session, plan, config, failures_sent, allow_lockout)]
    name = f"{config.max_failures} failures lock the address and identity pair"
    if failures_sent + config.max_failures + 2 >= config.max_ip_failures:
        reason = "the per-address threshold is too close: the probe would lock this address out"
        return [_check(policy, plan, name, "skip", reason)]
    for attempt in range(1, config.max_failures + 2):
        try:
            reply = session.send(plan, headers=make())
        except ProbeError as exc:
            return [_check(policy, plan, name, "fail", f"attempt {attempt}: {exc}")]
        if reply.status == 429:
            break
    else:
        reason = f"no 429 after {config.max_failures + 1} failed attempts"
        return [_check(policy, plan, name, "fail", reason)]
    retry = reply.header("retry-after")
    if retry is None or not retry.isdigit():
        return [_check(policy, plan, name, "fail", f"429 with Retry-After {retry!r}")]
    checks = [_check(policy, plan, name, "pass", f"429 at attempt {attempt}, Retry-After {retry}")]
    other = "another identity from the same address is not locked out"
    try:
        answer = session.send(plan, headers=make_other())
    except ProbeError as exc:
        checks.append(_check(policy, plan, other, "fail", str(exc)))
        return checks
    if answer.status == 401:
        checks.append(_check(policy, plan, other, "pass", "401"))
    else:
        checks.append(_check(policy, plan, other, "fail", f"expected 401, got {answer.status}"))
    return checks


def _per_address(
    session: Session,
    plan: RoutePlan,
    config: BruteForceConfig,
    failures_sent: int,
    allow_lockout: bool,
) -> Check:
    policy = "brute_force"
    budget = max(1, config.max_ip_failures - failures_sent)
    name = f"{config.max_ip_failures} failures lock the address"
    if not allow_lockout:
        reason = (
            f"bearer tokens name no identity: proving it locks this address out of the route"
            f" for {config.lockout} s (pass --allow-lockout)"
        )
        return _check(policy, plan, name, "skip", reason)
    for attempt in range(1, budget + 2):
        token = session.remember("random bearer token", secrets.token_urlsafe(24))
        try:
            reply = session.send(plan, headers=[("Authorization", "Bearer " + token)])
        except ProbeError as exc:
            return _check(policy, plan, name, "fail", f"attempt {attempt}: {exc}")
        if reply.status == 429:
            retry = reply.header("retry-after")
            if retry is None or not retry.isdigit():
                return _check(policy, plan, name, "fail", f"429 with Retry-After {retry!r}")
            return _check(policy, plan, name, "pass", f"429 at attempt {attempt}")
    return _check(policy, plan, name, "fail", f"no 429 after {budget + 1} failed attempts")


def authorization_checks(
    session: Session, plan: RoutePlan, policies: dict[str, BaseModel], limited: Headers
) -> list[Check]:
    """The scopes and acl probes of one route."""
    checks = []
    scopes = policies.get("scopes")
    if isinstance(scopes, ScopesConfig):
        checks.append(scopes_check(session, plan, scopes, limited))
    acl = policies.get("acl")
    if isinstance(acl, ACLConfig):
        checks.append(acl_check(session, plan, acl, limited))
    return checks

"""Authentication and object-level authorization: open endpoints, JWT flaws, keys, BOLA."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
import time
from typing import Final

import httpx

from bastion.scanner.findings import CHECKS, CheckInfo
from bastion.scanner.http import Exchange
from bastion.scanner.runner import Identity, Operation, ScanContext, harvest_ids

NO_AUTH: Final = CHECKS.add(
    CheckInfo(
        "AUTH-001",
        "Endpoint answers without credentials",
        "high",
        "Enforce the security the OpenAPI document declares: reject requests without valid "
        "credentials with 401 before any handler runs (an authentication policy at the gateway).",
        "API2:2023",
    )
)
JWT_NONE: Final = CHECKS.add(
    CheckInfo(
        "AUTH-002",
        "JWT with alg 'none' accepted",
        "critical",
        "Pin the accepted algorithms per key and never accept `none`; verify every token's "
        "signature with a vetted JOSE library.",
        "API2:2023",
    )
)
JWT_SIGNATURE: Final = CHECKS.add(
    CheckInfo(
        "AUTH-003",
        "JWT signature not verified",
        "critical",
        "Verify the signature of every token before reading its claims.",
        "API2:2023",
    )
)
JWT_EXPIRED: Final = CHECKS.add(
    CheckInfo(
        "AUTH-004",
        "Expired JWT accepted",
        "high",
        "Validate `exp` (and `nbf`, `iss`, `aud`) on every token, with at most a small clock skew.",
        "API2:2023",
    )
)
JWT_WEAK_SECRET: Final = CHECKS.add(
    CheckInfo(
        "AUTH-005",
        "JWT signed with a guessable HMAC secret",
        "critical",
        "Sign with a random secret of at least 256 bits (or an asymmetric key) and rotate it; "
        "anyone who guesses the secret can mint tokens for any user.",
        "API2:2023",
    )
)
JWT_NO_EXP: Final = CHECKS.add(
    CheckInfo(
        "AUTH-006",
        "JWT without an expiry",
        "medium",
        "Issue short-lived access tokens with an `exp` claim (minutes, not days).",
        "API2:2023",
    )
)
KEY_IN_QUERY: Final = CHECKS.add(
    CheckInfo(
        "AUTH-007",
        "Credentials accepted in the query string",
        "medium",
        "Accept credentials only in headers: URLs end up in logs, proxies and browser history.",
        "API2:2023",
    )
)
BOLA: Final = CHECKS.add(
    CheckInfo(
        "AUTHZ-001",
        "Broken object-level authorization (BOLA/IDOR)",
        "critical",
        "Check on every object access that the caller owns (or may see) the object, using the "
        "authenticated identity, never an id taken from the request alone.",
        "API1:2023",
    )
)
MASS_ASSIGNMENT: Final = CHECKS.add(
    CheckInfo(
        "AUTHZ-002",
        "Mass assignment of privileged properties",
        "high",
        "Bind request bodies to an explicit input schema per operation (allowlist of writable "
        "fields); never copy a request body into a stored object as is.",
        "API3:2023",
    )
)
FUNCTION_LEVEL: Final = CHECKS.add(
    CheckInfo(
        "AUTHZ-003",
        "Administrative endpoint open to a regular user",
        "high",
        "Check the caller's role or scope on every administrative operation (deny by default), "
        "not only whether the caller is authenticated.",
        "API5:2023",
    )
)
USER_ENUMERATION: Final = CHECKS.add(
    CheckInfo(
        "AUTH-008",
        "Login reveals which accounts exist",
        "medium",
        "Answer every failed login the same way (status, body, and timing): "
        "'invalid credentials', whether the account exists or not.",
        "API2:2023",
    )
)
WEAK_PASSWORD: Final = CHECKS.add(
    CheckInfo(
        "AUTH-009",
        "Registration accepts a weak password",
        "medium",
        "Require passwords of at least 12 characters (NIST SP 800-63B) and refuse known-breached "
        "and trivial ones.",
        "API2:2023",
    )
)
PLAIN_HTTP_CREDENTIALS: Final = CHECKS.add(
    CheckInfo(
        "AUTH-010",
        "Credentials accepted over plain HTTP",
        "high",
        "Serve login and every authenticated operation over HTTPS only: answer plain HTTP with "
        "a 308 redirect (or close the port) before reading any credential, and send HSTS.",
        "API2:2023",
    )
)
BOLA_WRITE: Final = CHECKS.add(
    CheckInfo(
        "AUTHZ-004",
        "Broken object-level authorization on writes",
        "critical",
        "Check ownership on every write (PUT, PATCH, DELETE) as well as on reads, with the "
        "authenticated identity; a write by a stranger should get 404 or 403.",
        "API1:2023",
    )
)
_LOGIN_PATH: Final = re.compile(r"(?i)/(?:log-?in|sign-?in|auth|authenticate|session|token)s?/?$")
_REGISTER_PATH: Final = re.compile(r"(?i)/(?:register|registration|sign-?up|users?)/?$")
_USER_FIELDS: Final = ("username", "email", "login", "user", "name")
_PASSWORD_FIELDS: Final = ("password", "passwd", "pass", "pwd")
WRONG_PASSWORD: Final = "Bastion-scan-wrong-1!"  # noqa: S105 - a probe meant to fail
WEAK_PASSWORD_VALUE: Final = "1234"  # noqa: S105 - the weak password being tested

# Properties that grant privileges when a client can set them; the values a client would want.
PRIVILEGED: Final[dict[str, object]] = {
    "role": "admin",
    "is_admin": True,
    "isAdmin": True,
    "admin": True,
    "is_staff": True,
    "is_superuser": True,
}
_ADMIN_SEGMENT: Final = re.compile(
    r"(?i)/(?:admin|administrator|internal|manage|management|staff|backoffice|back-office"
    r"|superuser|moderation)(?:/|$)"
)

# Secrets seen in tutorials, defaults and leaked configs; a token signed with one is forgeable.
WEAK_SECRETS: Final = (
    "secret",
    "secret123",
    "password",
    "changeme",
    "changeit",
    "jwt_secret",
    "jwtsecret",
    "your-256-bit-secret",
    "your_jwt_secret",
    "supersecret",
    "mysecret",
    "key",
    "secretkey",
    "secret-key",
    "s3cr3t",
    "test",
    "dev",
    "admin",
    "123456",
    "qwerty",
    # Added after the blind library test (docs/scanner.md): more defaults from tutorials,
    # sample apps and framework quick starts. Offline guesses, so the list costs no requests.
    "random",
    "secret_key",
    "secretKey",
    "jwt-secret",
    "jwtSecret",
    "jwt_secret_key",
    "my_secret",
    "my-secret",
    "mysecretkey",
    "my_secret_key",
    "topsecret",
    "super-secret",
    "super_secret",
    "supersecretkey",
    "shhhhh",
    "keyboard cat",
    "change_me",
    "change-me",
    "default",
    "development",
    "token",
    "auth",
    "pass",
    "private",
    "12345",
    "12345678",
    "123456789",
    "1234567890",
    "abc123",
    "letmein",
    "welcome",
    "hello",
    "app_secret",
    "api_secret",
    "access_secret",
    "your_secret_key",
    "your-secret-key",
    "replace-me",
)
_QUERY_NAMES: Final = ("api_key", "apikey", "key", "access_token", "token")
_HMAC: Final = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _encode_json(value: object) -> str:
    return _b64encode(json.dumps(value, separators=(",", ":")).encode())


def parse_jwt(token: str) -> tuple[dict[str, object], dict[str, object], str] | None:
    """Return (header, payload, signature) of a compact JWS, or None if it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64decode(parts[0]))
        payload = json.loads(_b64decode(parts[1]))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return None
    return header, payload, parts[2]


def sign_hmac(header: dict[str, object], payload: dict[str, object], secret: bytes) -> str:
    """Build an HMAC-signed compact JWS (attack tokens only: forged expiry, cracked secret)."""
    digest = _HMAC[str(header["alg"])]
    signing_input = f"{_encode_json(header)}.{_encode_json(payload)}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64encode(signature)}"


def crack_hmac(token: str) -> str | None:
    """Return the secret from `WEAK_SECRETS` that signed `token`, if any."""
    parsed = parse_jwt(token)
    if parsed is None or parsed[0].get("alg") not in _HMAC:
        return None
    signing_input, _, signature = token.rpartition(".")
    digest = _HMAC[str(parsed[0]["alg"])]
    for secret in WEAK_SECRETS:
        expected = _b64encode(hmac.new(secret.encode(), signing_input.encode(), digest).digest())
        if hmac.compare_digest(expected, signature):
            return secret
    return None


def _with_token(identity: Identity, token: str) -> dict[str, str]:
    return {
        name: value.replace(identity.credential, token) for name, value in identity.headers.items()
    }


async def _reference(ctx: ScanContext) -> tuple[Operation, str] | None:
    """A secured GET that identity 1 may read and an anonymous caller may not."""
    for op in ctx.secured_gets():
        baseline = ctx.baseline.get(("GET", op.path))
        if baseline is None or not baseline.ok:
            continue
        path = ctx.fill(op)
        anonymous = await ctx.send("GET", path)
        if anonymous is not None and anonymous.status in (401, 403):
            return op, path
    return None


async def _open_endpoints(ctx: ScanContext) -> None:
    for op in ctx.secured_gets():
        exchange = await ctx.send("GET", ctx.fill(op))
        if exchange is not None and exchange.ok:
            ctx.report(
                NO_AUTH,
                exchange.url,
                detail="the OpenAPI document declares security for this operation",
                evidence=ctx.client.evidence(exchange),
            )


async def _accepted(ctx: ScanContext, path: str, headers: dict[str, str]) -> Exchange | None:
    exchange = await ctx.send("GET", path, headers=headers)
    return exchange if exchange is not None and exchange.ok else None


async def _jwt(ctx: ScanContext, identity: Identity, path: str) -> None:
    token = identity.credential
    parsed = parse_jwt(token)
    if parsed is None:
        return
    header, payload, signature = parsed
    url = ctx.client.url(path)
    none_token = f"{_encode_json({**header, 'alg': 'none'})}.{_encode_json(payload)}."
    hit = await _accepted(ctx, path, _with_token(identity, none_token))
    if hit is not None:
        ctx.report(JWT_NONE, url, evidence=ctx.client.evidence(hit, note="token with alg none"))
    flipped = ("A" if signature[:1] != "A" else "B") + signature[1:]
    tampered = token.rpartition(".")[0] + "." + flipped[::-1]
    hit = await _accepted(ctx, path, _with_token(identity, tampered))
    if hit is not None:
        note = "token with a tampered signature"
        ctx.report(JWT_SIGNATURE, url, evidence=ctx.client.evidence(hit, note=note))
    secret = crack_hmac(token)
    if secret is not None:
        ctx.report(
            JWT_WEAK_SECRET,
            url,
            detail=f"the {header.get('alg')} signature verifies with a well-known secret "
            f"({len(secret)} characters, from the built-in list)",
        )
    exp = payload.get("exp")
    if exp is None:
        ctx.report(JWT_NO_EXP, url, detail="the supplied token has no 'exp' claim")
    now = int(time.time())
    if isinstance(exp, int | float) and exp < now:
        hit = await _accepted(ctx, path, dict(identity.headers))
        if hit is not None:
            note = "the supplied token is already expired"
            ctx.report(JWT_EXPIRED, url, evidence=ctx.client.evidence(hit, note=note))
    elif secret is not None:
        expired = sign_hmac(header, {**payload, "exp": now - 3600}, secret.encode())
        hit = await _accepted(ctx, path, _with_token(identity, expired))
        if hit is not None:
            note = "a correctly signed token that expired an hour ago"
            ctx.report(JWT_EXPIRED, url, evidence=ctx.client.evidence(hit, note=note))


async def _query_credentials(ctx: ScanContext, identity: Identity, path: str) -> None:
    for name in _QUERY_NAMES:
        hit = await ctx.send("GET", path, params={name: identity.credential})
        if hit is not None and hit.ok:
            ctx.report(
                KEY_IN_QUERY,
                ctx.client.url(path),
                detail=f"the credential was accepted as ?{name}=",
                evidence=ctx.client.evidence(hit),
            )
            return


_CLAIMS: Final = ("sub", "username", "preferred_username", "email", "user", "name")


def own_names(identity: Identity) -> set[str]:
    """The identity's own account names: from its login recipe and its JWT's claims."""
    names = set(identity.names)
    parsed = parse_jwt(identity.credential)
    if parsed is not None:
        names |= {str(parsed[1][c]) for c in _CLAIMS if isinstance(parsed[1].get(c), str | int)}
    return names


def owned_first(candidates: list[str], identity: Identity) -> list[str]:
    """Candidate ids, narrowed to identity's own account when that is among them.

    When a parameter takes user names (`/users/{username}`), the others are accounts of third
    parties whose public profile both identities may legitimately see; identity's own
    account is the one object certainly its own.
    """
    own = own_names(identity)
    mine = [value for value in candidates if value in own]
    return mine or candidates


async def _bola(ctx: ScanContext, first: Identity, second: Identity) -> None:
    for op in ctx.secured_gets():
        params = op.path_params
        if len(params) != 1:
            continue
        candidates = owned_first(ctx.candidate_ids(op, params[0]), first)[:3]
        prefix = op.path.split("{", 1)[0].rstrip("/")
        own = await ctx.send("GET", prefix, identity=second) if prefix else None
        owned_by_second: set[str] = set()
        if own is not None and own.ok:
            with contextlib.suppress(ValueError):
                harvest_ids(json.loads(own.body), owned_by_second)
        for value in candidates:
            if value in owned_by_second:
                continue
            path = op.path.replace("{" + params[0] + "}", value)
            mine = await ctx.send("GET", path, identity=first)
            if mine is None or not mine.ok:
                continue
            theirs = await ctx.send("GET", path, identity=second)
            if theirs is not None and theirs.ok and theirs.body == mine.body:
                note = "identity 2 read an object whose id came from identity 1's responses"
                ctx.report(BOLA, theirs.url, evidence=ctx.client.evidence(theirs, note=note))
                break


def _privileged(document: object, depth: int = 0) -> set[str]:
    """Privileged properties of a JSON object that hold the value an attacker would want.

    Objects nested in objects count (`{"user": {"admin": true}}`, a created resource in an
    envelope); objects inside lists do not, since a listing may show other, real admins.
    """
    if not isinstance(document, dict) or depth > 3:
        return set()
    found = {key for key, wanted in PRIVILEGED.items() if document.get(key) == wanted}
    for value in document.values():
        found |= _privileged(value, depth + 1)
    return found


# Fields that often have to be unique (a title or name taken by an earlier probe's object).
_UNIQUE_FIELD: Final = re.compile(
    r"(?i)(?:^|[_-])(?:name|title|slug|code|handle)$|[a-z](?:Name|Title)$"
)
_TOKEN_KEY: Final = re.compile(r"(?i)token|jwt|session|api_?key|bearer")


def _has_token(document: object, depth: int = 0) -> bool:
    if depth > 4:
        return False
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(value, str) and len(value) >= 8 and _TOKEN_KEY.search(str(key)):
                return True
            if _has_token(value, depth + 1):
                return True
    return False


def logged_in(exchange: Exchange) -> bool:
    """Whether a login answer looks like a success: a 2xx that sets a cookie or hands a token.

    Some APIs answer failed logins with 200 and `{"status": "fail"}`; a bare 2xx proves nothing.
    """
    if not exchange.ok:
        return False
    if "set-cookie" in exchange.headers:
        return True
    try:
        return _has_token(json.loads(exchange.body))
    except ValueError:
        return False


def fresh_body(ctx: ScanContext, op: Operation) -> dict[str, object]:
    """The example body of a creating POST, with fields that must be unique made fresh.

    A documented example often names an account that exists already (`"username": "name1"`),
    or an object an earlier probe created from the same example, and the API then answers
    "already exists" whatever else the body holds: user-name and e-mail fields get a random
    unknown value, passwords a strong random one, names and titles a random suffix. Other
    methods (and the login) get their example as it is.
    """
    body = json.loads(op.body_example or "{}")
    if not isinstance(body, dict) or op.method != "POST" or op is login_operation(ctx):
        return body if isinstance(body, dict) else {}
    fresh: dict[str, object] = dict(body)
    for key, value in body.items():
        if not isinstance(value, str):
            continue
        if key in _USER_FIELDS:
            fresh[key] = unknown_user(ctx, "email" if "@" in value or key == "email" else key)
        elif key in _PASSWORD_FIELDS:
            fresh[key] = f"Bastion-{ctx.rng.randrange(16**12):012x}-Scan!"
        elif _UNIQUE_FIELD.search(key):
            fresh[key] = f"{value}-{ctx.rng.randrange(16**6):06x}"
    return fresh


def _json(exchange: Exchange | None) -> object:
    if exchange is None or not exchange.ok:
        return None
    try:
        return json.loads(exchange.body)
    except ValueError:
        return None


async def _mass_assignment(ctx: ScanContext, identity: Identity) -> None:
    readable = {op.path for op in ctx.operations if op.method == "GET"}
    for op in ctx.operations:
        if op.method not in ("POST", "PUT", "PATCH") or op.body_example is None:
            continue
        path = ctx.fill(op)
        before = await ctx.send("GET", path, identity=identity) if op.path in readable else None
        already = _privileged(_json(before))
        body = fresh_body(ctx, op)
        current = _json(before)
        if isinstance(current, dict) and op.method != "POST":
            body = {**current, **body}
        body.update(PRIVILEGED)
        headers = {"Content-Type": "application/json"}
        sent = await ctx.send(
            op.method, path, identity=identity, headers=headers, content=json.dumps(body).encode()
        )
        if sent is None or not sent.ok:
            continue
        after = await ctx.send("GET", path, identity=identity) if op.path in readable else None
        gained = (_privileged(_json(sent)) | _privileged(_json(after))) - already
        if gained:
            proof = after if after is not None and _privileged(_json(after)) else sent
            ctx.report(
                MASS_ASSIGNMENT,
                ctx.client.url(op.path),
                method=op.method,
                detail="accepted and stored: " + ", ".join(sorted(gained)),
                evidence=ctx.client.evidence(proof),
            )


async def _function_level(ctx: ScanContext, regular: Identity) -> None:
    for op in ctx.secured_gets():
        if not _ADMIN_SEGMENT.search(op.path):
            continue
        exchange = await ctx.send("GET", ctx.fill(op), identity=regular)
        if exchange is not None and exchange.ok:
            note = "identity 2 (expected to be a regular user) was served an admin operation"
            ctx.report(
                FUNCTION_LEVEL, exchange.url, evidence=ctx.client.evidence(exchange, note=note)
            )


def credential_fields(op: Operation) -> tuple[dict[str, object], str, str] | None:
    """The example body of an operation that takes a user name and a password, and both keys."""
    if op.method != "POST" or op.body_example is None:
        return None
    body = json.loads(op.body_example)
    if not isinstance(body, dict):
        return None
    user = next((k for k in _USER_FIELDS if k in body), None)
    password = next((k for k in _PASSWORD_FIELDS if k in body), None)
    if user is None or password is None:
        return None
    return body, user, password


def login_operation(ctx: ScanContext) -> Operation | None:
    """The first documented POST that looks like a login, else the `--login` recipe's."""
    for op in ctx.operations:
        if _LOGIN_PATH.search(op.path) and credential_fields(op) is not None:
            return op
    for recipe in ctx.logins:
        if recipe.form:
            continue  # the login probes send JSON bodies
        op = Operation(
            recipe.method, recipe.path, has_body=True, body_example=json.dumps(recipe.body)
        )
        if credential_fields(op) is not None:
            return op
    return None


def _known_users(ctx: ScanContext, field: str) -> list[str]:
    """User names known to exist: from `--login` recipes, then from responses."""
    known = [
        str(recipe.body[key])
        for recipe in ctx.logins
        for key in (field, *_USER_FIELDS)
        if isinstance(recipe.body.get(key), str)
    ]
    for key in (field, "username", "user", "owner", "email"):
        known.extend(ctx.ids.get(key, []))
    return known


def unknown_user(ctx: ScanContext, field: str) -> str:
    """A user name no account has (random, seeded); an address when the field is an email."""
    name = f"bastion-scan-{ctx.rng.randrange(16**8):08x}"
    return name + "@example.invalid" if field == "email" else name


async def _login(
    ctx: ScanContext, op: Operation, user: str, password: str, path: str | None = None
) -> Exchange | None:
    fields = credential_fields(op)
    if fields is None:
        return None
    body, user_key, password_key = fields
    payload = {**body, user_key: user, password_key: password}
    headers = {"Content-Type": "application/json"}
    return await ctx.send(
        op.method, path or op.path, headers=headers, content=json.dumps(payload).encode()
    )


def _shape(exchange: Exchange, user: str) -> tuple[int, bytes]:
    return exchange.status, exchange.body.replace(user.encode(), b"<user>")


async def _user_enumeration(ctx: ScanContext) -> None:
    op = login_operation(ctx)
    fields = credential_fields(op) if op is not None else None
    if op is None or fields is None:
        return
    field = fields[1]
    known = next(iter(_known_users(ctx, field)), None)
    if known is None:
        ctx.note("user enumeration skipped: no user name seen in any response")
        return
    first, second = unknown_user(ctx, field), unknown_user(ctx, field)
    a = await _login(ctx, op, first, WRONG_PASSWORD)
    b = await _login(ctx, op, second, WRONG_PASSWORD)
    real = await _login(ctx, op, known, WRONG_PASSWORD)
    if a is None or b is None or real is None or logged_in(real):
        return
    if _shape(a, first) != _shape(b, second):
        return  # failed logins differ among unknown users already: nothing to compare
    if _shape(real, known) != _shape(a, first):
        note = f"unknown user: {a.status}; existing user with a wrong password: {real.status}"
        ctx.report(
            USER_ENUMERATION,
            ctx.client.url(op.path),
            method="POST",
            evidence=ctx.client.evidence(real, note=note) + "\n" + ctx.client.evidence(a),
        )


async def _weak_registration(ctx: ScanContext) -> None:
    for op in ctx.operations:
        fields = credential_fields(op)
        if fields is None or not _REGISTER_PATH.search(op.path) or _LOGIN_PATH.search(op.path):
            continue
        body, user_key, password_key = fields
        user = unknown_user(ctx, user_key)
        payload = {**body, user_key: user, password_key: WEAK_PASSWORD_VALUE}
        headers = {"Content-Type": "application/json"}
        exchange = await ctx.send(
            "POST", op.path, headers=headers, content=json.dumps(payload).encode()
        )
        if exchange is not None and exchange.ok:
            ctx.report(
                WEAK_PASSWORD,
                exchange.url,
                method="POST",
                detail=f"a new account was created with the password {WEAK_PASSWORD_VALUE!r}",
                evidence=ctx.client.evidence(exchange),
            )
        return


def _plain_url(ctx: ScanContext, path: str) -> str | None:
    target = ctx.client.target
    if target.scheme != "https":
        return None  # an http:// target is TRANSPORT-001 already
    https = httpx.URL(ctx.client.url(path))
    return str(https.copy_with(scheme="http", port=ctx.options.http_port or 80))


async def _plain_http_credentials(ctx: ScanContext, reference: str | None) -> None:
    """Does the plain-HTTP listener serve logins or ask for credentials?

    No real credential is sent: a failed login (a random unknown user) must get the same
    answer over HTTP as over HTTPS, or a secured operation must answer plain HTTP with the
    same 401/403 as HTTPS (a redirect, a closed port or an error page are fine).
    """
    op = login_operation(ctx)
    fields = credential_fields(op) if op is not None else None
    if ctx.options.allow_unsafe and op is not None and fields is not None:
        url = _plain_url(ctx, op.path)
        user = unknown_user(ctx, fields[1])
        secure = await _login(ctx, op, user, WRONG_PASSWORD)
        plain = await _login(ctx, op, user, WRONG_PASSWORD, path=url) if url else None
        if secure is not None and plain is not None and _shape(plain, user) == _shape(secure, user):
            note = f"a failed login over plain HTTP answered {plain.status}, as over HTTPS"
            ctx.report(
                PLAIN_HTTP_CREDENTIALS,
                ctx.client.url(op.path),
                method=op.method,
                detail="the login operation reads credentials sent over plain HTTP",
                evidence=ctx.client.evidence(plain, note=note),
            )
            return
    url = _plain_url(ctx, reference) if reference else None
    if reference is None or url is None:
        return
    secure = await ctx.send("GET", reference)
    plain = await ctx.send("GET", url)
    if secure is not None and plain is not None and plain.status == secure.status:
        note = f"plain HTTP answered {plain.status} like HTTPS: it asks for credentials"
        ctx.report(
            PLAIN_HTTP_CREDENTIALS,
            ctx.client.url(reference.split("?", 1)[0]),
            detail="a secured operation is served over plain HTTP",
            evidence=ctx.client.evidence(plain, note=note),
        )


async def _bola_write(ctx: ScanContext, first: Identity, second: Identity) -> None:
    """Identity 2 writes (PUT, PATCH, then DELETE) to an object of identity 1."""
    readable = {op.path for op in ctx.operations if op.method == "GET"}
    writes = [
        op
        for op in ctx.operations
        if op.method in ("PUT", "PATCH", "DELETE") and op.secured and len(op.path_params) == 1
    ]
    writes.sort(key=lambda op: op.method == "DELETE")  # destructive probes last
    headers = {"Content-Type": "application/json"}
    done: set[str] = set()
    for op in writes:
        if op.path in done:
            continue
        name = op.path_params[0]
        prefix = op.path.split("{", 1)[0].rstrip("/")
        own = await ctx.send("GET", prefix, identity=second) if prefix else None
        owned_by_second: set[str] = set()
        if own is not None and own.ok:
            with contextlib.suppress(ValueError):
                harvest_ids(json.loads(own.body), owned_by_second)
        candidates = owned_first(ctx.candidate_ids(op, name), first)
        victim = next((v for v in candidates if v not in owned_by_second), None)
        if victim is None:
            continue
        path = op.path.replace("{" + name + "}", victim)
        current = None
        if op.path in readable:
            mine = await ctx.send("GET", path, identity=first)
            if mine is None or not mine.ok:
                continue  # identity 1 cannot read it either: not its object
            current = _json(mine)
        body = current if isinstance(current, dict) else json.loads(op.body_example or "{}")
        content = json.dumps(body).encode() if op.method != "DELETE" else None
        nowhere = op.path.replace("{" + name + "}", f"{900000000 + ctx.rng.randrange(10**8)}")
        control = await ctx.send(
            op.method, nowhere, identity=second, headers=headers, content=content
        )
        if control is None or control.ok:
            continue  # a write to an object that does not exist succeeds too: proves nothing
        theirs = await ctx.send(op.method, path, identity=second, headers=headers, content=content)
        if theirs is not None and theirs.ok:
            done.add(op.path)
            note = (
                f"identity 2 sent {op.method} to an object of identity 1 ({theirs.status}); "
                f"the same write to a missing id answered {control.status}"
            )
            ctx.report(
                BOLA_WRITE,
                ctx.client.url(op.path),
                method=op.method,
                evidence=ctx.client.evidence(theirs, note=note),
            )


async def run(ctx: ScanContext) -> None:
    """Probe authentication and object-level authorization."""
    await _open_endpoints(ctx)
    if ctx.options.allow_unsafe:
        await _user_enumeration(ctx)
        await _weak_registration(ctx)
    first = ctx.identity1
    reference = await _reference(ctx) if first is not None else None
    await _plain_http_credentials(ctx, reference[1] if reference else None)
    if first is None:
        return
    if reference is not None:
        _, path = reference
        await _jwt(ctx, first, path)
        await _query_credentials(ctx, first, path)
    if ctx.identity2 is not None:
        await _bola(ctx, first, ctx.identity2)
        await _function_level(ctx, ctx.identity2)
        if ctx.options.allow_unsafe:
            await _bola_write(ctx, first, ctx.identity2)
        else:
            ctx.note("BOLA on writes (AUTHZ-004) needs --allow-unsafe: only reads were tested")
    if ctx.options.allow_unsafe:
        await _mass_assignment(ctx, first)

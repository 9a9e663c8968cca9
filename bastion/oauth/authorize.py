"""The authorization endpoint (RFC 6749 §4.1.1): a minimal server-rendered login and consent page.

How this works: GET /oauth/authorize checks the request (client, exact redirect URI, PKCE S256,
scopes) and answers with one HTML form that carries the request's parameters as hidden fields
and a CSRF token. The token is double-submitted: the same random value goes in a
`__Host-` cookie (HttpOnly, Secure, SameSite=Lax, so other sites can neither read nor plant it)
and in the form, with its issue time, and the POST must bring both, equal and fresh. The POST
checks everything again, verifies the consumer's password (argon2id, off the event loop) and
redirects to the client with a single-use code, `state` and `iss` (RFC 9207).

Errors that make the redirect URI untrustworthy (unknown client, unregistered redirect URI) are
shown on the page and never redirected (RFC 6749 §4.1.2.1); all others go back to the client.
This page is a starting point: a real deployment would put an identity provider (SSO, MFA,
account recovery) behind the same `CodeGrant`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlencode, urlsplit

from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.oauth import pkce
from bastion.oauth.clients import CLIENT_ID_PATTERN
from bastion.oauth.errors import OAuthError
from bastion.oauth.form import parse_form
from bastion.oauth.grant_store import CodeGrant
from bastion.oauth.server import AUTHORIZE_PATH, AuthorizationServer
from bastion.store.base import OAuthClientRecord
from bastion.store.secrets import PasswordBusy, PasswordVerifier

CSRF_COOKIE: Final = "__Host-bastion-oauth-csrf"
CSRF_TTL: Final = 600
"""Seconds the login form stays valid."""
MAX_STATE: Final = 1024
MAX_USERNAME: Final = 256
MAX_PASSWORD: Final = 1024

LOGIN_FAILED: Final = "The username or password is incorrect."
BAD_CLIENT: Final = "This application is not registered for this redirect address."
EXPIRED_FORM: Final = "This form has expired or was not sent from this page. Please start again."
BAD_PAGE_REQUEST: Final = "The authorization request is malformed."
BUSY: Final = "The service is busy. Please try again in a moment."
TOO_MANY_ATTEMPTS: Final = "Too many failed sign-in attempts. Please try again later."

_STYLE: Final = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;"
    "color:#1b1b1b}label{display:block;margin:.75rem 0}input{display:block;width:100%;"
    "padding:.4rem;box-sizing:border-box}button{margin:1rem .5rem 0 0;padding:.5rem 1rem}"
    ".error{color:#a40000}"
)
_STYLE_HASH: Final = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
_HIDDEN: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


@dataclass(frozen=True, slots=True)
class _Checked:
    client: OAuthClientRecord
    redirect_uri: str
    scopes: list[str]
    state: str | None
    code_challenge: str
    params: Mapping[str, str]


class _Page(Exception):
    """Answer with the error page (never redirect)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _Back(Exception):
    """Redirect the error to the client (RFC 6749 §4.1.2.1)."""

    def __init__(self, redirect_uri: str, error: str, state: str | None) -> None:
        super().__init__(error)
        self.redirect_uri = redirect_uri
        self.error = error
        self.state = state


class LoginUnavailable(Exception):
    """The failed-login counters are down and their settings say to refuse (503)."""


class LoginAttempts(Protocol):
    """The brute-force guard of one login request (see `bastion.oauth.routes`)."""

    async def locked(self, username: str) -> int | None:
        """Seconds to wait when this source may not try `username` now; None to go ahead.

        Raises:
            LoginUnavailable: the counters cannot answer and the guard fails closed.
        """
        ...

    def failed(self, username: str) -> None:
        """Count one failed login for `username` from this source."""
        ...


class AuthorizeEndpoint:
    """GET and POST /oauth/authorize for one `AuthorizationServer`."""

    def __init__(
        self, server: AuthorizationServer, verifier: PasswordVerifier | None = None
    ) -> None:
        self.server = server
        self.verifier = verifier or PasswordVerifier()

    async def page(self, headers: Headers, query: bytes) -> Response:
        """GET: the login and consent form, or an error (page or redirect)."""
        del headers  # nothing from the request's headers is used on GET
        try:
            checked = await self._check(_parse(query))
        except _Page as exc:
            return _error_page(exc.message, exc.status)
        except _Back as exc:
            return self._redirect(exc.redirect_uri, {"error": exc.error}, exc.state)
        return self._form(checked, error=None)

    async def submit(
        self, headers: Headers, body: bytes, attempts: LoginAttempts | None = None
    ) -> Response:
        """POST: check the CSRF token, the request and the password; redirect with a code.

        With `attempts`, a source locked out for the username gets the form again with a
        generic message and 429 before any password is checked, and a failed login is counted.
        """
        try:
            params = _parse(body)
            if not self._csrf_ok(headers, params.get("csrf_token", "")):
                raise _Page(EXPIRED_FORM, 403)
            checked = await self._check(params)
            if params.get("decision") != "allow":
                raise _Back(checked.redirect_uri, "access_denied", checked.state)
            username = params.get("username", "")
            if attempts is not None and username:
                retry = await attempts.locked(username)
                if retry is not None:
                    return self._form(checked, error=TOO_MANY_ATTEMPTS, retry_after=retry)
            subject = await self._login(params)
        except _Page as exc:
            return _error_page(exc.message, exc.status)
        except _Back as exc:
            return self._redirect(exc.redirect_uri, {"error": exc.error}, exc.state)
        except LoginUnavailable:
            return _error_page(BUSY, 503)
        if subject is None:
            if attempts is not None and username and params.get("password"):
                attempts.failed(username)  # an empty field is no guess (as a missing credential)
            return self._form(checked, error=LOGIN_FAILED)
        grant = CodeGrant(
            client_id=checked.client.id,
            subject=subject,
            redirect_uri=checked.redirect_uri,
            scope=" ".join(checked.scopes),
            code_challenge=checked.code_challenge,
            family_id=secrets.token_hex(16),
        )
        code = await self.server.new_authorization_code(grant)
        response = self._redirect(checked.redirect_uri, {"code": code}, checked.state)
        response.headers.add(
            b"set-cookie",
            f"{CSRF_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax".encode(),
        )
        return response

    async def _check(self, params: Mapping[str, str]) -> _Checked:
        client_id = params.get("client_id", "")
        client = None
        if CLIENT_ID_PATTERN.fullmatch(client_id):
            client = await self.server.store.get_oauth_client(client_id)
        redirect_uri = params.get("redirect_uri", "")
        if client is None or client.disabled:
            raise _Page(BAD_CLIENT)
        if redirect_uri not in await self.server.grants.redirect_uris(client.id):
            raise _Page(BAD_CLIENT)
        state = params.get("state")
        if state is not None and len(state) > MAX_STATE:
            raise _Back(redirect_uri, "invalid_request", None)
        if params.get("response_type") != "code":
            raise _Back(redirect_uri, "unsupported_response_type", state)
        if "authorization_code" not in client.grant_types:
            raise _Back(redirect_uri, "unauthorized_client", state)
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != pkce.METHOD or not pkce.is_valid_challenge(
            challenge
        ):
            raise _Back(redirect_uri, "invalid_request", state)
        try:
            scopes = AuthorizationServer.granted_scopes(client, params.get("scope"))
        except OAuthError:
            raise _Back(redirect_uri, "invalid_scope", state) from None
        return _Checked(client, redirect_uri, scopes, state, challenge, params)

    async def _login(self, params: Mapping[str, str]) -> str | None:
        """The consumer id for the form's username and password, or None."""
        username = params.get("username", "")
        password = params.get("password", "")
        if not username or not password:
            return None
        if len(username) > MAX_USERNAME or len(password.encode()) > MAX_PASSWORD:
            return None
        found = await self.server.grants.password_of(username)
        stored = found[0].password_hash if found is not None else None
        try:
            ok = await self.verifier.verify(stored, password)
        except PasswordBusy:
            raise _Page(BUSY, 503) from None
        if not ok or found is None or found[1].disabled:
            return None
        return found[1].id

    def _csrf_ok(self, headers: Headers, token: str) -> bool:
        cookie = _cookie(headers, CSRF_COOKIE)
        if not cookie or not token:
            return False
        if not hmac.compare_digest(cookie.encode(), token.encode()):  # bytes: any input is safe
            return False
        issued, _, _ = token.partition(".")
        if not issued.isdigit():
            return False
        age = self.server.clock.time() - int(issued)
        return -5 <= age <= CSRF_TTL

    def _redirect(self, uri: str, params: dict[str, str], state: str | None) -> Response:
        if state is not None:
            params["state"] = state
        params["iss"] = self.server.issuer
        location = uri + ("&" if "?" in uri else "?") + urlencode(params)
        headers = Headers(
            [
                (b"location", location.encode()),
                (b"cache-control", b"no-store"),
                (b"referrer-policy", b"no-referrer"),
            ]
        )
        return Response(303, headers, b"")

    def _form(
        self, checked: _Checked, *, error: str | None, retry_after: int | None = None
    ) -> Response:
        token = f"{int(self.server.clock.time())}.{secrets.token_urlsafe(24)}"
        name = html.escape(checked.client.name)
        scope_items = "".join(f"<li>{html.escape(s)}</li>" for s in checked.scopes)
        scope_list = (
            f"<p>It asks for:</p><ul>{scope_items}</ul>"
            if checked.scopes
            else "<p>It asks for no scopes.</p>"
        )
        hidden = "".join(
            f'<input type="hidden" name="{field}" value="{html.escape(checked.params[field])}">'
            for field in _HIDDEN
            if field in checked.params
        )
        message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>Sign in</title><style>{_STYLE}</style></head><body><main>"
            f"<h1>Sign in to continue to {name}</h1>{scope_list}{message}"
            f'<form method="post" action="{AUTHORIZE_PATH}">'
            f'<input type="hidden" name="csrf_token" value="{html.escape(token)}">{hidden}'
            '<label>Username <input name="username" id="username" autocomplete="username"'
            " required></label>"
            '<label>Password <input type="password" name="password" id="password"'
            ' autocomplete="current-password" required></label>'
            '<button type="submit" name="decision" value="allow" id="allow">Allow</button>'
            '<button type="submit" name="decision" value="deny" id="deny" formnovalidate>'
            "Deny</button></form></main></body></html>"
        )
        parts = urlsplit(checked.redirect_uri)
        # Chromium applies form-action to the redirect that answers the form, so the client's
        # (registered, exact) origin is allowed besides this page.
        origin = f"{parts.scheme}://{parts.netloc}"
        status = 200 if retry_after is None else 429
        response = _html(status, body, form_action=f"'self' {origin}")
        if retry_after is not None:
            response.headers.add(b"retry-after", b"%d" % retry_after)
        response.headers.add(
            b"set-cookie",
            f"{CSRF_COOKIE}={token}; Path=/; Max-Age={CSRF_TTL}; Secure; HttpOnly;"
            " SameSite=Lax".encode(),
        )
        return response


def _parse(data: bytes) -> dict[str, str]:
    try:
        return parse_form(data)
    except OAuthError:
        raise _Page(BAD_PAGE_REQUEST) from None


def _cookie(headers: Headers, name: str) -> str:
    """The value of cookie `name` when sent exactly once; "" otherwise."""
    found = [
        value.strip()
        for field in headers.get_all(b"cookie")
        for pair in field.decode("latin-1").split(";")
        for key, sep, value in [pair.strip().partition("=")]
        if sep and key == name
    ]
    return found[0] if len(found) == 1 else ""


def content_security_policy(form_action: str) -> str:
    """The page's CSP: nothing but its own hashed style sheet and form target."""
    return (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action {form_action}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def _html(status: int, body: str, *, form_action: str = "'none'") -> Response:
    headers = Headers(
        [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"pragma", b"no-cache"),
            (b"content-security-policy", content_security_policy(form_action).encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
    )
    return Response(status, headers, body.encode())


def _error_page(message: str, status: int) -> Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Authorization error</title><style>{_STYLE}</style></head><body><main>"
        f'<h1>Authorization error</h1><p class="error">{html.escape(message)}</p>'
        "</main></body></html>"
    )
    return _html(status, body)

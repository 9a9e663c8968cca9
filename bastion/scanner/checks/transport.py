"""Transport checks: TLS in use, HTTP redirected, HSTS, protocol versions, the certificate."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import warnings
from typing import Final

import httpx
from cryptography import x509

from bastion.scanner.findings import CHECKS, CheckInfo
from bastion.scanner.runner import ScanContext

NO_TLS: Final = CHECKS.add(
    CheckInfo(
        "TRANSPORT-001",
        "API served without TLS",
        "high",
        "Serve the API over HTTPS only (TLS 1.2 or later); credentials and data sent over plain "
        "HTTP can be read and changed by anyone on the path.",
        "API8:2023",
    )
)
HTTP_NOT_REDIRECTED: Final = CHECKS.add(
    CheckInfo(
        "TRANSPORT-002",
        "Plain HTTP answered instead of redirected",
        "medium",
        "Answer every plain-HTTP request with a 308 redirect to HTTPS (or close the port), "
        "never with content.",
        "API8:2023",
    )
)
NO_HSTS: Final = CHECKS.add(
    CheckInfo(
        "TRANSPORT-003",
        "HTTPS responses without Strict-Transport-Security",
        "medium",
        "Send `Strict-Transport-Security: max-age=31536000; includeSubDomains` on HTTPS responses "
        "so that browsers never fall back to HTTP.",
        "API8:2023",
    )
)
OLD_TLS: Final = CHECKS.add(
    CheckInfo(
        "TRANSPORT-004",
        "TLS older than 1.2 accepted",
        "high",
        "Set the minimum protocol version to TLS 1.2 (TLS 1.0 and 1.1 are deprecated by RFC 8996).",
        "API8:2023",
    )
)
BAD_CERT: Final = CHECKS.add(
    CheckInfo(
        "TRANSPORT-005",
        "Certificate expired, untrusted or self-signed",
        "high",
        "Serve a certificate issued by a trusted CA, valid for the host name, and renew it "
        "automatically (ACME) well before it expires.",
        "API8:2023",
    )
)
EXPIRING_CERT: Final = CHECKS.add(
    CheckInfo(
        "TRANSPORT-006",
        "Certificate expires within 30 days",
        "low",
        "Renew the certificate; automate renewal so that it never gets this close.",
        "API8:2023",
    )
)
WEAK_CIPHER: Final = CHECKS.add(
    CheckInfo(
        "TRANSPORT-007",
        "Weak TLS cipher suite accepted",
        "medium",
        "Offer only AEAD suites with forward secrecy (ECDHE with AES-GCM or ChaCha20-Poly1305) "
        "for TLS 1.2, as in Mozilla's 'intermediate' profile; TLS 1.3 suites are all fine.",
        "API8:2023",
    )
)
# Suites without forward secrecy or authenticated encryption (CBC with SHA-1, 3DES, RC4, NULL).
WEAK_SUITES: Final = (
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
    ":AES128-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384"
    ":DES-CBC3-SHA:RC4-SHA:RC4-MD5:NULL-SHA:NULL-MD5"
)
_EXPIRY_WARNING: Final = dt.timedelta(days=30)


def _handshake(
    host: str, port: int, context: ssl.SSLContext, timeout: float
) -> tuple[str | None, bytes | None, str | None]:
    """Return (negotiated version, peer certificate DER, cipher suite); raises on failure."""
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        cipher = tls.cipher()
        return tls.version(), tls.getpeercert(binary_form=True), cipher[0] if cipher else None


def _legacy_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we only ask whether the server agrees to TLS 1.0/1.1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings(), contextlib.suppress(ValueError):
        warnings.simplefilter("ignore", DeprecationWarning)  # asking for them is the point
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def _weak_cipher_context() -> ssl.SSLContext | None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we only ask whether the server agrees to these suites
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites cannot be weakened
    try:
        context.set_ciphers(WEAK_SUITES + ":@SECLEVEL=0")
    except ssl.SSLError:
        return None  # this OpenSSL build offers none of them: nothing to ask
    return context


def _verifying_context(verify: bool | str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    return context


async def _check_tls(ctx: ScanContext, host: str, port: int) -> None:
    url = ctx.client.url("/")
    timeout = ctx.options.timeout
    loop = asyncio.get_running_loop()
    try:
        version, _, _ = await loop.run_in_executor(
            None, _handshake, host, port, _legacy_context(), timeout
        )
    except (OSError, ssl.SSLError):
        version = None
    if version in ("TLSv1", "TLSv1.1"):
        ctx.report(OLD_TLS, url, detail=f"the server completed a {version} handshake")
    weak = _weak_cipher_context()
    if weak is not None:
        try:
            _, _, suite = await loop.run_in_executor(None, _handshake, host, port, weak, timeout)
        except (OSError, ssl.SSLError):
            suite = None
        if suite is not None:
            ctx.report(WEAK_CIPHER, url, detail=f"the server agreed to {suite}")
    try:
        _, der, _ = await loop.run_in_executor(
            None, _handshake, host, port, _verifying_context(ctx.options.verify), timeout
        )
    except ssl.SSLCertVerificationError as exc:
        ctx.report(BAD_CERT, url, detail=f"certificate verification failed: {exc.verify_message}")
        return
    except (OSError, ssl.SSLError) as exc:
        ctx.note(f"TLS handshake with {host}:{port} failed: {exc}")
        return
    if der is None:
        return
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    left = not_after - dt.datetime.now(dt.UTC)
    if left < _EXPIRY_WARNING:
        ctx.report(EXPIRING_CERT, url, detail=f"the certificate expires on {not_after:%Y-%m-%d}")


async def run(ctx: ScanContext) -> None:
    """Check how the target protects data in transit."""
    target = ctx.client.target
    root = ctx.client.url("/")
    if target.scheme != "https":
        ctx.report(NO_TLS, root, detail="the target URL is plain HTTP")
        return
    public = {("GET", op.path) for op in ctx.operations if not op.secured}
    # Public pages first: the redirect probe below is sent without credentials.
    ordered = sorted(ctx.baseline.items(), key=lambda item: (item[0] not in public, item[0]))
    answered = [exchange for _, exchange in ordered if exchange.ok]
    first = answered[0] if answered else await ctx.send("GET", "/")
    if first is not None and "strict-transport-security" not in first.headers:
        ctx.report(NO_HSTS, first.url, evidence=ctx.client.evidence(first))
    # Ask for a path known to answer over HTTPS, so a 404 on HTTP is not mistaken for content.
    page = httpx.URL(first.url) if first is not None else target
    http_url = str(page.copy_with(scheme="http", port=ctx.options.http_port or 80))
    plain = await ctx.send("GET", http_url)
    if plain is not None and not 300 <= plain.status < 400:
        ctx.report(
            HTTP_NOT_REDIRECTED,
            plain.url,
            detail=f"plain HTTP answered {plain.status} instead of a redirect to HTTPS",
            evidence=ctx.client.evidence(plain),
        )
    elif plain is not None and not plain.headers.get("location", "").startswith("https://"):
        ctx.report(
            HTTP_NOT_REDIRECTED,
            plain.url,
            detail="plain HTTP redirects somewhere other than HTTPS",
            evidence=ctx.client.evidence(plain),
        )
    if ctx.options.probe_tls:
        await _check_tls(ctx, target.host, target.port or 443)

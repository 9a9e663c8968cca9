"""TLS for listeners and upstreams: SSL contexts, certificate reload, expiry, dev certificate.

How this works: every certificate and key is parsed with `cryptography` before OpenSSL sees it, so a
missing file, bad PEM, encrypted or weak key, or a key that does not belong to the certificate is
reported as a `ConfigError` naming the file, and a failed reload never touches the live context
(OpenSSL drops the loaded certificate when it is handed a mismatched key). `reload_certificate`
then calls `load_cert_chain` on the SAME context: handshakes that start afterwards use the new
certificate, while open connections keep the one they negotiated with.

The `ConfigError`s raised here carry an empty dotted path: the config loader knows which setting
(`listeners[0].tls.certificate`) named the file and re-raises with that path and `exc.message`.

Handshake failures (`tls_accept_factory`): uvloop's server-side SSL protocol reports a failed
handshake to nobody (an `ssl.SSLError` is an `OSError`, which it logs only in debug mode), and the
application protocol never hears of the connection. The options weighed:

- the application protocol, created before the handshake, that never gets `connection_made`:
  tells that a handshake failed only when it is garbage-collected, without reason or address;
- `SSLContext.sni_callback`: runs once per ClientHello, so it cannot see a failure (a TLS 1.0
  ClientHello fails before it runs) nor the peer's address;
- CPython's private `SSLContext._msg_callback`: sees the alerts, hence the reason, but runs a
  Python call for every TLS record of every connection (measured in-process with two
  `SSLObject`s: +7 µs per 200-byte record, on a busy machine, against 4 µs without) and still
  has no address;
- chosen: the TLS listener's socket is accepted plain and its first protocol (`_TLSAccept`)
  builds the event loop's own SSL protocol in `connection_made`, exactly as the loop does for
  `create_server(ssl=...)` (same class, same arguments, same order, before any byte is read),
  and adds a done-callback to the handshake's waiter future. The callback has the socket's
  address and the exception (`ssl.SSLError.reason`, a timeout, a reset). Established
  connections run the very same SSL protocol, so records cost nothing extra; each connection
  costs one small object and one callback (about 1 µs, against ~1 ms for the handshake).
  The SSL protocol class is not public API (`uvloop.loop.SSLProtocol`,
  `asyncio.sslproto.SSLProtocol`): it is probed once per listener and, if its constructor ever
  changes, the listener falls back to `create_server(ssl=...)` without handshake reporting
  (logged once).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import secrets
import ssl
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.errors import ConfigError

__all__ = [
    "ALPN_PROTOCOLS",
    "HANDSHAKE_REASONS",
    "TLS12_CIPHERS",
    "HandshakeFailure",
    "certificate_expiry",
    "client_context",
    "ensure_dev_certificate",
    "expiry_warning",
    "handshake_reason",
    "reload_certificate",
    "server_context",
    "tls_accept_factory",
]

logger = logging.getLogger("bastion.tls")

#: TLS 1.2 suites: forward secret (ECDHE) and AEAD only. TLS 1.3 suites are all AEAD already.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
#: Appended to a configured cipher string: unauthenticated or unencrypted suites are never allowed.
_ALWAYS_EXCLUDED = ":!aNULL:!eNULL"
#: Both directions speak HTTP/1.1 only (DESIGN.md §1).
ALPN_PROTOCOLS = ("http/1.1",)

_MIN_VERSIONS: dict[str, ssl.TLSVersion] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_MIN_RSA_BITS = 2048

DEV_CERT_FILE = "dev-cert.pem"
DEV_KEY_FILE = "dev-key.pem"
_DEV_VALIDITY = timedelta(days=90)
_DEV_MIN_REMAINING = timedelta(days=7)
# Backdating covers small clock differences between the gateway and its clients.
_DEV_BACKDATE = timedelta(minutes=5)
_DEV_SUBJECT = "Bastion development certificate"
_DEV_WARNING = (
    "USING A SELF-SIGNED DEVELOPMENT CERTIFICATE (%s). Clients cannot verify it and it is not "
    "safe for production: configure listeners[].tls.certificate and private_key."
)

_DNS_NAME = re.compile(
    r"(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)

# The key algorithm loaded into each server context. OpenSSL keeps one certificate per key type,
# so loading an RSA certificate into a context that holds an ECDSA one would keep serving the old
# ECDSA certificate to clients that prefer it: reload_certificate refuses such a change.
_KEY_KINDS: weakref.WeakKeyDictionary[ssl.SSLContext, str] = weakref.WeakKeyDictionary()

_PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


# --- server side -------------------------------------------------------------------------------


def server_context(
    certificate: Path,
    private_key: Path,
    *,
    min_version: Literal["1.2", "1.3"] = "1.2",
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """Build the SSL context for a listener.

    TLS 1.2 is the minimum and TLS 1.3 is negotiated whenever the client supports it. TLS 1.2
    suites are limited to ECDHE with AES-GCM or ChaCha20-Poly1305, chosen in the server's order;
    compression and renegotiation are off and ALPN offers `http/1.1`.

    Args:
        certificate: PEM file with the certificate, optionally followed by its chain.
        private_key: PEM file with the unencrypted private key of the certificate.
        min_version: The oldest TLS version accepted.
        ciphers: An OpenSSL cipher string for TLS 1.2 replacing `TLS12_CIPHERS`; anonymous and
            NULL suites stay excluded.

    Returns:
        A server-side context, ready for `loop.create_server(..., ssl=ctx)`.

    Raises:
        ConfigError: A file is missing or unreadable, holds no valid PEM, the key is encrypted, too
            weak or does not match the certificate, or the version or cipher string is unusable.
    """
    kind = _check_pair(certificate, private_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version = _MIN_VERSIONS[min_version]
    except KeyError:
        raise ConfigError(
            "", f"unsupported minimum TLS version {min_version!r}: use '1.2' or '1.3'"
        ) from None
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    cipher_string = TLS12_CIPHERS if ciphers is None else ciphers + _ALWAYS_EXCLUDED
    try:
        ctx.set_ciphers(cipher_string)
    except ssl.SSLError:
        raise ConfigError("", f"no usable TLS 1.2 cipher in {ciphers!r}") from None
    ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
    _load_chain(ctx, certificate, private_key)
    _KEY_KINDS[ctx] = kind
    return ctx


def reload_certificate(ctx: ssl.SSLContext, certificate: Path, private_key: Path) -> None:
    """Load a new certificate and key into a live server context.

    Handshakes that start afterwards present the new certificate; connections already open are not
    affected. The files are fully checked first, so on error the context keeps serving the old
    certificate. Call it from the thread that runs the context's event loop.

    Raises:
        ConfigError: The new files are invalid (see `server_context`), or the key algorithm differs
            from the one loaded (for example ECDSA to RSA), which needs a restart.
    """
    kind = _check_pair(certificate, private_key)
    previous = _KEY_KINDS.get(ctx)
    if previous is not None and previous != kind:
        raise ConfigError(
            "",
            f"TLS private key {private_key} is {kind} but the running listener uses {previous}: "
            "changing the key algorithm needs a restart",
        )
    _load_chain(ctx, certificate, private_key)
    _KEY_KINDS[ctx] = kind


def _load_chain(ctx: ssl.SSLContext, certificate: Path, private_key: Path) -> None:
    try:
        ctx.load_cert_chain(certificate, private_key, password=_refuse_password)
    except ssl.SSLError as exc:
        raise ConfigError(
            "",
            f"TLS certificate {certificate} and private key {private_key} were refused by "
            f"OpenSSL: {exc.reason or exc}",
        ) from exc


def _refuse_password() -> bytes:
    # Never let OpenSSL prompt on the terminal; encrypted keys are refused before this point.
    raise ConfigError("", "encrypted TLS private keys are not supported")


def _check_pair(certificate: Path, private_key: Path) -> str:
    """Validate a certificate and key pair and return the key algorithm's name."""
    leaf = _load_certificates(certificate, "TLS certificate")[0]
    key = _load_private_key(private_key)
    if _public_der(leaf.public_key()) != _public_der(key.public_key()):
        raise ConfigError(
            "", f"TLS private key {private_key} does not match the certificate {certificate}"
        )
    return _key_kind(key)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("", f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError("", f"{what} path is a directory, not a file: {path}") from None
    except OSError as exc:
        raise ConfigError("", f"{what} file {path} cannot be read: {exc.strerror}") from exc


def _load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    data = _read(path, what)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError("", f"{what} file {path} holds no valid PEM certificate") from None


def _load_private_key(path: Path) -> _PrivateKey:
    data = _read(path, "TLS private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            "", f"TLS private key {path} is encrypted: Bastion needs an unencrypted key file"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            "", f"TLS private key file {path} holds no valid PEM private key"
        ) from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise ConfigError("", f"TLS private key {path} is not an RSA, ECDSA or EdDSA key")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < _MIN_RSA_BITS:
        raise ConfigError(
            "",
            f"TLS private key {path} is RSA-{key.key_size}; at least {_MIN_RSA_BITS} bits needed",
        )
    return key


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_kind(key: _PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ECDSA"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return "Ed448"


# --- expiry ------------------------------------------------------------------------------------


def certificate_expiry(certificate: Path) -> datetime:
    """Return when the (first) certificate in a PEM file stops being valid, as aware UTC.

    Raises:
        ConfigError: The file is missing, unreadable or holds no PEM certificate.
    """
    return _load_certificates(certificate, "TLS certificate")[0].not_valid_after_utc


def expiry_warning(certificate: Path, now: datetime, warn_days: int = 30) -> str | None:
    """Describe a coming or past expiry, for start-up logs and `bastion audit`.

    Args:
        certificate: The PEM certificate file.
        now: The current time; must be timezone-aware.
        warn_days: Warn when the certificate expires within this many days.

    Returns:
        A message when the certificate expires within `warn_days` or has expired, else None.

    Raises:
        ConfigError: The certificate cannot be read (see `certificate_expiry`).
        ValueError: `now` is naive or `warn_days` is negative.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    if warn_days < 0:
        raise ValueError("warn_days must not be negative")
    expires = certificate_expiry(certificate)
    remaining = expires - now
    stamp = expires.strftime("%Y-%m-%d %H:%M:%S UTC")
    if remaining <= timedelta(0):
        return f"TLS certificate {certificate} expired on {stamp}"
    if remaining > timedelta(days=warn_days):
        return None
    if remaining < timedelta(days=1):
        return f"TLS certificate {certificate} expires in less than a day, on {stamp}"
    days = remaining.days
    return (
        f"TLS certificate {certificate} expires in {days} day{'s' if days != 1 else ''}, on {stamp}"
    )


# --- development certificate -------------------------------------------------------------------


def ensure_dev_certificate(
    state_dir: Path,
    hostnames: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    *,
    now: datetime | None = None,
) -> tuple[Path, Path]:
    """Return a self-signed ECDSA P-256 certificate and key for listeners without TLS files.

    The pair lives in `state_dir` (`dev-cert.pem`, `dev-key.pem` with mode 0600, directory 0700)
    and is reused while it is valid for more than 7 more days, covers exactly `hostnames` and its
    key is private to the owner; otherwise a new 90-day certificate replaces it. Every call logs
    a warning on `bastion.tls` that a development certificate is in use.

    Args:
        state_dir: Bastion's state directory; created if missing.
        hostnames: DNS names and IP addresses for the subject alternative names.
        now: The current time (aware); defaults to the system clock.

    Returns:
        The certificate and private key paths.

    Raises:
        ConfigError: A hostname is not a valid DNS name or IP address, or `state_dir` cannot be
            created or written.
        ValueError: `now` is naive.
    """
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    names = _alt_names(hostnames)
    cert_path, key_path = state_dir / DEV_CERT_FILE, state_dir / DEV_KEY_FILE
    try:
        _private_directory(state_dir)
        if not _dev_pair_reusable(cert_path, key_path, names, now):
            key_pem, cert_pem = _new_dev_pair(names, now)
            _write_atomically(key_path, key_pem, 0o600)
            _write_atomically(cert_path, cert_pem, 0o644)
    except OSError as exc:
        raise ConfigError(
            "", f"cannot write the development certificate in {state_dir}: {exc.strerror or exc}"
        ) from exc
    logger.warning(_DEV_WARNING, cert_path)
    return cert_path, key_path


def _alt_names(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(hostnames, str):
        hostnames = (hostnames,)
    names: list[x509.GeneralName] = []
    for host in hostnames:
        name: x509.GeneralName
        try:
            name = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            dns = host.lower().rstrip(".")
            if len(dns) > 253 or not dns.isascii() or not _DNS_NAME.fullmatch(dns):
                raise ConfigError(
                    "", f"{host!r} is not a DNS name or IP address for the development certificate"
                ) from None
            name = x509.DNSName(dns)
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError("", "the development certificate needs at least one hostname")
    return names


def _private_directory(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def _dev_pair_reusable(
    cert_path: Path, key_path: Path, names: list[x509.GeneralName], now: datetime
) -> bool:
    try:
        if key_path.stat().st_mode & 0o077:
            return False  # someone else could have read the key: never reuse it
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm, x509.ExtensionNotFound):
        return False
    return (
        isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, ec.SECP256R1)
        and _public_der(cert.public_key()) == _public_der(key.public_key())
        and cert.not_valid_before_utc <= now
        and cert.not_valid_after_utc - now > _DEV_MIN_REMAINING
        and set(sans) == set(names)
    )


def _new_dev_pair(names: list[x509.GeneralName], now: datetime) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _DEV_SUBJECT)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DEV_BACKDATE)
        .not_valid_after(now + _DEV_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # Write a private temporary file, then rename: a reader never sees a half-written key, and
    # the key is never readable by others, not even briefly.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- client side (upstreams) -------------------------------------------------------------------


def client_context(*, verify: bool = True, ca_file: Path | None = None) -> ssl.SSLContext:
    """Build the SSL context for TLS connections to upstreams.

    Certificates and host names are verified (`CERT_REQUIRED`, `check_hostname`) against the
    system CAs, or only against `ca_file` when it is given. TLS 1.2 is the minimum; ALPN offers
    `http/1.1`. Pass the target's host name (or IP) as `server_hostname` when connecting.

    Args:
        verify: False turns verification off; only for an explicit configuration, and logged.
        ca_file: PEM file of CA certificates trusted instead of the system store.

    Returns:
        A client-side context.

    Raises:
        ConfigError: `ca_file` is missing or holds no PEM certificate, or it is combined with
            `verify=False`.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
    if not verify:
        if ca_file is not None:
            raise ConfigError(
                "", f"CA file {ca_file} is set but TLS verification is disabled: remove one of them"
            )
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        logger.warning(
            "TLS certificate verification for upstream connections is DISABLED: "
            "anyone on the network path can impersonate the upstream"
        )
        return ctx
    if ca_file is None:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return ctx
    _load_certificates(ca_file, "CA")
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            "", f"CA file {ca_file} was refused by OpenSSL: {exc.reason or exc}"
        ) from exc
    return ctx


# --- handshake failures ------------------------------------------------------------------------

HandshakeReason = Literal[
    "unsupported_protocol",
    "no_shared_cipher",
    "not_tls",
    "bad_certificate",
    "closed",
    "timeout",
    "other",
]
#: Why a handshake failed (the metric's `reason` label), with the text of the security event.
HANDSHAKE_REASONS: Final[dict[HandshakeReason, str]] = {
    "unsupported_protocol": "unsupported protocol version",
    "no_shared_cipher": "no shared cipher",
    "not_tls": "not TLS (plain HTTP or other bytes on the TLS port)",
    "bad_certificate": "bad certificate (the client refused ours, or sent a bad one)",
    "closed": "connection closed during the handshake",
    "timeout": "handshake timed out",
    "other": "handshake failed",
}
# OpenSSL reason codes (`ssl.SSLError.reason`) by label; unlisted ones are "other".
_OPENSSL_REASONS: Final[dict[str, HandshakeReason]] = {
    "UNSUPPORTED_PROTOCOL": "unsupported_protocol",
    "VERSION_TOO_LOW": "unsupported_protocol",
    "WRONG_SSL_VERSION": "unsupported_protocol",
    "NO_PROTOCOLS_AVAILABLE": "unsupported_protocol",
    "TLSV1_ALERT_PROTOCOL_VERSION": "unsupported_protocol",
    "NO_SHARED_CIPHER": "no_shared_cipher",
    "NO_CIPHERS_AVAILABLE": "no_shared_cipher",
    "NO_SHARED_GROUPS": "no_shared_cipher",
    "NO_SUITABLE_KEY_SHARE": "no_shared_cipher",
    "NO_SHARED_SIGNATURE_ALGORITHMS": "no_shared_cipher",
    "HTTP_REQUEST": "not_tls",
    "HTTPS_PROXY_REQUEST": "not_tls",
    "WRONG_VERSION_NUMBER": "not_tls",
    "PACKET_LENGTH_TOO_LONG": "not_tls",
    "RECORD_LENGTH_MISMATCH": "not_tls",
    "UNEXPECTED_EOF_WHILE_READING": "closed",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "bad_certificate",
}


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """A TLS handshake that did not complete.

    `detail` is OpenSSL's reason code (`NO_SHARED_CIPHER`) or the exception's class name: a
    fixed identifier, never bytes the client sent.
    """

    listener: str
    peer_ip: str
    peer_port: int
    reason: HandshakeReason
    detail: str


def handshake_reason(exc: BaseException) -> tuple[HandshakeReason, str]:
    """Classify the exception a handshake ended with: (reason label, detail code)."""
    if isinstance(exc, ssl.SSLError):
        code = str(exc.reason or type(exc).__name__)
        found = _OPENSSL_REASONS.get(code)
        if found is not None:
            return found, code
        if "CERTIFICATE" in code or "UNKNOWN_CA" in code:
            return "bad_certificate", code
        if isinstance(exc, ssl.SSLEOFError):
            return "closed", code
        return "other", code
    # The loop aborts a handshake that outlives ssl_handshake_timeout with this error.
    if isinstance(exc, ConnectionAbortedError):
        return "timeout", type(exc).__name__
    if isinstance(exc, ConnectionError | EOFError):
        return "closed", type(exc).__name__
    return "other", type(exc).__name__


def _ssl_protocol_class(loop: asyncio.AbstractEventLoop) -> type | None:
    """The SSL protocol class `loop.create_server(ssl=...)` uses (not public API in either)."""
    from asyncio import sslproto

    import uvloop
    import uvloop.loop

    module = uvloop.loop if isinstance(loop, uvloop.Loop) else sslproto
    found = getattr(module, "SSLProtocol", None)
    return found if isinstance(found, type) else None


class _TLSAccept(asyncio.Protocol):
    """The first protocol of a TLS connection: hands it to the SSL protocol, watches the end."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[asyncio.BaseTransport], None]) -> None:
        self._make = make

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Hand the new connection to the SSL protocol."""
        self._make(transport)


def tls_accept_factory(
    app_factory: Callable[[], asyncio.BaseProtocol],
    context: ssl.SSLContext,
    *,
    loop: asyncio.AbstractEventLoop,
    listener: str,
    on_failure: Callable[[HandshakeFailure], None],
    handshake_timeout: float,
) -> Callable[[], asyncio.BaseProtocol] | None:
    """A protocol factory for a plain `create_server` that does TLS and reports failed handshakes.

    Serving `create_server(factory_returned, host, port)` (no `ssl=`) behaves like
    `create_server(app_factory, host, port, ssl=context, ssl_handshake_timeout=...)` and, in
    addition, calls `on_failure` once for every handshake that fails (see the module docstring).

    Returns:
        The factory, or None when this event loop's SSL protocol cannot be built this way
        (then serve with `ssl=context`; failures are not reported).
    """
    protocol_class = _ssl_protocol_class(loop)
    try:
        if protocol_class is None:
            raise TypeError("no SSL protocol class")
        probe = protocol_class(
            loop,
            asyncio.Protocol(),
            context,
            loop.create_future(),
            server_side=True,
            server_hostname=None,
            ssl_handshake_timeout=handshake_timeout,
        )
        probe.connection_lost(None)  # releases what the constructor made (asyncio: a transport)
    except (TypeError, AttributeError, ValueError):
        logger.warning(
            "TLS handshake failures on %s are not reported: this event loop's SSL protocol "
            "cannot be wrapped",
            listener,
        )
        return None
    assert protocol_class is not None  # noqa: S101 - checked above, for the type checker

    def done(transport: asyncio.BaseTransport, peer: object, waiter: asyncio.Future[None]) -> None:
        if waiter.cancelled():
            return
        exc = waiter.exception()
        if exc is None:
            return
        if not transport.is_closing():
            transport.close()
        ip, port = "", 0
        if isinstance(peer, tuple) and len(peer) >= 2:
            ip, port = str(peer[0]), int(peer[1])
            if ip.startswith("::ffff:"):
                ip = ip[7:]
        reason, detail = handshake_reason(exc)
        try:
            on_failure(HandshakeFailure(listener, ip, port, reason, detail))
        except Exception:  # reporting must never break accepting connections
            logger.exception("reporting a TLS handshake failure failed")

    def start(transport: asyncio.BaseTransport) -> None:
        # Mirrors the loop's own accept path for `create_server(ssl=...)`: the SSL protocol
        # takes over the transport before it reads a byte.
        waiter: asyncio.Future[None] = loop.create_future()
        tls = protocol_class(
            loop,
            app_factory(),
            context,
            waiter,
            server_side=True,
            server_hostname=None,
            ssl_handshake_timeout=handshake_timeout,
        )
        transport.set_protocol(tls)
        tls.connection_made(transport)
        waiter.add_done_callback(partial(done, transport, transport.get_extra_info("peername")))

    def factory() -> asyncio.BaseProtocol:
        return _TLSAccept(start)

    return factory

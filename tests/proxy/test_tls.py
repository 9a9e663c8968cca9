"""Tests for bastion.proxy.tls: listener and upstream contexts, reload, expiry, dev certificate."""

from __future__ import annotations

import logging
import os
import queue
import socket
import ssl
import stat
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.errors import ConfigError
from bastion.proxy import tls

TIMEOUT = 1.0  # every socket operation; a loopback handshake takes milliseconds
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

# --- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSide:
    """What the server saw of one connection: the negotiated parameters or the handshake error."""

    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    error: OSError | None = None


class LoopbackServer:
    """TLS echo server on 127.0.0.1; each `connect` is served by its own thread."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT)
        self.port: int = self._listener.getsockname()[1]
        self._seen: queue.Queue[ServerSide] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def connect(self, client: ssl.SSLContext, server_hostname: str = "localhost") -> ssl.SSLSocket:
        thread = threading.Thread(target=self._serve_one, daemon=True)
        thread.start()
        self._threads.append(thread)
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        try:
            return client.wrap_socket(sock, server_hostname=server_hostname)
        except OSError:
            sock.close()
            raise

    def server_side(self) -> ServerSide:
        return self._seen.get(timeout=TIMEOUT)

    def close(self) -> None:
        self._listener.close()
        for thread in self._threads:
            thread.join(TIMEOUT)

    def _serve_one(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError as exc:
            self._seen.put(ServerSide(error=exc))
            return
        conn.settimeout(TIMEOUT)
        try:
            tls_conn = self._ctx.wrap_socket(conn, server_side=True)
        except OSError as exc:
            conn.close()
            self._seen.put(ServerSide(error=exc))
            return
        with tls_conn:
            cipher = tls_conn.cipher()
            self._seen.put(
                ServerSide(
                    version=tls_conn.version(),
                    cipher=cipher[0] if cipher else None,
                    alpn=tls_conn.selected_alpn_protocol(),
                )
            )
            try:
                while data := tls_conn.recv(4096):
                    tls_conn.sendall(data)
            except OSError:
                pass  # the client went away without close_notify


@contextmanager
def serving(ctx: ssl.SSLContext) -> Iterator[LoopbackServer]:
    server = LoopbackServer(ctx)
    try:
        yield server
    finally:
        server.close()


def echo(conn: ssl.SSLSocket, payload: bytes) -> bytes:
    conn.sendall(payload)
    return conn.recv(len(payload))


def write_pair(directory: Path, leaf: trustme.LeafCert, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


def der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def trusting_client(
    ca: trustme.CA,
    *,
    version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A client that trusts `ca`, optionally pinned to one TLS version and cipher list."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    if version is not None:
        with warnings.catch_warnings():
            # Offering TLS 1.0/1.1 is deprecated in Python; offering it is the point of the test.
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
    if ciphers is not None:
        ctx.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return ctx


def permissive_server(cert: Path, key: Path) -> ssl.SSLContext:
    """A server accepting anything this OpenSSL can speak: proves a refusal comes from Bastion."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.load_cert_chain(cert, key)
    return ctx


def handshake(server_ctx: ssl.SSLContext, client: ssl.SSLContext) -> tuple[ServerSide, str | None]:
    """One connection; returns the server's view and the client's version (None on failure)."""
    with serving(server_ctx) as server:
        try:
            with server.connect(client) as conn:
                assert echo(conn, b"ping") == b"ping"
                client_version = conn.version()
        except OSError:
            client_version = None
        return server.server_side(), client_version


def reason(side: ServerSide) -> str | None:
    return side.error.reason if isinstance(side.error, ssl.SSLError) else None


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ecdsa_leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def rsa_leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", key_type=trustme.KeyType.RSA)


@pytest.fixture
def ecdsa_pair(tmp_path: Path, ecdsa_leaf: trustme.LeafCert) -> tuple[Path, Path]:
    return write_pair(tmp_path, ecdsa_leaf, "ecdsa")


@pytest.fixture
def rsa_pair(tmp_path: Path, rsa_leaf: trustme.LeafCert) -> tuple[Path, Path]:
    return write_pair(tmp_path, rsa_leaf, "rsa")


# --- server_context: protocol versions and ciphers -----------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "version",
    [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
    ids=["tls1.2", "tls1.3"],
)
def test_server_context_accepts_tls12_and_tls13(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    server, client_version = handshake(
        tls.server_context(*ecdsa_pair), trusting_client(ca, version=version)
    )

    expected = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert server.error is None
    assert server.version == expected
    assert client_version == expected


@pytest.mark.integration
def test_server_context_negotiates_tls13_when_the_client_offers_it(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path]
) -> None:
    server, _ = handshake(tls.server_context(*ecdsa_pair), trusting_client(ca))

    assert server.version == "TLSv1.3"


@pytest.mark.integration
def test_server_context_refuses_tls11(ca: trustme.CA, ecdsa_pair: tuple[Path, Path]) -> None:
    client = trusting_client(ca, version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT")
    control, control_version = handshake(permissive_server(*ecdsa_pair), client)
    if control_version != "TLSv1.1":
        pytest.skip(f"this OpenSSL cannot speak TLS 1.1 at all ({control.error})")

    server, client_version = handshake(tls.server_context(*ecdsa_pair), client)

    assert client_version is None
    assert reason(server) == "UNSUPPORTED_PROTOCOL"


@pytest.mark.integration
def test_server_context_with_minimum_13_refuses_tls12(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path]
) -> None:
    ctx = tls.server_context(*ecdsa_pair, min_version="1.3")

    refused, refused_version = handshake(ctx, trusting_client(ca, version=ssl.TLSVersion.TLSv1_2))
    accepted, _ = handshake(ctx, trusting_client(ca, version=ssl.TLSVersion.TLSv1_3))

    assert refused_version is None
    assert reason(refused) == "UNSUPPORTED_PROTOCOL"
    assert accepted.version == "TLSv1.3"


@pytest.mark.integration
@pytest.mark.parametrize(
    "cipher",
    [
        "AES128-SHA",
        "AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA384",
        "DES-CBC3-SHA",
        "RC4-SHA",
    ],
    ids=[
        "rsa-key-exchange-cbc",
        "rsa-key-exchange-without-forward-secrecy",
        "ecdhe-cbc-sha1",
        "ecdhe-cbc-sha384",
        "3des",
        "rc4",
    ],
)
def test_server_context_refuses_weak_tls12_ciphers(
    ca: trustme.CA, rsa_pair: tuple[Path, Path], cipher: str
) -> None:
    try:
        client = trusting_client(ca, version=ssl.TLSVersion.TLSv1_2, ciphers=cipher)
    except ssl.SSLError:
        pytest.skip(f"this OpenSSL build cannot offer {cipher}")
    control, control_version = handshake(permissive_server(*rsa_pair), client)
    assert control_version == "TLSv1.2", f"control handshake with {cipher} failed: {control.error}"
    assert control.cipher == cipher

    server, client_version = handshake(tls.server_context(*rsa_pair), client)

    assert client_version is None
    assert reason(server) == "NO_SHARED_CIPHER"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("key", "cipher"),
    [
        ("ecdsa", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("ecdsa", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("ecdsa", "ECDHE-ECDSA-CHACHA20-POLY1305"),
        ("rsa", "ECDHE-RSA-AES128-GCM-SHA256"),
        ("rsa", "ECDHE-RSA-CHACHA20-POLY1305"),
    ],
    ids=[
        "ecdsa-aes128-gcm",
        "ecdsa-aes256-gcm",
        "ecdsa-chacha20",
        "rsa-aes128-gcm",
        "rsa-chacha20",
    ],
)
def test_server_context_accepts_modern_tls12_ciphers(
    ca: trustme.CA,
    ecdsa_pair: tuple[Path, Path],
    rsa_pair: tuple[Path, Path],
    key: str,
    cipher: str,
) -> None:
    pair = ecdsa_pair if key == "ecdsa" else rsa_pair
    client = trusting_client(ca, version=ssl.TLSVersion.TLSv1_2, ciphers=cipher)

    server, client_version = handshake(tls.server_context(*pair), client)

    assert client_version == "TLSv1.2"
    assert server.cipher == cipher


@pytest.mark.integration
def test_server_context_chooses_the_cipher_in_server_order(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path]
) -> None:
    # The client prefers ChaCha20; the server's list puts AES-GCM first and must win.
    client = trusting_client(
        ca,
        version=ssl.TLSVersion.TLSv1_2,
        ciphers="ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
    )

    server, _ = handshake(tls.server_context(*ecdsa_pair), client)

    assert server.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"


@pytest.mark.integration
def test_server_context_with_custom_ciphers_limits_tls12_to_them(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path]
) -> None:
    ctx = tls.server_context(*ecdsa_pair, ciphers="ECDHE+CHACHA20")
    aes = trusting_client(
        ca, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"
    )
    chacha = trusting_client(
        ca, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-CHACHA20-POLY1305"
    )

    refused, _ = handshake(ctx, aes)
    accepted, _ = handshake(ctx, chacha)

    assert reason(refused) == "NO_SHARED_CIPHER"
    assert accepted.cipher == "ECDHE-ECDSA-CHACHA20-POLY1305"


@pytest.mark.parametrize(
    "ciphers",
    ["aNULL", "eNULL", "NOT-A-CIPHER"],
    ids=["anonymous-only", "null-encryption-only", "unknown-name"],
)
def test_server_context_rejects_cipher_strings_without_an_allowed_suite(
    ecdsa_pair: tuple[Path, Path], ciphers: str
) -> None:
    with pytest.raises(ConfigError, match=r"no usable TLS 1\.2 cipher"):
        tls.server_context(*ecdsa_pair, ciphers=ciphers)


def test_server_context_rejects_an_unknown_minimum_version(ecdsa_pair: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match=r"unsupported minimum TLS version '1\.1'"):
        tls.server_context(*ecdsa_pair, min_version="1.1")  # type: ignore[arg-type]  # the wrong value is the test


@pytest.mark.integration
def test_server_context_selects_http11_by_alpn(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path]
) -> None:
    client = trusting_client(ca)
    client.set_alpn_protocols(["h2", "http/1.1"])

    server, _ = handshake(tls.server_context(*ecdsa_pair), client)

    assert server.alpn == "http/1.1"


def test_server_context_disables_compression_and_renegotiation(
    ecdsa_pair: tuple[Path, Path],
) -> None:
    ctx = tls.server_context(*ecdsa_pair)

    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    assert ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


# --- server_context: configuration errors ------------------------------------------------------


@pytest.mark.parametrize("missing", ["certificate", "private_key"], ids=["certificate", "key"])
def test_server_context_error_names_the_missing_file(
    ecdsa_pair: tuple[Path, Path], tmp_path: Path, missing: str
) -> None:
    cert, key = ecdsa_pair
    absent = tmp_path / "absent.pem"
    if missing == "certificate":
        cert = absent
    else:
        key = absent

    with pytest.raises(ConfigError, match="file not found") as info:
        tls.server_context(cert, key)

    assert str(absent) in info.value.message


def test_server_context_error_names_a_directory_given_as_file(
    ecdsa_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="is a directory") as info:
        tls.server_context(tmp_path, ecdsa_pair[1])

    assert str(tmp_path) in info.value.message


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("certificate", "holds no valid PEM certificate"),
        ("private_key", "holds no valid PEM private key"),
    ],
    ids=["certificate", "key"],
)
def test_server_context_error_names_the_file_with_bad_pem(
    ecdsa_pair: tuple[Path, Path], tmp_path: Path, broken: str, expected: str
) -> None:
    cert, key = ecdsa_pair
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    if broken == "certificate":
        cert = garbage
    else:
        key = garbage

    with pytest.raises(ConfigError, match=expected) as info:
        tls.server_context(cert, key)

    assert str(garbage) in info.value.message


def test_server_context_error_names_both_files_for_a_mismatched_key(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    _, other_key = write_pair(tmp_path / "other", ca.issue_cert("localhost"), "other")
    cert = ecdsa_pair[0]

    with pytest.raises(ConfigError, match="does not match the certificate") as info:
        tls.server_context(cert, other_key)

    assert str(cert) in info.value.message
    assert str(other_key) in info.value.message


def test_server_context_refuses_an_encrypted_key(
    ecdsa_leaf: trustme.LeafCert, ecdsa_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    key = serialization.load_pem_private_key(ecdsa_leaf.private_key_pem.bytes(), password=None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"hunter2"),
        )
    )

    with pytest.raises(ConfigError, match="is encrypted") as info:
        tls.server_context(ecdsa_pair[0], encrypted)

    assert str(encrypted) in info.value.message


def write_self_signed(directory: Path, key: PrivateKeyTypes) -> tuple[Path, Path]:
    """A minimal self-signed certificate for any signing key, written next to its key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[arg-type]  # only signing keys are passed
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, algorithm)  # type: ignore[arg-type]  # only signing keys are passed
    )
    cert_path, key_path = directory / "self-signed-cert.pem", directory / "self-signed-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(
    ("make_key", "expected"),
    [
        (
            lambda: rsa.generate_private_key(65537, 1024),  # noqa: S505 - the weak key is the test
            "is RSA-1024; at least 2048 bits",
        ),
        (lambda: dsa.generate_private_key(2048), "is not an RSA, ECDSA or EdDSA key"),
    ],
    ids=["rsa-1024", "dsa"],
)
def test_server_context_refuses_weak_or_unsupported_keys(
    tmp_path: Path, make_key: Callable[[], PrivateKeyTypes], expected: str
) -> None:
    cert, key = write_self_signed(tmp_path, make_key())

    with pytest.raises(ConfigError, match=expected) as info:
        tls.server_context(cert, key)

    assert str(key) in info.value.message


def test_reload_certificate_refuses_switching_from_eddsa_to_ecdsa(
    tmp_path: Path, ecdsa_pair: tuple[Path, Path]
) -> None:
    ctx = tls.server_context(*write_self_signed(tmp_path, ed25519.Ed25519PrivateKey.generate()))

    with pytest.raises(ConfigError, match="is ECDSA but the running listener uses Ed25519"):
        tls.reload_certificate(ctx, *ecdsa_pair)


# --- reload_certificate ------------------------------------------------------------------------


@pytest.mark.integration
def test_reload_certificate_serves_new_handshakes_and_keeps_open_connections(
    ca: trustme.CA, ecdsa_leaf: trustme.LeafCert, tmp_path: Path
) -> None:
    old = ecdsa_leaf
    new = ca.issue_cert("localhost", "127.0.0.1")
    ctx = tls.server_context(*write_pair(tmp_path / "old", old, "old"))
    client = trusting_client(ca)

    with serving(ctx) as server, server.connect(client) as before:
        assert echo(before, b"one") == b"one"

        tls.reload_certificate(ctx, *write_pair(tmp_path / "new", new, "new"))

        with server.connect(client) as after:
            assert after.getpeercert(binary_form=True) == der(new)
            assert echo(after, b"two") == b"two"
        assert before.getpeercert(binary_form=True) == der(old)
        assert echo(before, b"three") == b"three"


@pytest.mark.integration
@pytest.mark.parametrize("problem", ["mismatched-key", "key-type-change"], ids=str)
def test_reload_certificate_failure_keeps_serving_the_old_certificate(
    ca: trustme.CA, ecdsa_leaf: trustme.LeafCert, tmp_path: Path, problem: str
) -> None:
    ctx = tls.server_context(*write_pair(tmp_path / "old", ecdsa_leaf, "old"))
    if problem == "mismatched-key":
        cert, _ = write_pair(tmp_path / "a", ca.issue_cert("localhost"), "a")
        _, key = write_pair(tmp_path / "b", ca.issue_cert("localhost"), "b")
        expected = "does not match"
    else:
        rsa = ca.issue_cert("localhost", key_type=trustme.KeyType.RSA)
        cert, key = write_pair(tmp_path / "rsa", rsa, "rsa")
        expected = "needs a restart"

    with pytest.raises(ConfigError, match=expected):
        tls.reload_certificate(ctx, cert, key)

    with serving(ctx) as server, server.connect(trusting_client(ca)) as conn:
        assert conn.getpeercert(binary_form=True) == der(ecdsa_leaf)


# --- ensure_dev_certificate --------------------------------------------------------------------


def load_dev(cert: Path, key: Path) -> tuple[x509.Certificate, object]:
    return (
        x509.load_pem_x509_certificate(cert.read_bytes()),
        serialization.load_pem_private_key(key.read_bytes(), password=None),
    )


def test_ensure_dev_certificate_creates_a_p256_self_signed_certificate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"

    with caplog.at_level(logging.WARNING, logger="bastion.tls"):
        cert_path, key_path = tls.ensure_dev_certificate(state, now=NOW)

    cert, key = load_dev(cert_path, key_path)
    assert (cert_path, key_path) == (state / "dev-cert.pem", state / "dev-key.pem")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert cert.public_key() == key.public_key()
    assert cert.issuer == cert.subject
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ip_address("127.0.0.1"), ip_address("::1")]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.not_valid_before_utc <= NOW
    assert cert.not_valid_after_utc == NOW + timedelta(days=90)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert any(
        r.name == "bastion.tls"
        and r.levelno == logging.WARNING
        and "DEVELOPMENT CERTIFICATE" in r.message
        for r in caplog.records
    )


def test_ensure_dev_certificate_uses_the_given_hostnames(tmp_path: Path) -> None:
    cert_path, _ = tls.ensure_dev_certificate(
        tmp_path, ["API.Example.test", "10.0.0.7", "api.example.test"], now=NOW
    )

    sans = x509.load_pem_x509_certificate(
        cert_path.read_bytes()
    ).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == ["api.example.test"]
    assert sans.value.get_values_for_type(x509.IPAddress) == [ip_address("10.0.0.7")]


def test_ensure_dev_certificate_tightens_an_existing_state_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)

    tls.ensure_dev_certificate(state, now=NOW)

    assert stat.S_IMODE(state.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "later",
    [timedelta(0), timedelta(days=30), timedelta(days=82, hours=23)],
    ids=["immediately", "after-30-days", "8-days-left"],
)
def test_ensure_dev_certificate_reuses_a_valid_certificate(
    tmp_path: Path, later: timedelta
) -> None:
    cert_path, key_path = tls.ensure_dev_certificate(tmp_path, now=NOW)
    first = (cert_path.read_bytes(), key_path.read_bytes())

    again = tls.ensure_dev_certificate(tmp_path, now=NOW + later)

    assert again == (cert_path, key_path)
    assert (cert_path.read_bytes(), key_path.read_bytes()) == first


@pytest.mark.parametrize(
    "later",
    [timedelta(days=83, minutes=1), timedelta(days=89), timedelta(days=120)],
    ids=["just-under-7-days-left", "1-day-left", "expired"],
)
def test_ensure_dev_certificate_regenerates_near_expiry(tmp_path: Path, later: timedelta) -> None:
    cert_path, key_path = tls.ensure_dev_certificate(tmp_path, now=NOW)
    first_key = key_path.read_bytes()

    tls.ensure_dev_certificate(tmp_path, now=NOW + later)

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.not_valid_after_utc == NOW + later + timedelta(days=90)
    assert key_path.read_bytes() != first_key
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_ensure_dev_certificate_regenerates_for_other_hostnames(tmp_path: Path) -> None:
    cert_path, _ = tls.ensure_dev_certificate(tmp_path, now=NOW)

    tls.ensure_dev_certificate(tmp_path, ["gateway.test"], now=NOW)

    sans = x509.load_pem_x509_certificate(
        cert_path.read_bytes()
    ).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == ["gateway.test"]
    assert sans.value.get_values_for_type(x509.IPAddress) == []


@pytest.mark.parametrize(
    "damage",
    ["key-readable-by-others", "corrupt-certificate", "corrupt-key", "key-missing", "foreign-key"],
    ids=str,
)
def test_ensure_dev_certificate_regenerates_an_unusable_pair(tmp_path: Path, damage: str) -> None:
    cert_path, key_path = tls.ensure_dev_certificate(tmp_path, now=NOW)
    old_cert = cert_path.read_bytes()
    if damage == "key-readable-by-others":
        key_path.chmod(0o644)
    elif damage == "corrupt-certificate":
        cert_path.write_text("not a certificate")
    elif damage == "corrupt-key":
        key_path.write_text("not a key")
    elif damage == "key-missing":
        key_path.unlink()
    else:
        foreign = ec.generate_private_key(ec.SECP256R1())
        key_path.write_bytes(
            foreign.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    tls.ensure_dev_certificate(tmp_path, now=NOW + timedelta(days=1))

    cert, key = load_dev(cert_path, key_path)
    assert cert_path.read_bytes() != old_cert
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.public_key() == key.public_key()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "hostname",
    ["", "bad host", "under_score.test", "-leading.test", "a" * 64 + ".test", "bücher.test"],
    ids=["empty", "space", "underscore", "leading-dash", "label-too-long", "non-ascii"],
)
def test_ensure_dev_certificate_rejects_invalid_hostnames(tmp_path: Path, hostname: str) -> None:
    with pytest.raises(ConfigError, match="not a DNS name or IP address"):
        tls.ensure_dev_certificate(tmp_path, [hostname], now=NOW)

    assert not (tmp_path / "dev-key.pem").exists()


def test_ensure_dev_certificate_takes_a_single_string_as_one_hostname(tmp_path: Path) -> None:
    cert_path, _ = tls.ensure_dev_certificate(tmp_path, "gateway.test", now=NOW)

    sans = x509.load_pem_x509_certificate(
        cert_path.read_bytes()
    ).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.DNSName) == ["gateway.test"]


def test_ensure_dev_certificate_rejects_an_empty_hostname_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one hostname"):
        tls.ensure_dev_certificate(tmp_path, [], now=NOW)


def test_ensure_dev_certificate_rejects_a_naive_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        tls.ensure_dev_certificate(tmp_path, now=datetime(2030, 1, 1))  # noqa: DTZ001 - the bug under test


def test_ensure_dev_certificate_reports_an_unwritable_state_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(ConfigError, match="cannot write the development certificate") as info:
        tls.ensure_dev_certificate(blocker / "state", now=NOW)

    assert str(blocker / "state") in info.value.message


@pytest.mark.integration
@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1"], ids=str)
def test_dev_certificate_is_trusted_through_client_context_ca_file(
    tmp_path: Path, hostname: str
) -> None:
    cert, key = tls.ensure_dev_certificate(tmp_path)
    client = tls.client_context(ca_file=cert)

    with serving(tls.server_context(cert, key)) as server, server.connect(client, hostname) as conn:
        assert echo(conn, b"hello") == b"hello"


# --- certificate_expiry and expiry_warning -----------------------------------------------------

EXPIRES = datetime(2031, 6, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def expiring_cert(ca: trustme.CA, tmp_path: Path) -> Path:
    leaf = ca.issue_cert("localhost", not_after=EXPIRES)
    return write_pair(tmp_path, leaf, "expiring")[0]


def test_certificate_expiry_returns_aware_utc(expiring_cert: Path) -> None:
    expires = tls.certificate_expiry(expiring_cert)

    assert expires == EXPIRES
    assert expires.utcoffset() == timedelta(0)


def test_certificate_expiry_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        tls.certificate_expiry(tmp_path / "gone.pem")

    assert str(tmp_path / "gone.pem") in info.value.message


@pytest.mark.parametrize(
    ("before_expiry", "warn_days", "expected"),
    [
        (timedelta(days=31), 30, None),
        (timedelta(days=30, seconds=1), 30, None),
        (timedelta(days=30), 30, "expires in 30 days"),
        (timedelta(days=5, hours=3), 30, "expires in 5 days"),
        (timedelta(days=1), 30, "expires in 1 day,"),
        (timedelta(hours=1), 30, "expires in less than a day"),
        (timedelta(0), 30, "expired on 2031-06-01 00:00:00 UTC"),
        (-timedelta(days=3), 30, "expired on 2031-06-01 00:00:00 UTC"),
        (timedelta(days=8), 7, None),
        (timedelta(days=7), 7, "expires in 7 days"),
        (timedelta(hours=1), 0, None),
        (timedelta(0), 0, "expired on"),
    ],
    ids=[
        "31-days",
        "just-over-30-days",
        "exactly-30-days",
        "5-days",
        "1-day",
        "1-hour",
        "expiry-instant",
        "expired",
        "8-days-warn-7",
        "7-days-warn-7",
        "1-hour-warn-0",
        "expiry-instant-warn-0",
    ],
)
def test_expiry_warning_thresholds(
    expiring_cert: Path, before_expiry: timedelta, warn_days: int, expected: str | None
) -> None:
    message = tls.expiry_warning(expiring_cert, EXPIRES - before_expiry, warn_days)

    if expected is None:
        assert message is None
    else:
        assert message is not None
        assert expected in message
        assert str(expiring_cert) in message


@pytest.mark.parametrize(
    ("now", "warn_days"),
    [(datetime(2031, 1, 1), 30), (datetime(2031, 1, 1, tzinfo=UTC), -1)],  # noqa: DTZ001 - naive is the bug under test
    ids=["naive-now", "negative-days"],
)
def test_expiry_warning_rejects_invalid_arguments(
    expiring_cert: Path, now: datetime, warn_days: int
) -> None:
    with pytest.raises(ValueError, match=r"timezone-aware|negative"):
        tls.expiry_warning(expiring_cert, now, warn_days)


# --- client_context ----------------------------------------------------------------------------


def test_client_context_verifies_by_default() -> None:
    ctx = tls.client_context()

    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.integration
def test_client_context_rejects_a_self_signed_upstream_without_its_ca(
    ecdsa_pair: tuple[Path, Path],
) -> None:
    with serving(tls.server_context(*ecdsa_pair)) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            server.connect(tls.client_context())
        assert reason(server.server_side()) is not None


@pytest.mark.integration
def test_client_context_accepts_the_upstream_when_given_its_ca(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    client = tls.client_context(ca_file=ca_file)

    with serving(tls.server_context(*ecdsa_pair)) as server, server.connect(client) as conn:
        assert conn.version() == "TLSv1.3"
        assert conn.selected_alpn_protocol() == "http/1.1"
        assert echo(conn, b"ok") == b"ok"


@pytest.mark.integration
def test_client_context_rejects_a_hostname_the_certificate_does_not_cover(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    with serving(tls.server_context(*ecdsa_pair)) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            server.connect(tls.client_context(ca_file=ca_file), "upstream.example.test")
        server.server_side()


@pytest.mark.integration
def test_client_context_refuses_a_tls11_only_upstream(
    ca: trustme.CA, ecdsa_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    legacy = permissive_server(*ecdsa_pair)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        legacy.maximum_version = ssl.TLSVersion.TLSv1_1
    control = trusting_client(ca, version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT")
    if handshake(legacy, control)[1] != "TLSv1.1":
        pytest.skip("this OpenSSL cannot speak TLS 1.1 at all")

    with serving(legacy) as server:
        with pytest.raises(ssl.SSLError):
            server.connect(tls.client_context(ca_file=ca_file))
        assert server.server_side().error is not None


@pytest.mark.integration
def test_client_context_without_verification_connects_and_warns(
    ecdsa_pair: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bastion.tls"):
        client = tls.client_context(verify=False)

    with (
        serving(tls.server_context(*ecdsa_pair)) as server,
        server.connect(client, "other.test") as conn,
    ):
        assert echo(conn, b"ok") == b"ok"
    assert any(
        r.name == "bastion.tls" and r.levelno == logging.WARNING and "DISABLED" in r.message
        for r in caplog.records
    )


def test_client_context_refuses_a_ca_file_with_verification_off(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="verification is disabled"):
        tls.client_context(verify=False, ca_file=tmp_path / "ca.pem")


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "file not found"), (b"garbage", "holds no valid PEM certificate")],
    ids=["missing", "not-pem"],
)
def test_client_context_error_names_a_bad_ca_file(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_bytes(content)

    with pytest.raises(ConfigError, match=expected) as info:
        tls.client_context(ca_file=ca_file)

    assert str(ca_file) in info.value.message


def test_ensure_dev_certificate_key_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        _, key_path = tls.ensure_dev_certificate(tmp_path, now=NOW)
    finally:
        os.umask(old_umask)

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600

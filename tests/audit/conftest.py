"""Fixtures for audit tests: copies of the sample configs next to certificates of chosen age."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def write_certificate(path: Path, *, expires: datetime) -> None:
    """A self-signed P-256 certificate valid from a year before `expires` until `expires`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "audit.test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(expires - timedelta(days=365))
        .not_valid_after(expires)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    """bad.yaml with a certificate that expires in 10 days."""
    target = tmp_path / "bad.yaml"
    shutil.copy(HERE / "bad.yaml", target)
    write_certificate(tmp_path / "cert.pem", expires=NOW + timedelta(days=10))
    return target


@pytest.fixture
def good_config(tmp_path: Path) -> Path:
    """good.yaml with a certificate valid for another year."""
    target = tmp_path / "good.yaml"
    shutil.copy(HERE / "good.yaml", target)
    write_certificate(tmp_path / "cert.pem", expires=NOW + timedelta(days=365))
    return target

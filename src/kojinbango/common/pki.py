"""The deployment's government CA and each organisation's key pair and X.509 certificate.

The real system gives every body a certificate from LGPKI/GPKI; here the first run of a deployment
creates its own CA and issues one ECDSA P-256 certificate per organisation.  Organisations identify
each other by the certificate's common name (the organisation id, e.g. ``jlis`` or ``m131016``).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_NAME = "kojinbango deployment government CA"
_VALIDITY = dt.timedelta(days=3650)


class CertificateError(Exception):
    """A certificate does not chain to the deployment CA or names the wrong organisation."""


@dataclass(frozen=True)
class OrgCredentials:
    """An organisation's own private key and certificate."""

    org_id: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create (or load, if present) the deployment CA in ``directory``."""
    key_path, cert_path = directory / "ca.key", directory / "ca.pem"
    if key_path.exists() and cert_path.exists():
        return load_key(key_path), load_certificate(cert_path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(CA_NAME, "kojinbango")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def issue_org_certificate(directory: Path, org_id: str, org_name: str) -> OrgCredentials:
    """Create (or load) ``org_id``'s key pair and a certificate signed by the deployment CA."""
    key, cert = _issue(directory, org_id, org_id, org_name, _SIGNING)
    return OrgCredentials(org_id, key, cert)


def issue_encryption_certificate(
    directory: Path, org_id: str, org_name: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create (or load) ``org_id``'s *encryption* key pair (``{org_id}.enc.key``/``.enc.pem``): key
    agreement only, kept apart from its signing key, for answers sealed to it (``common.sealing``)."""
    return _issue(directory, f"{org_id}.enc", org_id, org_name, _KEY_AGREEMENT)


def rotate_encryption_certificate(
    directory: Path, org_id: str, org_name: str
) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """A new encryption key pair and certificate for ``org_id``, beside its earlier ones (which stay:
    what was sealed to them is opened with them); returns their stem (``{stem}.key``/``.pem``) and
    the new key.

    Only where the deployment CA's key is: a new CA would not be trusted by anyone."""
    if not (directory / "ca.key").exists() or not (directory / "ca.pem").exists():
        raise CertificateError(
            f"the deployment CA's key is not in {directory}: rotate the key where the CA is, then copy"
            " the new files and the topology to the organisation's machine"
        )
    stem = f"{org_id}.enc.{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    key, _cert = _issue(directory, stem, org_id, org_name, _KEY_AGREEMENT)
    return stem, key


_SIGNING = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
_KEY_AGREEMENT = x509.KeyUsage(False, False, False, False, True, False, False, False, False)


def _issue(
    directory: Path, stem: str, org_id: str, org_name: str, usage: x509.KeyUsage
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.pem"
    if key_path.exists() and cert_path.exists():
        return load_key(key_path), load_certificate(cert_path)
    ca_key, ca_cert = create_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(org_id, org_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{path.name}: expected an EC private key")
    return key


def load_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        raise CertificateError("certificate has no common name")
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def verify_org_certificate(cert: x509.Certificate, ca_cert: x509.Certificate, org_id: str) -> None:
    """Check that ``cert`` is issued by the deployment CA, valid now, and names ``org_id``."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateError(f"certificate for {org_id} is not issued by the deployment CA") from exc
    now = dt.datetime.now(dt.UTC)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise CertificateError(f"certificate for {org_id} is not valid now")
    if common_name(cert) != org_id:
        raise CertificateError(f"certificate names {common_name(cert)!r}, expected {org_id!r}")


def verify_encryption_certificate(
    cert: x509.Certificate, ca_cert: x509.Certificate, org_id: str
) -> ec.EllipticCurvePublicKey:
    """``verify_org_certificate`` for an encryption certificate, which must allow key agreement
    (and only that); returns its public key."""
    verify_org_certificate(cert, ca_cert, org_id)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateError(f"encryption certificate for {org_id} states no key usage") from None
    if not usage.key_agreement or usage.digital_signature:
        raise CertificateError(f"certificate for {org_id} is not an encryption (key agreement) certificate")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        # the seals are ECDH-ES on P-256 (common.sealing)
        raise CertificateError(f"encryption certificate for {org_id} does not hold a P-256 (EC) key")
    return key

"""PAdES signatures on the municipality's PDF certificates (pyHanko).

The municipality signs with its own key and X.509 certificate from the deployment PKI
(:mod:`kojinbango.common.pki`, the stand-in for LGPKI); anyone holding the deployment CA's
certificate (``pki/ca.pem``) can check a document with :func:`verify_pdf` or any PAdES-aware
reader.  The chain is embedded in the signature.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from kojinbango.common.pki import load_certificate, load_key

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning (RFC 9336)


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def issue_document_certificate(
    directory: Path, org_id: str, org_name: str, ca_key_path: Path, ca_cert: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create (or load) ``org_id``'s 文書署名用 key and certificate, issued by the deployment CA.

    Key usage digitalSignature + nonRepudiation (content commitment) as PAdES validators expect
    of a signing certificate; extended key usage id-kp-documentSigning (RFC 9336)."""
    key_path, cert_path = directory / "docsign.key", directory / "docsign.pem"
    if key_path.exists() and cert_path.exists():
        return load_key(key_path), load_certificate(cert_path)
    if not ca_key_path.exists():
        raise FileNotFoundError(
            f"no document-signing certificate for {org_id} and no CA key here to issue one: "
            f"have the deployment CA issue {cert_path.name} with its key {key_path.name}"
        )
    ca_key = load_key(ca_key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{org_id} document signing"),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


class DocumentSigner:
    """Signs PDFs as one organisation (its key and certificate, the CA in the chain)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate, ca: x509.Certificate):
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._signer = signers.SimpleSigner(
            signing_cert=_asn1_cert(certificate),
            signing_key=asn1_keys.PrivateKeyInfo.load(der),
            cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(ca)]),
        )

    def sign(self, pdf: bytes, reason: str, location: str) -> bytes:
        meta = signers.PdfSignatureMetadata(
            field_name="MunicipalSeal",
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=reason,
            location=location,
            md_algorithm="sha256",
        )
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        out = signers.sign_pdf(writer, meta, signer=self._signer)
        return out.getvalue()


@dataclass(frozen=True)
class Verification:
    signed: bool
    intact: bool
    trusted: bool
    signer: str
    whole_document: bool

    @property
    def ok(self) -> bool:
        return self.signed and self.intact and self.trusted and self.whole_document


def verify_pdf(pdf: bytes, ca: x509.Certificate) -> Verification:
    """Check the PDF's signature against the deployment CA: intact, chained, covering the file."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf))
        sigs = reader.embedded_signatures
    except Exception:  # not a PDF pyHanko can read: it carries no valid signature
        return Verification(False, False, False, "", False)
    if not sigs:
        return Verification(False, False, False, "", False)
    sig = sigs[-1]
    context = ValidationContext(trust_roots=[_asn1_cert(ca)], allow_fetching=False)
    status = validate_pdf_signature(sig, context)
    signer = status.signing_cert.subject.native.get("common_name", "") if status.signing_cert else ""
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    return Verification(True, bool(status.intact and status.valid), bool(status.trusted), str(signer), whole)

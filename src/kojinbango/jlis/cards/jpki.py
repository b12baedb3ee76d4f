"""The JPKI certificate authority at J-LIS: RSA-2048 / SHA-256, separate from the deployment CA.

It issues the 署名用 and 利用者証明用 certificates for keys made on cards, publishes its certificate
and a DER CRL, and answers OCSP (RFC 6960) requests.  Responses to requests without a nonce are
pre-produced per (certificate, status) and reused until they near their next update (RFC 5019),
so the responder signs once per status change rather than once per question.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kojinbango.card.profile import KIND_AUTH, KIND_SIGN, POLICY_AUTH, POLICY_SIGN, four_info_names

CA_COMMON_NAME = "kojinbango JPKI Root CA"
CA_VALIDITY = dt.timedelta(days=365 * 20)
CRL_VALIDITY = dt.timedelta(days=1)
OCSP_VALIDITY = dt.timedelta(minutes=10)
OCSP_REFRESH = dt.timedelta(minutes=5)

REASONS = {
    "key_compromise": x509.ReasonFlags.key_compromise,
    "affiliation_changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
    "certificate_hold": x509.ReasonFlags.certificate_hold,
    "unspecified": x509.ReasonFlags.unspecified,
}


@dataclass(frozen=True)
class CertStatus:
    """What the responder needs to know of one certificate."""

    status: str  # good | suspended | revoked | unknown
    reason: str | None = None
    changed_at: dt.datetime | None = None


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _utc(d: dt.datetime) -> dt.datetime:
    return d if d.tzinfo else d.replace(tzinfo=dt.UTC)


class JpkiCa:
    """The CA's key (held only by J-LIS) and certificate."""

    def __init__(self, directory: Path):
        key_path, cert_path = directory / "jpki-ca.key", directory / "jpki-ca.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            self.key = key
            self.certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        else:
            self.key, self.certificate = self._create()
            _write_private(
                key_path,
                self.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self._ocsp_cache: dict[tuple[int, str, str | None], tuple[dt.datetime, bytes]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _create() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "地方公共団体情報システム機構"),
                x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    # --- issuing -------------------------------------------------------------------------
    def issue(
        self,
        kind: str,
        public_key_pem: str,
        not_after: dt.datetime,
        crl_url: str,
        four: dict[str, str] | None = None,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        """A 署名用 (``sign``, with ``four``) or 利用者証明用 (``auth``, no 4情報) certificate."""
        key = serialization.load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 2048:
            raise ValueError("a JPKI key must be RSA-2048")
        start = now or dt.datetime.now(dt.UTC)
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .issuer_name(self.certificate.subject)
            .public_key(key)
            .serial_number(serial)
            .not_valid_before(start - dt.timedelta(minutes=5))
            .not_valid_after(_utc(not_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
                ),
                critical=False,
            )
        )
        if kind == KIND_SIGN:
            if not four:
                raise ValueError("a 署名用電子証明書 carries the 4情報")
            builder = (
                builder.subject_name(
                    x509.Name(
                        [
                            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                            x509.NameAttribute(NameOID.COMMON_NAME, four["name"]),
                        ]
                    )
                )
                .add_extension(
                    x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
                )
                .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_SIGN, None)]), False)
                .add_extension(x509.SubjectAlternativeName(four_info_names(four)), critical=False)
            )
        elif kind == KIND_AUTH:
            builder = (
                builder.subject_name(
                    x509.Name(
                        [
                            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                            x509.NameAttribute(NameOID.COMMON_NAME, f"{serial:x}"),
                        ]
                    )
                )
                .add_extension(
                    x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
                )
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.CertificatePolicies([x509.PolicyInformation(POLICY_AUTH, None)]), False)
            )
        else:
            raise ValueError(f"unknown certificate kind {kind!r}")
        return builder.sign(self.key, hashes.SHA256())

    # --- revocation ----------------------------------------------------------------------
    def crl(self, revoked: Sequence[tuple[int, dt.datetime, str]], number: int) -> bytes:
        """A DER CRL of (serial, revocation time, reason) — suspended ones as certificateHold."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - dt.timedelta(minutes=1))
            .next_update(now + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        for serial, when, reason in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_utc(when))
                .add_extension(x509.CRLReason(REASONS.get(reason, x509.ReasonFlags.unspecified)), False)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_response(self, request_der: bytes, status_of: Callable[[int], CertStatus]) -> bytes:
        """Answer an OCSP request about one of our certificates."""
        try:
            req = ocsp.load_der_ocsp_request(request_der)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        ours = ocsp.OCSPRequestBuilder().add_certificate(
            self.certificate, self.certificate, req.hash_algorithm
        )
        ours_req = ours.build()
        if (
            req.issuer_key_hash != ours_req.issuer_key_hash
            or req.issuer_name_hash != ours_req.issuer_name_hash
        ):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        nonce: bytes | None = None
        try:
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
        st = status_of(req.serial_number)
        if st.status == "unknown":
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        now = dt.datetime.now(dt.UTC)
        key = (req.serial_number, st.status, st.reason)
        if nonce is None:
            with self._lock:
                cached = self._ocsp_cache.get(key)
            if cached is not None and now - cached[0] < OCSP_REFRESH:
                return cached[1]
        der = self._sign_ocsp(req, st, now, nonce)
        if nonce is None:
            with self._lock:
                if len(self._ocsp_cache) > 200_000:
                    self._ocsp_cache.clear()
                self._ocsp_cache[key] = (now, der)
        return der

    def _sign_ocsp(
        self, req: ocsp.OCSPRequest, st: CertStatus, now: dt.datetime, nonce: bytes | None
    ) -> bytes:
        if st.status == "good":
            cert_status, rev_time, rev_reason = ocsp.OCSPCertStatus.GOOD, None, None
        else:
            cert_status = ocsp.OCSPCertStatus.REVOKED
            rev_time = _utc(st.changed_at or now)
            rev_reason = (
                x509.ReasonFlags.certificate_hold
                if st.status == "suspended"
                else REASONS.get(st.reason or "", x509.ReasonFlags.unspecified)
            )
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                req.issuer_name_hash,
                req.issuer_key_hash,
                req.serial_number,
                req.hash_algorithm,
                cert_status,
                now - dt.timedelta(seconds=5),
                now + OCSP_VALIDITY,
                rev_time,
                rev_reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.NAME, self.certificate)
            .certificates([self.certificate])
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

"""The JPKI certificate profile of this deployment (公的個人認証サービス): OIDs and the 4情報 encoding.

JPKI is its own RSA-2048 / SHA-256 X.509 hierarchy, separate from the deployment's organisation CA.
Two certificates live on a card:

* 署名用電子証明書 (signing): carries the 4情報 (氏名・住所・生年月日・性別) in subjectAltName
  ``otherName`` entries; key usage digitalSignature + nonRepudiation.
* 利用者証明用電子証明書 (user authentication): carries **no** 4情報; the person is known to J-LIS
  by its serial number only; key usage digitalSignature, extended key usage clientAuth.

The OIDs are under this project's own UUID arc (2.25.…, ITU-T X.667), not the real JPKI's: the
real profile's OIDs are not reproduced here.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

ARC = "2.25.334618830901158546128101155991487066739"
POLICY_SIGN = ObjectIdentifier(ARC + ".1.1")
"""Certificate policy of the 署名用電子証明書."""
POLICY_AUTH = ObjectIdentifier(ARC + ".1.2")
"""Certificate policy of the 利用者証明用電子証明書."""

OID_NAME = ObjectIdentifier(ARC + ".2.1")  # 氏名
OID_ADDRESS = ObjectIdentifier(ARC + ".2.2")  # 住所
OID_BIRTH_DATE = ObjectIdentifier(ARC + ".2.3")  # 生年月日 (YYYY-MM-DD)
OID_SEX = ObjectIdentifier(ARC + ".2.4")  # 性別 (1 男, 2 女, 3 その他, as on the chip)

FOUR_INFO_OIDS = {
    OID_NAME: "name",
    OID_ADDRESS: "address",
    OID_BIRTH_DATE: "birth_date",
    OID_SEX: "sex",
}

KIND_AUTH = "auth"
KIND_SIGN = "sign"
KIND_LABELS = {KIND_AUTH: "利用者証明用電子証明書", KIND_SIGN: "署名用電子証明書"}


def der_utf8(text: str) -> bytes:
    """DER encoding of an ASN.1 UTF8String."""
    data = text.encode("utf-8")
    n = len(data)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return b"\x0c" + length + data


def parse_der_utf8(der: bytes) -> str:
    """Inverse of :func:`der_utf8`; raises ValueError on anything else."""
    if len(der) < 2 or der[0] != 0x0C:
        raise ValueError("not a DER UTF8String")
    first = der[1]
    if first < 0x80:
        start, n = 2, first
    else:
        k = first & 0x7F
        start, n = 2 + k, int.from_bytes(der[2 : 2 + k], "big")
    if start + n != len(der):
        raise ValueError("DER UTF8String has the wrong length")
    return der[start:].decode("utf-8")


def four_info_names(four: dict[str, str]) -> list[x509.GeneralName]:
    """subjectAltName entries carrying the 4情報 of a 署名用電子証明書."""
    return [x509.OtherName(oid, der_utf8(str(four[key]))) for oid, key in FOUR_INFO_OIDS.items()]


def certificate_kind(cert: x509.Certificate) -> str | None:
    """``auth`` or ``sign`` from the certificate policy, or None for a certificate of neither kind."""
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return None
    oids = {p.policy_identifier for p in policies}
    if POLICY_SIGN in oids:
        return KIND_SIGN
    if POLICY_AUTH in oids:
        return KIND_AUTH
    return None


def four_info(cert: x509.Certificate) -> dict[str, str]:
    """The 4情報 of a 署名用電子証明書 (empty for a 利用者証明用電子証明書)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {}
    out: dict[str, str] = {}
    for other in san.get_values_for_type(x509.OtherName):
        key = FOUR_INFO_OIDS.get(other.type_id)
        if key:
            out[key] = parse_der_utf8(other.value)
    return out

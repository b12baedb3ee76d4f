"""The JPKI hierarchy as outside tools see it: `openssl verify`, `openssl crl`, `openssl ocsp`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kojinbango.card.reader import CardReader
from kojinbango.holder import Client, issue_card, suspend_card
from kojinbango.nation import Nation

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl binary is not installed")


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def pems(
    card_nation: Nation, client: Client, residents, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("openssl")
    r = residents.take("m131016")
    card = d / "card.json"
    issue_card(client, r.resident_code, "1234", "ABC123", card)
    reader = CardReader(card)
    out = {"card": card, "dir": d}
    ca = httpx.get(card_nation.urls["jlis"] + "/jpki/ca.pem")
    assert ca.status_code == 200
    (d / "ca.pem").write_bytes(ca.content)
    out["ca"] = d / "ca.pem"
    for kind, der in (("auth", reader.auth_certificate()), ("sign", reader.signing_certificate("ABC123"))):
        p = d / f"{kind}.pem"
        p.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
        out[kind] = p
    return out


def test_openssl_verifies_both_certificates(pems: dict[str, Path]) -> None:
    for kind in ("auth", "sign"):
        r = openssl("verify", "-CAfile", str(pems["ca"]), str(pems[kind]))
        assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), r.stdout + r.stderr
    text = openssl("x509", "-in", str(pems["ca"]), "-noout", "-text").stdout
    assert "rsaEncryption" in text and "Public-Key: (2048 bit)" in text and "sha256WithRSAEncryption" in text


def test_openssl_refuses_a_foreign_ca(pems: dict[str, Path], card_nation: Nation) -> None:
    deployment_ca = card_nation.topology.resolve(card_nation.topology.ca_certificate)
    r = openssl("verify", "-CAfile", str(deployment_ca), str(pems["auth"]))
    assert r.returncode != 0


def test_openssl_reads_the_crl_and_ocsp(pems: dict[str, Path], card_nation: Nation, client: Client) -> None:
    jlis = card_nation.urls["jlis"]
    d = pems["dir"]
    ocsp_args = [
        "ocsp",
        "-issuer",
        str(pems["ca"]),
        "-cert",
        str(pems["auth"]),
        "-url",
        jlis + "/jpki/ocsp",
        "-CAfile",
        str(pems["ca"]),
    ]
    good = openssl(*ocsp_args)
    assert good.returncode == 0 and f"{pems['auth']}: good" in good.stdout, good.stdout + good.stderr
    assert "Response verify OK" in good.stderr
    suspend_card(client, pems["card"])
    crl = d / "crl.der"
    crl.write_bytes(httpx.get(jlis + "/jpki/crl.der").content)
    r = openssl("crl", "-inform", "DER", "-in", str(crl), "-noout", "-text")
    assert r.returncode == 0, r.stderr
    assert "Certificate Revocation List" in r.stdout and "Certificate Hold" in r.stdout
    serial = f"{x509.load_pem_x509_certificate(pems['auth'].read_bytes()).serial_number:X}"
    assert serial in r.stdout.replace(":", "").upper()
    crl_pem = d / "crl.pem"
    subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(crl), "-out", str(crl_pem)], check=True)
    checked = openssl(
        "verify", "-crl_check", "-CAfile", str(pems["ca"]), "-CRLfile", str(crl_pem), str(pems["auth"])
    )
    assert checked.returncode != 0 and "revoked" in (checked.stdout + checked.stderr)
    held = openssl(*ocsp_args)
    assert "revoked" in held.stdout and "certificateHold" in held.stdout, held.stdout

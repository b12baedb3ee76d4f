"""Answers sealed for the querier (JWE, ECDH-ES + A256GCM) and the encryption certificates."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from kojinbango.common.pki import (
    CertificateError,
    create_ca,
    issue_encryption_certificate,
    issue_org_certificate,
    verify_encryption_certificate,
)
from kojinbango.common.sealing import (
    Opener,
    Sealer,
    SealError,
    _jwk,
    _unb64url,
    key_id,
    open_under,
    seal_under,
)

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
SEALER = Sealer()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(json_values)
def test_what_is_sealed_opens_with_the_recipients_key_only(data: Any) -> None:
    token = SEALER.seal(data, KEY.public_key(), "m131041")
    assert Opener(KEY).open(token) == data
    with pytest.raises(SealError):
        Opener(OTHER).open(token)


def test_the_seal_is_a_standard_jwe_that_hides_the_information() -> None:
    data = {"assessments": [{"fiscal_year": 2025, "tax_amount": 250000, "name": "髙橋"}]}
    token = SEALER.seal(data, KEY.public_key(), "m131041")
    assert token.count(".") == 4 and "assessments" not in token and "250000" not in token
    opened = jwe.decrypt_compact(token, _jwk(KEY))  # any JOSE implementation reads it
    assert opened.protected["alg"] == "ECDH-ES" and opened.protected["enc"] == "A256GCM"
    assert opened.protected["kid"] == "m131041"


def test_an_altered_or_foreign_token_is_refused() -> None:
    token = SEALER.seal({"a": 1}, KEY.public_key(), "m")
    head, key, iv, ct, tag = token.split(".")
    flipped = ct[:-2] + ("A" if ct[-2] != "A" else "B") + ct[-1]
    for bad in (".".join((head, key, iv, flipped, tag)), "not a token", ""):
        with pytest.raises(SealError):
            Opener(KEY).open(bad)
    # another algorithm the token names is not followed, even with the right key
    wrapped = jwe.encrypt_compact({"alg": "ECDH-ES+A128KW", "enc": "A128GCM"}, b"{}", _jwk(KEY.public_key()))
    with pytest.raises(SealError):
        Opener(KEY).open(wrapped)


@settings(max_examples=25, deadline=None)
@given(st.lists(json_values, min_size=2, max_size=6))
def test_a_batch_sealed_with_one_key_opens_item_by_item_with_the_recipients_key_only(
    items: list[Any],
) -> None:
    key_token, tokens = SEALER.seal_batch(items, KEY.public_key(), "m131041")
    assert len(tokens) == len(items)
    for token, item in zip(tokens, items, strict=True):
        assert Opener(KEY).open(token, key_token) == item  # each alone, with a fresh opener
        with pytest.raises(SealError):
            Opener(OTHER).open(token, key_token)
        with pytest.raises(SealError):  # the batch form never opens as the single form, nor the reverse
            Opener(KEY).open(token)


def test_a_batch_seal_is_standard_jose_any_library_opens() -> None:
    data = [{"tax_amount": 250000, "name": "髙橋"}, {"tax_amount": 0, "name": "渡邊"}]
    key_token, tokens = SEALER.seal_batch(data, KEY.public_key(), "m131041")
    assert all("250000" not in t and "髙橋" not in t for t in [key_token, *tokens])
    opened_key = jwe.decrypt_compact(key_token, _jwk(KEY))  # ECDH-ES, the key as an encrypted JWK
    assert opened_key.protected["alg"] == "ECDH-ES" and opened_key.protected["cty"] == "jwk+json"
    assert opened_key.protected["kid"] == "m131041"
    batch_key = OctKey.import_key(json.loads(opened_key.plaintext or b""))
    for token, item in zip(tokens, data, strict=True):
        opened = jwe.decrypt_compact(token, batch_key)
        assert opened.protected["alg"] == "A256KW" and opened.protected["enc"] == "A256GCM"
        assert json.loads(opened.plaintext or b"") == item
    # one fresh key per batch, and a content key of its own per item
    key2, tokens2 = SEALER.seal_batch(data, KEY.public_key(), "m131041")
    assert key2 != key_token and tokens[0].split(".")[1] != tokens[1].split(".")[1]


def test_a_batch_key_is_opened_once_per_opener() -> None:
    key_token, tokens = SEALER.seal_batch([1, 2, 3], KEY.public_key(), "m")
    opener = Opener(KEY)
    agreements = 0
    real = opener._decrypt

    def counting(sealed: Any, key: Any) -> Any:  # each call: one key agreement (ECDH-ES)
        nonlocal agreements
        agreements += 1
        return real(sealed, key)

    opener._decrypt = counting  # type: ignore[method-assign]
    assert [opener.open(t, key_token) for t in tokens] == [1, 2, 3]
    assert agreements == 1


def test_altered_or_swapped_batch_seals_are_refused() -> None:
    key_token, tokens = SEALER.seal_batch([{"a": 1}, {"b": 2}], KEY.public_key(), "m")
    other_key, other_tokens = SEALER.seal_batch([{"c": 3}, {"d": 4}], KEY.public_key(), "m")
    head, wrapped, iv, ct, tag = tokens[0].split(".")
    flipped = ct[:-2] + ("A" if ct[-2] != "A" else "B") + ct[-1]
    opener = Opener(KEY)
    cases = [
        (".".join((head, wrapped, iv, flipped, tag)), key_token),  # the ciphertext altered
        (tokens[0], other_key),  # another batch's key
        (other_tokens[0], key_token),
        (tokens[0], tokens[1]),  # an answer's seal given as the key
        (tokens[0], SEALER.seal({"kty": "oct", "k": "AAAA"}, KEY.public_key(), "m")),  # not a sealed key
        (tokens[0], "not a token"),
    ]
    for token, key in cases:
        with pytest.raises(SealError):
            opener.open(token, key)
    # a key sealed as a key but too short for AES-256 is refused, not used
    short = SEALER.seal_bytes(
        b'{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAA"}', KEY.public_key(), "m", "jwk+json"
    )
    with pytest.raises(SealError, match="AES-256"):
        opener.open(tokens[0], short)
    assert opener.open(tokens[1], key_token) == {"b": 2}  # the genuine pair still opens


def test_encryption_certificates_are_for_key_agreement_only(tmp_path: Path) -> None:
    _, ca = create_ca(tmp_path)
    signing = issue_org_certificate(tmp_path, "m131041", "東京都新宿区")
    key, cert = issue_encryption_certificate(tmp_path, "m131041", "東京都新宿区")
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_agreement and not usage.digital_signature
    assert key.private_numbers() != signing.key.private_numbers()  # a key pair of its own
    assert (
        verify_encryption_certificate(cert, ca, "m131041").public_numbers()
        == key.public_key().public_numbers()
    )
    with pytest.raises(CertificateError, match="not an encryption"):
        verify_encryption_certificate(signing.certificate, ca, "m131041")
    with pytest.raises(CertificateError, match="expected"):
        verify_encryption_certificate(cert, ca, "m131016")
    # the CA's own certificate for a key of another curve: the seals are ECDH-ES on P-256 only
    ca_key, _ = create_ca(tmp_path)
    other = x509.CertificateBuilder(
        cert.issuer, cert.subject, ec.generate_private_key(ec.SECP384R1()).public_key(), x509.random_serial_number(),
        cert.not_valid_before_utc, cert.not_valid_after_utc, [e for e in cert.extensions],
    ).sign(ca_key, hashes.SHA256())  # fmt: skip
    with pytest.raises(CertificateError, match="P-256"):
        verify_encryption_certificate(other, ca, "m131041")


def test_a_missing_encryption_key_is_named_not_a_traceback(small_nation_dir: Path, tmp_path: Path) -> None:
    import shutil

    from kojinbango.common.topology import Topology, TopologyError

    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    topo = Topology.load(d / "topology.json")
    assert len(topo.opening_keys("m131041")) == 1 and topo.sealing_key("m131041") is not None
    (d / "pki" / "m131041.enc.key").unlink()
    with pytest.raises(TopologyError, match="m131041's encryption key .* is not on this machine"):
        topo.opening_keys("m131041")
    assert topo.opening_keys("jlis") == [] and topo.sealing_key("jlis") is None  # not a querier


def test_an_opener_with_retired_keys_opens_what_was_sealed_to_any_of_them() -> None:
    """After a key rotation the querier holds its new key and the ones it replaced: seals made for
    any of them open (the seal names its key; one that names none — made before seals named keys —
    is tried with each); a seal for a key it never held does not."""
    old, new, stranger = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    sealer = Sealer()
    items = [{"tax_amount": 250_000}, {"tax_amount": 0}]
    sealed = {
        "old, named": sealer.seal(items[0], old.public_key(), key_id("m131041", old)),
        "old, unnamed": sealer.seal(items[0], old.public_key(), "m131041"),
        "new, named": sealer.seal(items[0], new.public_key(), key_id("m131041", new)),
    }
    both = Opener(new, old)
    assert all(both.open(token) == items[0] for token in sealed.values())
    key_token, tokens = sealer.seal_batch(items, old.public_key(), key_id("m131041", old))
    assert [Opener(new, old).open(t, key_token) for t in tokens] == items  # a batch sealed before
    with pytest.raises(SealError):  # without the retired key, what was sealed to it stays shut
        Opener(new).open(sealed["old, named"])
    with pytest.raises(SealError):
        Opener(new).open(tokens[0], key_token)
    with pytest.raises(SealError):
        both.open(sealer.seal(items[0], stranger.public_key(), key_id("m131041", stranger)))
    with pytest.raises(SealError):  # a seal naming one of its keys is opened with that key only
        both.open(sealer.seal(items[0], stranger.public_key(), key_id("m131041", old)))


def test_a_key_id_names_the_organisation_and_the_keys_thumbprint() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    kid = key_id("nenkin", key)
    org, thumbprint = kid.split(":")
    assert org == "nenkin" and kid == key_id("nenkin", key.public_key())
    assert len(thumbprint) == 43  # base64url of a SHA-256 digest (RFC 7638)
    assert key_id("nenkin", ec.generate_private_key(ec.SECP256R1())) != kid


def test_an_opener_reads_its_keys_again_when_a_seal_opens_with_none_of_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider restarted after a rotation seals to the new key before the querier's service has
    restarted: the querier's opener reads its keys again (its topology) and opens it — at most every
    RELOAD_SECONDS, and a failing read is logged, not raised."""
    from kojinbango.common import sealing

    old, new, stranger = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    reads: list[int] = []
    now_keys = [new, old]
    opener = Opener(old, reload=lambda: reads.append(1) or now_keys)
    sealer = Sealer()
    assert opener.open(sealer.seal({"a": 1}, new.public_key(), key_id("m131041", new))) == {"a": 1}
    assert len(reads) == 1
    assert opener.open(sealer.seal({"a": 2}, old.public_key(), key_id("m131041", old))) == {"a": 2}
    key_token, tokens = sealer.seal_batch([{"b": 1}], new.public_key(), key_id("m131041", new))
    assert opener.open(tokens[0], key_token) == {"b": 1} and len(reads) == 1  # no read needed
    with pytest.raises(SealError):  # within RELOAD_SECONDS: not read again
        opener.open(sealer.seal({"a": 3}, stranger.public_key(), key_id("m131041", stranger)))
    assert len(reads) == 1
    monkeypatch.setattr(sealing, "RELOAD_SECONDS", 0.0)
    with pytest.raises(SealError):  # read again, the same keys: no second try
        opener.open(sealer.seal({"a": 3}, stranger.public_key(), key_id("m131041", stranger)))
    assert len(reads) == 2

    def broken() -> list[ec.EllipticCurvePrivateKey]:
        raise OSError("topology.json: being written")

    with pytest.raises(SealError):
        Opener(old, reload=broken).open(sealer.seal({"a": 4}, new.public_key(), key_id("m131041", new)))
    assert "could not be read again: topology.json: being written" in caplog.text


def test_answers_sealed_under_a_batch_key_by_a_jose_library_open_here_and_the_reverse() -> None:
    """The answers under a batch's key are sealed and opened without joserfc (for speed): both
    directions with the library, so stored answers sealed before, and other providers' seals, open."""
    raw = bytes(range(32))
    key = OctKey.import_key(raw)
    by_library = jwe.encrypt_compact(
        {"alg": "A256KW", "enc": "A256GCM", "cty": "json"}, b'{"a":"\xe9\xab\x99"}', key
    )
    assert open_under(raw, by_library) == '{"a":"髙"}'.encode()
    ours = seal_under(raw, b'{"b":2}')
    opened = jwe.decrypt_compact(ours, key, algorithms=["A256KW", "A256GCM"])
    assert opened.plaintext == b'{"b":2}' and opened.protected == {
        "alg": "A256KW",
        "enc": "A256GCM",
        "cty": "json",
    }
    assert ours != seal_under(raw, b'{"b":2}')  # a content key and IV of its own each time
    with pytest.raises(SealError):
        open_under(bytes(32), ours)  # another key


def _altered(part: str) -> list[str]:
    """A token's part altered in one character, dropped, lengthened, or given a bad character."""
    flipped = ("B" if part[3] == "A" else "A").join((part[:3], part[4:]))
    return [flipped, "", part + "*", part[:-1] + "=", part + "A", part[:-1] + "é", part[:-1] + "\ud800"]


def test_a_seal_under_a_batch_key_is_refused_when_any_part_is_altered_or_its_header_asks_for_more() -> None:
    raw = bytes(range(32))
    key = OctKey.import_key(raw)
    parts = seal_under(raw, b'{"b":2}').split(".")
    for i in range(5):  # each part altered in one character, or dropped, or given a bad character
        for bad in _altered(parts[i]):
            with pytest.raises(SealError):
                open_under(raw, ".".join([*parts[:i], bad, *parts[i + 1 :]]))
    for header in (
        {"alg": "A128KW", "enc": "A256GCM"},
        {"alg": "A256KW", "enc": "A128GCM"},
        {"alg": "A256KW", "enc": "A256GCM", "zip": "DEF"},
        {"alg": "A256KW", "enc": "A256GCM", "crit": ["exp"], "exp": 1},
    ):
        try:
            token = jwe.encrypt_compact(
                header, b"{}", key if header["alg"] == "A256KW" else OctKey.import_key(raw[:16])
            )
        except Exception:  # noqa: BLE001 — a form the library itself will not write: made by hand below
            token = ".".join(
                [base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("="), *parts[1:]]
            )
        with pytest.raises(SealError):
            open_under(raw, token)
    for bad in ("", "a.b.c.d", "a.b.c.d.e.f", "....", None):
        with pytest.raises(SealError):
            open_under(raw, bad)  # type: ignore[arg-type]


# --- a seal to a key (ECDH-ES, A256GCM), made and opened directly: joserfc is the reference ---------
def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _forge(
    recipient: ec.EllipticCurvePublicKey,
    plain: bytes = b'{"a":1}',
    *,
    header: dict[str, Any] | None = None,
    encrypted_key: bytes = b"",
    iv_len: int = 12,
    tag_len: int = 16,
) -> str:
    """A compact ECDH-ES + A256GCM JWE made by hand — the test's own transcription of RFC 7518
    §4.6, checked against joserfc — with ``header`` over the usual one and the parts as asked: a
    token whose only fault is the one a test gives it."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    numbers = ephemeral.public_key().public_numbers()
    epk = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }
    head = _b64(
        json.dumps({"alg": "ECDH-ES", "enc": "A256GCM", "cty": "json", "epk": epk, **(header or {})}).encode()
    )
    shared = ephemeral.exchange(ec.ECDH(), recipient)
    other_info = struct.pack(">I7sIII", 7, b"A256GCM", 0, 0, 256)  # AlgorithmID, apu, apv, key bits
    cek = hashlib.sha256(struct.pack(">I", 1) + shared + other_info).digest()  # Concat KDF: one round
    iv = os.urandom(iv_len)
    sealed = AESGCM(cek).encrypt(iv, plain, head.encode())
    return ".".join((head, _b64(encrypted_key), _b64(iv), _b64(sealed[:-16]), _b64(sealed[-16:][:tag_len])))


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["json", "jwk+json", "text/plain"]), st.text(max_size=20))
def test_what_is_sealed_to_a_key_here_opens_with_joserfc(plain: bytes, cty: str, kid: str) -> None:
    """The seal is made without joserfc (for speed): joserfc, as any JOSE library, opens it — with
    the recipient's key only — and reads the standard header, the ephemeral key a P-256 JWK."""
    token = SEALER.seal_bytes(plain, KEY.public_key(), kid, cty)
    assert token.split(".")[1] == ""  # direct key agreement: no encrypted key
    opened = jwe.decrypt_compact(token, _jwk(KEY), algorithms=["ECDH-ES", "A256GCM"])
    assert opened.plaintext == plain
    epk = opened.protected["epk"]
    assert opened.protected == {"alg": "ECDH-ES", "enc": "A256GCM", "kid": kid, "cty": cty, "epk": epk}
    assert epk["kty"] == "EC" and epk["crv"] == "P-256" and len(epk["x"]) == len(epk["y"]) == 43
    with pytest.raises(JoseError):
        jwe.decrypt_compact(token, _jwk(OTHER))


def test_every_seal_to_a_key_opens_with_joserfc_and_each_has_its_own_ephemeral_key() -> None:
    data = {"tax_amount": 250000, "name": "髙橋"}
    token = SEALER.seal(data, KEY.public_key(), "m131041")
    assert json.loads(jwe.decrypt_compact(token, _jwk(KEY)).plaintext or b"") == data
    key_token, tokens = SEALER.seal_batch([data], KEY.public_key(), "m131041")
    opened_key = jwe.decrypt_compact(key_token, _jwk(KEY), algorithms=["ECDH-ES", "A256GCM"])
    assert opened_key.protected["cty"] == "jwk+json"
    jwk = json.loads(opened_key.plaintext or b"")
    assert set(jwk) == {"kty", "k"} and len(OctKey.import_key(jwk).raw_value) == 32
    assert json.loads(jwe.decrypt_compact(tokens[0], OctKey.import_key(jwk)).plaintext or b"") == data
    again = SEALER.seal(data, KEY.public_key(), "m131041")
    head, _, iv, _, _ = token.split(".")
    epks = [jwe.decrypt_compact(t, _jwk(KEY)).protected["epk"] for t in (token, again)]
    assert epks[0] != epks[1] and iv != again.split(".")[2]


def test_what_joserfc_seals_to_a_key_opens_here() -> None:
    """Seals made by a JOSE library with ECDH-ES and A256GCM — stored answers sealed before, other
    providers' seals — open here: alone, by the key their kid names, and a batch's key."""
    token = jwe.encrypt_compact(
        {"alg": "ECDH-ES", "enc": "A256GCM", "kid": "m131041", "cty": "json"},
        '{"a":"髙"}'.encode(),
        _jwk(KEY),
    )
    assert Opener(KEY).open(token) == {"a": "髙"}
    with pytest.raises(SealError):
        Opener(OTHER).open(token)
    old, new = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    named = jwe.encrypt_compact(
        {"alg": "ECDH-ES", "enc": "A256GCM", "kid": key_id("m", old)}, b"[1]", _jwk(old)
    )
    assert Opener(new, old).open(named) == [1]
    batch_key = OctKey.import_key(os.urandom(32))
    key_token = jwe.encrypt_compact(
        {"alg": "ECDH-ES", "enc": "A256GCM", "cty": "jwk+json"},
        json.dumps(batch_key.as_dict(private=True)).encode(),
        _jwk(KEY.public_key()),
    )
    answer = jwe.encrypt_compact({"alg": "A256KW", "enc": "A256GCM"}, b'{"b":2}', batch_key)
    assert Opener(KEY).open(answer, key_token) == {"b": 2}
    assert Opener(KEY).open(_forge(KEY.public_key())) == {"a": 1}  # the tests' own seal: right too
    assert jwe.decrypt_compact(_forge(KEY.public_key()), _jwk(KEY)).plaintext == b'{"a":1}'


def test_a_seal_to_a_key_is_refused_when_any_part_is_altered() -> None:
    parts = SEALER.seal({"a": 1}, KEY.public_key(), "m").split(".")
    opener = Opener(KEY)
    for i in range(5):  # each part altered in one character, dropped, lengthened, or a bad character
        part = parts[i]
        a_key_where_none_is = ["AAAA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
        for bad in _altered(part) if part else a_key_where_none_is:
            with pytest.raises(SealError):
                opener.open(".".join([*parts[:i], bad, *parts[i + 1 :]]))
    assert opener.open(".".join(parts)) == {"a": 1}
    for not_a_token in ("", "not a token", "a.b.c.d", "a.b.c.d.e.f", "....", None):
        with pytest.raises(SealError):
            opener.open(not_a_token)  # type: ignore[arg-type]


def test_a_seal_to_a_key_is_refused_when_its_form_is_another_even_if_it_would_open() -> None:
    """Only ECDH-ES, A256GCM, with no encrypted key, IV and tag of their lengths: a token otherwise
    sound — its content opens with the key — is refused, for the reason it breaks."""
    recipient = KEY.public_key()
    by_library = {
        "ECDH-ES, A256GCM": [
            {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"},
            {"alg": "ECDH-ES", "enc": "A128GCM"},
            {"alg": "ECDH-ES", "enc": "A256CBC-HS512"},
        ],
        "compression, extensions or party information": [
            {"alg": "ECDH-ES", "enc": "A256GCM", "zip": "DEF"},
            {"alg": "ECDH-ES", "enc": "A256GCM", "apu": _b64(b"Alice"), "apv": _b64(b"Bob")},
        ],
    }
    for reason, headers in by_library.items():
        for header in headers:
            with pytest.raises(SealError, match=reason):
                Opener(KEY).open(jwe.encrypt_compact(header, b"{}", _jwk(recipient)))
    forged = {
        "compression, extensions or party information": [
            _forge(recipient, header={"crit": ["exp"], "exp": 1}),
            _forge(recipient, header={"apv": ""}),
        ],
        "encrypted key": [_forge(recipient, encrypted_key=os.urandom(40))],
        "IV or tag": [
            _forge(recipient, iv_len=16),
            _forge(recipient, iv_len=8),
            _forge(recipient, tag_len=12),
        ],
        "ECDH-ES, A256GCM": [
            _forge(recipient, header={"alg": "dir"}),
            _forge(recipient, header={"enc": None}),
        ],
    }
    for reason, tokens in forged.items():
        for token in tokens:
            with pytest.raises(SealError, match=reason):
                Opener(KEY).open(token)
    with pytest.raises(SealError, match="another key"):  # sealed for someone else
        Opener(KEY).open(_forge(OTHER.public_key()))


def test_an_ephemeral_key_not_on_p256_is_refused() -> None:
    """The sender's ephemeral key (epk) is used only as a P-256 point on the curve, its coordinates
    at full length: anything else — another curve, a point off the curve — is refused."""
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    x, y = point.x.to_bytes(32, "big"), point.y.to_bytes(32, "big")
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    x384, y384 = p384.x.to_bytes(48, "big"), p384.y.to_bytes(48, "big")
    off_curve = (point.y + 1).to_bytes(32, "big")
    epks: list[Any] = [
        {"kty": "EC", "crv": "P-256", "x": _b64(x), "y": _b64(off_curve)},  # not on the curve
        {"kty": "EC", "crv": "P-256", "x": _b64(bytes(32)), "y": _b64(bytes(32))},
        {"kty": "EC", "crv": "P-384", "x": _b64(x384), "y": _b64(y384)},  # another curve
        {"kty": "EC", "crv": "P-256", "x": _b64(x384), "y": _b64(y384)},
        {"kty": "EC", "crv": "P-256", "x": _b64(x[1:]), "y": _b64(y)},  # wrong lengths
        {"kty": "EC", "crv": "P-256", "x": _b64(x), "y": _b64(y + b"\0")},
        {"kty": "EC", "crv": "P-256", "x": _b64(x[:31]), "y": _b64(x[31:] + y)},  # the point, split wrong
        {"kty": "EC", "crv": "P-256", "x": _b64(x) + "=", "y": _b64(y)},  # not base64url
        {"kty": "EC", "crv": "P-256", "x": _b64(x)[:-1] + "+", "y": _b64(y)},
        {"kty": "EC", "crv": "P-256", "x": int.from_bytes(x, "big"), "y": _b64(y)},
        {"kty": "EC", "crv": "P-256", "x": _b64(x)},
        {"kty": "OKP", "crv": "X25519", "x": _b64(x)},
        {"kty": "EC", "x": _b64(x), "y": _b64(y)},
        None,
        _b64(b"\x04" + x + y),
    ]
    for epk in epks:
        with pytest.raises(SealError, match="epk"):
            Opener(KEY).open(_forge(KEY.public_key(), header={"epk": epk}))
    with pytest.raises(ValueError, match="P-256"):  # nor is a seal made for another curve's key
        SEALER.seal({"a": 1}, ec.generate_private_key(ec.SECP384R1()).public_key(), "m")


def test_a_malformed_seal_does_not_make_an_opener_read_its_keys_again() -> None:
    """No key could open it: the keys are read again only for a sound seal none of them opens."""
    reads: list[int] = []

    def reload() -> list[ec.EllipticCurvePrivateKey]:
        reads.append(1)
        return [KEY]

    opener = Opener(KEY, reload=reload)
    for bad in ("not a token", jwe.encrypt_compact({"alg": "ECDH-ES", "enc": "A128GCM"}, b"{}", _jwk(KEY))):
        with pytest.raises(SealError):
            opener.open(bad)
    assert reads == []
    with pytest.raises(SealError):
        opener.open(SEALER.seal({}, OTHER.public_key(), "m"))
    assert reads == [1]


def test_base64url_is_read_strictly() -> None:
    """Only base64url's own alphabet, unpadded: the standard alphabet's ``+`` and ``/`` are refused
    (the decoder underneath would take them — a seal's parts could then be written two ways)."""
    assert _unb64url("ab-_") == base64.urlsafe_b64decode("ab-_")
    assert _unb64url("") == b""
    for bad in ("ab+d", "ab/d", "abc=", "a", "ab d", "ab\nd", "abé", "ab*d"):
        with pytest.raises(ValueError):
            _unb64url(bad)
    raw = bytes(range(32))
    parts = seal_under(raw, b'{"b":2}').split(".")
    for i in range(1, 5):  # a part written with the standard alphabet: refused, never opened
        std = base64.b64encode(_unb64url(parts[i])).decode().rstrip("=")
        if std != parts[i]:
            with pytest.raises(SealError, match="not a compact JWE"):
                open_under(raw, ".".join([*parts[:i], std, *parts[i + 1 :]]))


def test_a_header_that_is_not_an_object_is_refused_by_both_readers() -> None:
    """Both forms of seal are read by one reader of compact JWE first: a header that is JSON but no
    object (a list, a string, a number) is refused as such, before any of its names is looked at."""
    raw = bytes(range(32))
    parts = seal_under(raw, b'{"b":2}').split(".")
    sealed = SEALER.seal({"a": 1}, KEY.public_key(), "m").split(".")
    for header in ([], "ECDH-ES", 7, None):
        head = base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
        with pytest.raises(SealError, match="header is not an object"):
            open_under(raw, ".".join([head, *parts[1:]]))
        with pytest.raises(SealError, match="header is not an object"):
            Opener(KEY).open(".".join([head, *sealed[1:]]))

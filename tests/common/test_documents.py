"""Signed documents, plain and batch-signed: each verifies alone, later, and nothing altered does."""

from __future__ import annotations

import base64
import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from kojinbango.common import documents
from kojinbango.common.documents import sign_document, sign_documents, verify_document
from kojinbango.common.pki import create_ca, issue_org_certificate
from kojinbango.common.signing import SignatureError, TrustStore

KIND = "linkage_answer"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrustStore, dict[str, Any], Path]:
    d = tmp_path_factory.mktemp("pki")
    _, ca = create_ca(d)
    creds = {oid: issue_org_certificate(d, oid, oid) for oid in ("intermediate", "network")}
    return TrustStore(ca, {oid: c.certificate for oid, c in creds.items()}), creds, d


@pytest.fixture(autouse=True)
def no_remembered_heads() -> None:
    """Every test starts with no batch head remembered: what verifies must verify from scratch."""
    documents._HEADS = documents._Heads()


def _payloads(n: int) -> list[dict[str, Any]]:
    return [{"exchange_id": f"EX20261127-{i:08d}", "held": i % 2 == 0, "data": {"n": i}} for i in range(n)]


class CountingKey:
    """A public key that counts the signature checks made with it."""

    def __init__(self, key: ec.EllipticCurvePublicKey):
        self.key = key
        self.checks = 0

    def verify(self, *args: Any) -> None:
        self.checks += 1
        self.key.verify(*args)


def test_documents_signed_together_each_verify_alone_with_one_signature_check(pki) -> None:
    trust, creds, _ = pki
    docs = sign_documents(creds["intermediate"], KIND, _payloads(7))
    assert [d["payload"]["exchange_id"] for d in docs] == [p["exchange_id"] for p in _payloads(7)]
    assert all("signature" not in d and d["batch"]["size"] == 7 for d in docs)
    assert len({d["batch"]["signature"] for d in docs}) == 1  # one signature for the batch
    for i, doc in enumerate(docs):  # each alone, with nothing remembered: a document is its own evidence
        documents._HEADS = documents._Heads()
        assert verify_document(doc, trust, KIND) == ("intermediate", _payloads(7)[i])
    counting = CountingKey(trust.public_key("intermediate"))
    trust._keys["intermediate"] = counting  # type: ignore[assignment]
    try:
        documents._HEADS = documents._Heads()
        for doc in docs:
            verify_document(doc, trust, KIND)
        assert counting.checks == 1  # the batch's head is checked once, then remembered
    finally:
        trust._keys["intermediate"] = counting.key


def test_two_organisations_in_one_process_each_check_a_batch_once(pki) -> None:
    """The network and a querier in one process (the demo) each hold their own trust store."""
    trust, creds, _ = pki
    docs = sign_documents(creds["intermediate"], KIND, _payloads(6))
    stores = [
        TrustStore(trust.ca_cert, {"intermediate": creds["intermediate"].certificate}) for _ in range(2)
    ]
    counting = [CountingKey(store.public_key("intermediate")) for store in stores]
    for store, key in zip(stores, counting, strict=True):
        store._keys["intermediate"] = key  # type: ignore[assignment]
    for doc in docs:  # network, querier, network, querier, ...
        for store in stores:
            verify_document(doc, store, KIND)
    assert [key.checks for key in counting] == [1, 1]


def test_one_document_is_signed_plainly(pki) -> None:
    trust, creds, _ = pki
    (doc,) = sign_documents(creds["intermediate"], KIND, _payloads(1))
    assert "batch" not in doc and "signature" in doc
    assert verify_document(doc, trust, KIND)[1] == _payloads(1)[0]
    assert sign_documents(creds["intermediate"], KIND, []) == []


def _alter(doc: dict[str, Any], how: str, other: dict[str, Any]) -> dict[str, Any]:
    d = copy.deepcopy(doc)
    b = d["batch"]
    if how == "payload":
        d["payload"]["held"] = not d["payload"]["held"]
    elif how == "signed_at":
        d["signed_at"] = "2020-01-01T00:00:00+00:00"
    elif how == "signer":
        d["signer"] = "network"
    elif how == "kind":
        d["kind"] = "transfer_certificate"
    elif how == "salt":
        b["salt"] = base64.b64encode(b"\x00" * 16).decode()
    elif how == "index":
        b["index"] = other["batch"]["index"]
    elif how == "size":
        b["size"] = b["size"] + 1
    elif how == "path":
        b["path"] = other["batch"]["path"]
    elif how == "path_hash":
        b["path"][0] = base64.b64encode(bytes(32)).decode()
    elif how == "path_short":
        b["path"] = b["path"][:-1]
    elif how == "signature":
        sig = bytearray(base64.b64decode(b["signature"]))
        sig[-1] ^= 1
        b["signature"] = base64.b64encode(bytes(sig)).decode()
    return d


@pytest.mark.parametrize(
    "how",
    [
        "payload",
        "signed_at",
        "signer",
        "kind",
        "salt",
        "index",
        "size",
        "path",
        "path_hash",
        "path_short",
        "signature",
    ],
)
def test_a_batch_signed_document_altered_in_any_part_does_not_verify(pki, how: str) -> None:
    trust, creds, _ = pki
    docs = sign_documents(creds["intermediate"], KIND, _payloads(5))
    for doc in docs:  # the genuine ones first: their head is remembered, which must not help a forgery
        verify_document(doc, trust, KIND)
    forged = _alter(docs[2], how, docs[3])
    with pytest.raises(SignatureError):
        verify_document(forged, trust, KIND)
    assert verify_document(docs[1], trust, KIND)[1] == _payloads(5)[1]  # the others stay genuine


@pytest.mark.parametrize(
    "batch",
    [
        {"salt": "AAAA", "index": 0, "size": 2, "path": [], "signature": "AA=="},
        {"index": 0, "size": 2, "path": [], "signature": "AA=="},
        {
            "salt": base64.b64encode(bytes(16)).decode(),
            "index": True,
            "size": 2,
            "path": [],
            "signature": "AA==",
        },
        {
            "salt": base64.b64encode(bytes(16)).decode(),
            "index": 2,
            "size": 2,
            "path": [],
            "signature": "AA==",
        },
        {
            "salt": base64.b64encode(bytes(16)).decode(),
            "index": 0,
            "size": 2,
            "path": ["AA=="],
            "signature": "AA==",
        },
        {
            "salt": base64.b64encode(bytes(16)).decode(),
            "index": 0,
            "size": 2**40,
            "path": [],
            "signature": "AA==",
        },
        {"salt": "not base64!", "index": 0, "size": 2, "path": [], "signature": "AA=="},
        {
            "salt": base64.b64encode(bytes(16)).decode(),
            "index": 0,
            "size": 2,
            "path": [base64.b64encode(bytes(32)).decode()] * 10**4,
            "signature": "AA==",
        },
        {
            "salt": base64.b64encode(bytes(16)).decode(),
            "index": 0,
            "size": 2,
            "path": "AAAA",
            "signature": "AA==",
        },
        "not an object",
    ],
)
def test_a_malformed_batch_proof_is_refused_with_a_reason(pki, batch: Any) -> None:
    trust, creds, _ = pki
    doc = sign_documents(creds["intermediate"], KIND, _payloads(2))[0]
    doc["batch"] = batch
    with pytest.raises(SignatureError, match="malformed"):
        verify_document(doc, trust, KIND)


def test_the_two_forms_do_not_mix(pki) -> None:
    trust, creds, _ = pki
    docs = sign_documents(creds["intermediate"], KIND, _payloads(2))
    both = {**docs[0], "signature": docs[0]["batch"]["signature"]}
    with pytest.raises(SignatureError, match="malformed"):
        verify_document(both, trust, KIND)
    # the batch head's signature is not a signature of the document itself
    plain = {k: v for k, v in docs[0].items() if k != "batch"} | {"signature": docs[0]["batch"]["signature"]}
    with pytest.raises(SignatureError, match="does not verify"):
        verify_document(plain, trust, KIND)
    # nor is a plain document's signature a batch head's
    single = sign_document(creds["intermediate"], KIND, _payloads(1)[0])
    borrowed = copy.deepcopy(docs[0])
    borrowed["batch"]["signature"] = single["signature"]
    with pytest.raises(SignatureError, match="does not verify"):
        verify_document(borrowed, trust, KIND)


def test_a_remembered_head_does_not_outlive_the_key_that_checked_it(pki) -> None:
    trust, creds, d = pki
    docs = sign_documents(creds["intermediate"], KIND, _payloads(3))
    verify_document(docs[0], trust, KIND)  # remembered with the intermediate server's key
    renewal = d / "renewal"  # the same CA, a new key for the same organisation
    renewal.mkdir(exist_ok=True)
    for ca_file in d.glob("ca.*"):
        shutil.copy(ca_file, renewal)
    other = issue_org_certificate(renewal, "intermediate", "intermediate")
    renewed = TrustStore(trust.ca_cert, {"intermediate": other.certificate})
    with pytest.raises(SignatureError, match="does not verify"):
        verify_document(docs[1], renewed, KIND)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=2, max_value=70), pick=st.data())
def test_every_document_of_any_batch_size_verifies_and_only_its_own_payload(
    pki, n: int, pick: st.DataObject
) -> None:
    trust, creds, _ = pki
    payloads = _payloads(n)
    docs = sign_documents(creds["intermediate"], KIND, payloads)
    i = pick.draw(st.integers(min_value=0, max_value=n - 1))
    j = pick.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda x: x != i))
    documents._HEADS = documents._Heads()
    assert verify_document(docs[i], trust, KIND)[1] == payloads[i]
    swapped = {**docs[i], "payload": payloads[j]}
    with pytest.raises(SignatureError):
        verify_document(swapped, trust, KIND)


def _stdlib_canonical(obj: Any) -> bytes:
    """The canonical form as it has always been written (and signed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


_any_text = st.text(st.characters(blacklist_categories=("Cs",)))  # every code point but surrogates
_plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | _any_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_any_text, inner, max_size=5),
    max_leaves=25,
)
_other_json = st.recursive(  # floats, integers orjson does not write, tuples, other types, int keys
    st.floats() | st.integers() | st.datetimes() | _any_text | st.none(),
    lambda inner: (
        st.lists(inner, max_size=4).map(tuple)
        | st.lists(inner, max_size=4)
        | st.dictionaries(_any_text | st.integers(0, 9).map(str), inner, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(_plain_json, _other_json))
def test_the_canonical_form_is_byte_for_byte_the_standard_librarys(obj: Any) -> None:
    """orjson writes plain JSON's canonical form; the bytes must be exactly the ones the standard
    library wrote when documents were signed, or signatures made before stop verifying."""
    assert documents.canonical(obj) == _stdlib_canonical(obj)


def test_the_canonical_form_of_awkward_strings_and_edge_values() -> None:
    cases: list[Any] = [
        {"\x00\x01\x1f\x7f": '\b\f\n\r\t"\\/', "\u2028\u2029": "髙橋\U0001f600", "": [2**64 - 1, -(2**63)]},
        {"b": 1, "a": {"d": [True, False, None], "c": "é"}, "A": 0, "é": 1, "z": 2},  # ordering
        [2**64, -(2**63) - 1, 1.5, 1e-07, float("nan")],  # the standard library's numbers
        {"t": (1, 2), "d": __import__("datetime").date(2026, 1, 1)},
    ]
    for obj in cases:
        assert documents.canonical(obj) == _stdlib_canonical(obj)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate cannot be signed, as before
        documents.canonical({"a": "\ud800"})


def test_plain_json_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> str:
        raise AssertionError("the standard library was used")

    monkeypatch.setattr(documents.json, "dumps", refuse)
    assert documents.canonical({"b": [1, "x"], "a": None}) == b'{"a":null,"b":[1,"x"]}'
    with pytest.raises(AssertionError):
        documents.canonical({"a": 1.5})  # a float goes to the standard library

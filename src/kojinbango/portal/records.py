"""やりとり履歴 (情報提供等記録開示): the logged-in resident's provision records, with their proofs.

1. At login the portal notes which 利用者証明用電子証明書 (its serial) the session used.
2. The first time a user asks, the portal obtains its own 符号 for them: J-LIS maps the serial to the
   住民票コード and relays it to the network, which makes the portal's 符号 (the portal never sees the
   住民票コード or the number).
3. The network answers with every record about the person behind that 符号, each with an inclusion
   proof against a signed tree head, and a consistency proof from the last head the portal verified.
4. The portal checks all of it (``common.transparency``) and shows each record with ``proof_valid``;
   the raw bundle goes along so the resident's own software can check it again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from kojinbango.common import i18n
from kojinbango.common.db import Database
from kojinbango.common.signing import TrustStore
from kojinbango.common.transparency import check_bundle
from kojinbango.common.transport import SignedClient
from kojinbango.domain.clock import utc_now as _now
from kojinbango.portal.models import PortalSession
from kojinbango.portal.records_models import PortalFugo, SeenRecord, SeenTreeHead, SessionCertificate
from kojinbango.portal.service import LoginRefused


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def certificate_serial(certificate: str) -> str:
    """The serial of a base64-DER or PEM certificate (already verified by the login)."""
    text = certificate.strip()
    if text.startswith("-----BEGIN"):
        cert = x509.load_pem_x509_certificate(text.encode())
    else:
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(text))
        except (binascii.Error, ValueError):
            raise LoginRefused("bad_certificate", "the certificate cannot be read") from None
    return str(cert.serial_number)


VERDICTS = {
    "proven": "every record is proven to be in the network's log",
    "misfiled": "a record in this list names another person: the network's index may have been altered",
    "incomplete": "a record about you is missing from this list: the network's index may have been altered",
    "unproven": "some records could not be proven to be in the network's log: the log may have been altered",
}


class RecordsService:
    def __init__(
        self, db: Database, portal_id: str, client: SignedClient, trust: TrustStore, jlis: str, network: str
    ):
        self.db = db
        self.portal_id = portal_id
        self.client = client
        self.trust = trust
        self.jlis = jlis
        self.network = network

    def after_login(self, token: str, certificate: str) -> None:
        with self.db.transaction() as s:
            s.add(
                SessionCertificate(
                    token_hash=_hash(token), serial=certificate_serial(certificate), created_at=_now()
                )
            )

    def _session(self, token: str) -> tuple[str, str]:
        with self.db.transaction() as s:
            sess = s.get(PortalSession, _hash(token))
            if sess is None or sess.ended_at is not None or sess.expires_at < _now():
                raise LoginRefused("not_logged_in", "not logged in (or the session ended)")
            cert = s.get(SessionCertificate, _hash(token))
            if cert is None:
                raise LoginRefused(
                    "not_logged_in", "this session did not log in with a certificate; log in again"
                )
            return sess.subscriber_id, cert.serial

    def _fugo(self, subscriber_id: str, serial: str) -> str:
        with self.db.transaction() as s:
            row = s.get(PortalFugo, subscriber_id)
            if row is not None:
                return row.fugo
        got = self.client.call(
            self.jlis,
            "POST",
            "/api/fugo/acquire-by-certificate",
            {"serial": serial, "acquisition_number": "AQ" + secrets.token_hex(12)},
        )
        fugo = str(got["fugo"])
        with self.db.transaction() as s:
            if s.get(PortalFugo, subscriber_id) is None:
                s.add(PortalFugo(subscriber_id=subscriber_id, fugo=fugo, acquired_at=_now()))
        return fugo

    def _known_head(self) -> dict[str, Any] | None:
        with self.db.transaction() as s:
            head = s.scalar(select(SeenTreeHead).order_by(SeenTreeHead.tree_size.desc()).limit(1))
            return None if head is None else {"tree_size": head.tree_size, "root_hash": head.root_hash}

    def records(self, token: str) -> dict[str, Any]:
        subscriber_id, serial = self._session(token)
        fugo = self._fugo(subscriber_id, serial)
        known = self._known_head()
        bundle = self.client.call(
            self.network,
            "POST",
            "/api/portal/records",
            {"fugo": fugo, "known_tree_size": known["tree_size"] if known else None},
        )
        checked = check_bundle(bundle, self.trust, self.network, known)
        if checked["head_valid"] and checked["consistent"] is not False:
            head = bundle["tree_head"]
            with self.db.transaction() as s:
                if s.get(SeenTreeHead, checked["tree_size"]) is None:
                    s.add(SeenTreeHead(tree_size=checked["tree_size"], root_hash=checked["root_hash"], document=head,
                                       seen_at=_now()))  # fmt: skip
        valid = all(r["proof_valid"] for r in checked["records"])
        # The network checks each record's commitment to the person it was filed under (the portal
        # cannot: it never learns the internal id); a record moved into this list is not theirs.
        misfiled = {r.get("index") for r in bundle.get("records", []) if r.get("filed_correctly") is False}
        for r in checked["records"]:
            r["filed_correctly"] = r.get("index") not in misfiled
        empty = bundle.get("tree_head") is None and not bundle.get("records")  # nothing logged yet
        # no gap in the chain of this person's records, and the newest record shown before still there
        complete = checked["complete"] and self._still_listed(subscriber_id, checked["records"])
        ok = empty or (
            checked["head_valid"]
            and checked["consistent"] is not False
            and valid
            and not misfiled
            and complete
        )
        if ok and checked["records"]:
            self._remember_newest(subscriber_id, checked["records"][-1])
        if ok:
            verdict = "proven"
        elif misfiled and valid:
            verdict = "misfiled"
        elif not complete and valid:
            verdict = "incomplete"
        else:
            verdict = "unproven"
        return {
            "records": checked["records"],
            "all_proofs_valid": ok,
            "verdict": verdict,  # the page words it in the reader's language
            "message": VERDICTS[verdict],
            "complete": complete,
            "log": {
                "tree_size": checked.get("tree_size"),
                "root_hash": checked.get("root_hash"),
                "head_valid": checked["head_valid"],
                "consistent_with_last_seen": checked["consistent"],
                "problem": checked["problem"],
            },
            "bundle": bundle,
        }

    def _still_listed(self, subscriber_id: str, records: list[dict[str, Any]]) -> bool:
        """Is the newest record this user was shown before still in their list, unchanged?  (The chain
        shows nothing is missing *before* a record; this covers the end of the list.)"""
        with self.db.transaction() as s:
            seen = s.get(SeenRecord, subscriber_id)
            if seen is None:
                return True
            last_index, leaf = seen.last_index, seen.leaf_hash
        return any(r.get("index") == last_index and r.get("leaf_hash") == leaf for r in records)

    def _remember_newest(self, subscriber_id: str, newest: dict[str, Any]) -> None:
        with self.db.transaction() as s:
            seen = s.get(SeenRecord, subscriber_id)
            if seen is None:
                s.add(SeenRecord(subscriber_id=subscriber_id, last_index=int(newest["index"]),
                                 leaf_hash=str(newest["leaf_hash"]), seen_at=_now()))  # fmt: skip
            elif int(newest["index"]) >= seen.last_index:
                seen.last_index, seen.leaf_hash, seen.seen_at = (
                    int(newest["index"]),
                    str(newest["leaf_hash"]),
                    _now(),
                )


def install(app: FastAPI, service: RecordsService, token_of: Any) -> None:
    """``GET /records`` (the page) and ``GET /records/api`` (JSON) for the logged-in resident."""
    templates = i18n.templates(app, Path(__file__).parent / "templates")
    router = APIRouter()

    @router.get("/records/api")
    def records_api(request: Request) -> dict[str, Any]:
        return service.records(token_of(request))

    @router.get("/records", response_class=HTMLResponse)
    def records_page(request: Request) -> Any:
        try:
            data = service.records(token_of(request))
        except LoginRefused as exc:
            return HTMLResponse(f"<p>{exc.message}. <a href='/'>ログイン</a></p>", status_code=401)
        return templates.TemplateResponse(request, "records.html", {"data": data})

    app.include_router(router)

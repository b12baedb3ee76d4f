"""J-LIS's card centre: applications, manufacture, delivery, the card's life and its certificates.

One transaction per business operation; a call to another organisation is never made inside a
transaction (the card is first recorded, then sent, then marked sent — a batch killed in between is
finished by the next batch).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from kojinbango.card.chip import Chip
from kojinbango.card.photo import PhotoError, validate_photo
from kojinbango.card.profile import KIND_AUTH, KIND_SIGN
from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, Conflict, NotFound
from kojinbango.common.topology import TopologyError
from kojinbango.common.transport import RemoteError, Unreachable
from kojinbango.domain.cards import card_expiry, certificate_expiry, may_hold_signing_certificate
from kojinbango.domain.clock import utc_now as now
from kojinbango.domain.identifiers import validate_resident_code
from kojinbango.domain.jst import JST, today_jst
from kojinbango.jlis.cards.jpki import CertStatus, JpkiCa
from kojinbango.jlis.cards.models import (
    Card,
    CardApplication,
    CardCounter,
    CardEvent,
    JpkiCertificate,
)
from kojinbango.jlis.models import IdentityRecord

log = logging.getLogger(__name__)

MODES = ("交付時来庁方式", "申請時来庁方式")
CHANNELS = ("online", "post", "counter")
CRL_NUMBER = "crl_number"
FOUR_KEYS = ("name", "address", "birth_date", "sex")
ACTIVE_CARD = ("manufactured", "delivered", "mailed", "issued", "suspended")


def four_of_record(rec: IdentityRecord | dict[str, Any]) -> dict[str, str]:
    """The 4情報 (and furigana) of a 本人確認情報 record, as cards and certificates carry them."""
    get = rec.get if isinstance(rec, dict) else lambda k: getattr(rec, k)
    birth = get("birth_date")
    return {
        "name": f"{get('family_name')}\u3000{get('given_name')}",
        "kana": f"{get('family_kana') or ''}\u3000{get('given_kana') or ''}".strip("\u3000"),
        "address": str(get("address")),
        "birth_date": birth.isoformat() if isinstance(birth, dt.date) else str(birth),
        "sex": str(get("sex")),
    }


def same_four(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(str(a.get(k)) == str(b.get(k)) for k in FOUR_KEYS)


def _end_of_day_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59), JST).astimezone(dt.UTC)


class CardCentre:
    """What J-LIS does for cards.  ``call(org_id, method, path, payload)`` reaches municipalities."""

    def __init__(
        self,
        db: Database,
        ca: JpkiCa,
        call: Callable[[str, str, str, Any], Any],
        municipality_org: Callable[[str], str],
        crl_url: str,
        subscriber_key: bytes,
        municipality_name: Callable[[str], str] = str,
    ):
        self.db = db
        self.ca = ca
        self.call = call
        self.municipality_org = municipality_org
        self.crl_url = crl_url
        self.subscriber_key = subscriber_key
        self.municipality_name = municipality_name
        self._batch_lock = threading.Lock()
        self._crl_cache: tuple[int, bytes] | None = None

    # --- applications ----------------------------------------------------------------------
    def apply(
        self,
        lg_code: str,
        application_id: str,
        photo_b64: str,
        channel: str,
        resolved: dict[str, Any] | None = None,
        pin_verifiers: dict[str, Any] | None = None,
        reissue: bool = False,
    ) -> dict[str, Any]:
        """Receive an application.  Online and postal ones are resolved with the municipality that
        printed the 申請書ID; counter ones (申請時来庁方式) arrive resolved from the municipality."""
        if channel not in CHANNELS:
            raise BusinessError(f"channel must be one of {', '.join(CHANNELS)}")
        if not (isinstance(application_id, str) and len(application_id) == 23 and application_id.isdigit()):
            raise BusinessError("the 申請書ID must be 23 digits")
        try:
            photo = base64.b64decode(photo_b64, validate=True)
        except (ValueError, TypeError):
            raise BusinessError("the photo must be base64-encoded JPEG or PNG") from None
        try:
            photo_type = validate_photo(photo)
        except PhotoError as exc:
            raise BusinessError(f"photo refused: {exc}") from None
        if resolved is None:
            try:
                org = self.municipality_org(lg_code)
            except TopologyError:
                raise NotFound("no municipality with this 地方公共団体コード in this deployment") from None
            try:
                resolved = self.call(
                    org,
                    "POST",
                    "/api/cards/applications/resolve",
                    {"application_id": application_id, "channel": channel},
                )
            except RemoteError as exc:
                error = {404: NotFound, 409: Conflict}.get(exc.status, BusinessError)
                raise error(f"the municipality refused the application: {exc.detail}") from None
            except Unreachable:
                raise BusinessError("the municipality cannot be reached now; try again later") from None
            assert isinstance(resolved, dict)
        code = validate_resident_code(str(resolved["resident_code"]))
        mode = str(resolved["mode"])
        if mode not in MODES:
            raise BusinessError(f"unknown issuance mode {mode!r}")
        if mode == "申請時来庁方式" and channel == "counter" and not pin_verifiers:
            raise BusinessError("an application at the counter (申請時来庁方式) carries the PINs")
        four = {k: str(resolved["four"][k]) for k in ("name", "kana", "address", "birth_date", "sex")}
        with self.db.transaction() as s:
            rec = s.get(IdentityRecord, code)
            if rec is None or rec.status != "current":
                raise Conflict("this person is not a current resident in 住基ネット")
            if not same_four(four, four_of_record(rec)):
                raise Conflict(
                    "the 4情報 of this application differ from 住基ネット; the municipality must update first"
                )
            pending = s.scalar(
                select(func.count())
                .select_from(CardApplication)
                .where(CardApplication.resident_code == code, CardApplication.status == "received")
            )
            if pending:
                raise Conflict("an application for this person is already being processed")
            active = s.scalar(
                select(func.count())
                .select_from(Card)
                .where(Card.resident_code == code, Card.status.in_(ACTIVE_CARD))
            )
            if active and not reissue:
                raise Conflict(
                    "this person already holds a card; return it or report it lost before reapplying"
                )
            app = CardApplication(
                application_id=application_id,
                municipality=lg_code,
                resident_code=code,
                mode=mode,
                channel=channel,
                reissue=reissue,
                four=four,
                photo=photo,
                photo_type=photo_type,
                pin_verifiers=pin_verifiers,
                status="received",
                received_at=now(),
            )
            s.add(app)
            s.flush()
            app_no = app.id
        log.info("card application %d received (%s, %s) for %s", app_no, channel, mode, lg_code)
        return {"application": app_no, "status": "received", "mode": mode}

    # --- manufacture -----------------------------------------------------------------------
    def manufacture(self, limit: int = 1000) -> dict[str, int]:
        """The card centre's batch: make every pending card, deliver or mail it, finish stragglers."""
        made = stale = delivered = 0
        with self._batch_lock:
            with self.db.transaction() as s:
                ids = list(
                    s.scalars(
                        select(CardApplication.id)
                        .where(CardApplication.status == "received")
                        .order_by(CardApplication.id)
                        .limit(limit)
                    )
                )
            for app_id in ids:
                outcome = self._make_one(app_id)
                made += outcome == "manufactured"
                stale += outcome == "stale"
            delivered = self._deliver_pending()
        return {"manufactured": made, "stale": stale, "delivered": delivered}

    def _make_one(self, app_id: int) -> str:
        with self.db.transaction() as s:
            app = s.get(CardApplication, app_id, with_for_update=True)
            if app is None or app.status != "received":
                return "skipped"
            rec = s.get(IdentityRecord, app.resident_code)
            if rec is None or rec.status != "current" or not same_four(app.four, four_of_record(rec)):
                # A stale application (転居, 氏名変更 … since it was made) is never turned into a card.
                app.status, app.reason = "stale", "the 4情報 changed after the application; apply again"
                return "stale"
            if not rec.my_number:
                app.status, app.reason = "stale", "no 個人番号 is recorded for this person"
                return "stale"
            issued_on = today_jst()
            birth = rec.birth_date
            expires = card_expiry(birth, issued_on)
            serial = _card_serial()
            face = {
                **four_of_record(rec),
                "issued_on": issued_on.isoformat(),
                "expires_on": expires.isoformat(),
                "municipality": app.municipality,
                "municipality_name": self.municipality_name(app.municipality),
                "photo": base64.b64encode(app.photo).decode(),
                "photo_type": app.photo_type,
            }
            chip = Chip.manufacture(
                serial, face, rec.my_number, rec.resident_code, may_hold_signing_certificate(birth, issued_on)
            )
            status = "manufactured"
            if app.mode == "申請時来庁方式":
                # PINs were given at the counter with the application; the card is made ready to use
                # and mailed (本人限定受取郵便).
                assert app.pin_verifiers
                verifiers = dict(app.pin_verifiers)
                if not chip.has_signing:
                    verifiers.pop("sign", None)
                chip.set_pin_verifiers(verifiers)
                self._issue_certificates(s, chip, rec, expires, "J-LIS")
                app.pin_verifiers = None  # never kept after the card is made
                status = "mailed"
            card = Card(
                card_serial=serial,
                application=app.id,
                municipality=app.municipality,
                resident_code=rec.resident_code,
                mode=app.mode,
                status=status,
                issued_on=issued_on,
                expires_on=expires,
                four=four_of_record(rec),
                chip=chip.dumps(),
                manufactured_at=now(),
                updated_at=now(),
            )
            s.add(card)
            app.status, app.card_serial = "manufactured", serial
            self._event(s, serial, "製造", "J-LIS", {"mode": app.mode, "reissue": app.reissue})
            if status == "mailed":
                self._event(s, serial, "郵送", "J-LIS", {})
        return "manufactured"

    def _deliver_pending(self) -> int:
        """Send made cards (交付時来庁方式) to their municipality; erase the chip once it has left."""
        with self.db.transaction() as s:
            cards = list(
                s.execute(
                    select(Card.card_serial, Card.municipality, Card.application, Card.chip, Card.expires_on)
                    .where(Card.status == "manufactured")
                    .order_by(Card.card_serial)
                ).all()
            )
            app_ids = {c.application: None for c in cards}
            for a in s.scalars(select(CardApplication).where(CardApplication.id.in_(list(app_ids)))):
                app_ids[a.id] = a.application_id  # type: ignore[assignment]
        sent = 0
        for serial, lg_code, app_no, chip, expires in cards:
            try:
                self.call(
                    self.municipality_org(lg_code),
                    "POST",
                    "/api/cards/deliveries",
                    {
                        "card_serial": serial,
                        "application_id": app_ids[app_no],
                        "expires_on": expires.isoformat(),
                        "chip": chip,
                    },
                )
            except Exception as exc:  # the next batch delivers it again (delivery is idempotent)
                log.warning("delivery of a card to %s failed: %s", lg_code, type(exc).__name__)
                continue
            with self.db.transaction() as s:
                card = s.get(Card, serial, with_for_update=True)
                if card is not None and card.status == "manufactured":
                    card.status, card.chip, card.updated_at = "delivered", None, now()
                    self._event(s, serial, "市町村へ送付", "J-LIS", {"municipality": lg_code})
                    sent += 1
        return sent

    # --- certificates ----------------------------------------------------------------------
    def _issue_certificates(
        self, s: Session, chip: Chip, rec: IdentityRecord, card_expires: dt.date, actor: str
    ) -> None:
        issued_on = today_jst()
        not_after = _end_of_day_utc(certificate_expiry(rec.birth_date, issued_on, card_expires))
        four = four_of_record(rec)
        kinds = [KIND_AUTH] + ([KIND_SIGN] if chip.has_signing else [])
        for kind in kinds:
            cert = self.ca.issue(
                kind,
                chip.public_key_pem(kind),
                not_after,
                self.crl_url,
                {k: four[k] for k in FOUR_KEYS} if kind == KIND_SIGN else None,
            )
            der = cert.public_bytes(Encoding.DER)
            chip.install_certificate(kind, der)
            s.add(
                JpkiCertificate(
                    serial=str(cert.serial_number),
                    kind=kind,
                    card_serial=chip.card_serial,
                    resident_code=rec.resident_code,
                    four=four if kind == KIND_SIGN else {},
                    not_before=cert.not_valid_before_utc.replace(tzinfo=None),
                    not_after=cert.not_valid_after_utc.replace(tzinfo=None),
                    status="good",
                    der=der,
                )
            )
        self._event(s, chip.card_serial, "電子証明書発行", actor, {"kinds": kinds})

    def issue_at_counter(
        self,
        lg_code: str,
        card_serial: str,
        auth_public_key: str,
        sign_public_key: str | None,
        issue_key: str | None = None,
    ) -> dict[str, Any]:
        """交付時来庁方式: at hand-over the municipality's terminal sends the chip's public keys; the CA
        issues the certificates and the card becomes issued.

        ``issue_key`` is the municipality's idempotency key (recorded before it called): asked again
        with the same key and the same public keys — its process died before it saved the card — the
        answer is the same certificates, never a second pair."""
        key_hash = hashlib.sha256(issue_key.encode()).hexdigest() if issue_key else None
        with self.db.transaction() as s:
            card = self._card_of(s, card_serial, lg_code, for_update=True)
            if (
                key_hash is not None
                and card.issue_key is not None
                and hmac.compare_digest(card.issue_key, key_hash)
            ):
                return self._issued_again(s, card, auth_public_key, sign_public_key, lg_code)
            if card.status != "delivered":
                raise Conflict(f"this card is {card.status}, not waiting at the municipality for hand-over")
            rec = s.get(IdentityRecord, card.resident_code)
            if rec is None or rec.status != "current":
                raise Conflict("the holder is no longer a current resident; the card cannot be issued")
            issued_on = today_jst()
            stub = _PublicKeys(card_serial, auth_public_key, sign_public_key)
            if sign_public_key and not may_hold_signing_certificate(rec.birth_date, issued_on):
                raise BusinessError("a 署名用電子証明書 is not issued under 15")
            self._issue_certificates(s, stub, rec, card.expires_on, lg_code)  # type: ignore[arg-type]
            card.status, card.updated_at, card.issue_key = "issued", now(), key_hash
            self._event(s, card_serial, "交付", lg_code, {})
            return {"auth": stub.certs.get(KIND_AUTH), "sign": stub.certs.get(KIND_SIGN)}

    def _issued_again(
        self, s: Session, card: Card, auth_public_key: str, sign_public_key: str | None, lg_code: str
    ) -> dict[str, Any]:
        """The answer to a repeated issuance: the certificates already made for these very keys."""
        certs = {
            c.kind: c
            for c in s.scalars(
                select(JpkiCertificate)
                .where(JpkiCertificate.card_serial == card.card_serial)
                .order_by(JpkiCertificate.not_before)
            )
        }
        wanted = {KIND_AUTH: auth_public_key, KIND_SIGN: sign_public_key}
        if set(certs) != {k for k, v in wanted.items() if v} or any(
            _public_pem(c.der) != _normal_pem(wanted[k]) for k, c in certs.items()
        ):
            raise Conflict("this card's certificates were issued for other keys; the retry does not match")
        self._event(s, card.card_serial, "交付（再要求）", lg_code, {"kinds": sorted(certs)})
        answer = {k: base64.b64encode(c.der).decode() for k, c in certs.items()}
        return {"auth": answer.get(KIND_AUTH), "sign": answer.get(KIND_SIGN), "repeated": True}

    def receive_by_post(self, application_id: str, birth_date: str) -> str:
        """本人限定受取郵便: the holder receives a mailed card (申請時来庁方式) once."""
        with self.db.transaction() as s:
            card = s.scalar(
                select(Card)
                .join(CardApplication, CardApplication.id == Card.application)
                .where(CardApplication.application_id == application_id, Card.status == "mailed")
                .with_for_update()
            )
            if card is None or str(card.four.get("birth_date")) != birth_date or card.chip is None:
                raise NotFound("no card is in the post for this 申請書ID and 生年月日")
            chip = card.chip
            card.status, card.chip, card.updated_at = "issued", None, now()
            self._event(s, card.card_serial, "交付", "本人限定受取郵便", {})
            return chip

    # --- the card's life ----------------------------------------------------------------------
    def suspend(
        self, card_serial: str, name: str, birth_date: str, via: str = "24時間コールセンター"
    ) -> dict[str, Any]:
        """一時停止 by the 24-hour line: card and both certificates on hold until the counter lifts it."""
        with self.db.transaction() as s:
            card = s.get(Card, card_serial, with_for_update=True)
            if (
                card is None
                or str(card.four.get("birth_date")) != birth_date
                or _nospace(str(card.four.get("name"))) != _nospace(name)
            ):
                raise NotFound("no card matches this card number, 氏名 and 生年月日")
            if card.status == "suspended":
                return {"card_serial": card_serial, "status": "suspended", "already": True}
            if card.status != "issued":
                raise Conflict(f"this card is {card.status}; only an issued card can be suspended")
            card.status, card.updated_at = "suspended", now()
            self._set_certificates(s, card_serial, "suspended", "certificate_hold", only_from=("good",))
            self._event(s, card_serial, "一時停止", via, {})
        return {"card_serial": card_serial, "status": "suspended"}

    def resume(self, lg_code: str, card_serial: str) -> dict[str, Any]:
        """一時停止解除: only at the counter of the municipality, after the holder's identity is checked."""
        with self.db.transaction() as s:
            card = self._card_of(s, card_serial, None, for_update=True)
            if card.status != "suspended":
                raise Conflict(f"this card is {card.status}, not suspended")
            card.status, card.updated_at = "issued", now()
            self._set_certificates(s, card_serial, "good", None, only_from=("suspended",))
            self._event(s, card_serial, "一時停止解除", lg_code, {})
        return {"card_serial": card_serial, "status": "issued"}

    def abolish(self, actor: str, card_serial: str, reason: str) -> dict[str, Any]:
        """廃止 (紛失, 返納, 死亡, 再交付 …): final; a found card is never revived."""
        with self.db.transaction() as s:
            card = self._card_of(s, card_serial, None, for_update=True)
            if card.status == "abolished":
                raise Conflict("this card is already abolished (廃止); it cannot be used again")
            self._abolish(s, card, reason, actor)
        return {"card_serial": card_serial, "status": "abolished"}

    def _abolish(self, s: Session, card: Card, reason: str, actor: str) -> None:
        card.status, card.abolish_reason, card.updated_at, card.chip = "abolished", reason, now(), None
        crl_reason = "key_compromise" if reason == "紛失" else "cessation_of_operation"
        self._set_certificates(s, card.card_serial, "revoked", crl_reason, only_from=("good", "suspended"))
        self._event(s, card.card_serial, "廃止", actor, {"reason": reason})

    def _set_certificates(
        self,
        s: Session,
        card_serial: str,
        status: str,
        reason: str | None,
        only_from: Sequence[str],
        kind: str | None = None,
    ) -> int:
        q = select(JpkiCertificate).where(
            JpkiCertificate.card_serial == card_serial, JpkiCertificate.status.in_(list(only_from))
        )
        if kind:
            q = q.where(JpkiCertificate.kind == kind)
        n = 0
        for cert in s.scalars(q.with_for_update()):
            cert.status, cert.reason, cert.status_changed_at = status, reason, now()
            n += 1
        if n:
            self._bump_crl(s)
        return n

    def _bump_crl(self, s: Session) -> None:
        row = s.get(CardCounter, CRL_NUMBER, with_for_update=True)
        if row is None:
            s.add(CardCounter(name=CRL_NUMBER, value=1))
        else:
            row.value += 1

    def on_identity_changes(self, s: Session, records: dict[str, dict[str, Any]]) -> None:
        """Hook run inside J-LIS's 本人確認情報 transaction: register events drive the certificates.

        A 署名用電子証明書 whose 4情報 no longer match (転居, 転入, 氏名変更 …) is revoked; 死亡 or
        国外転出 revokes both certificates and abolishes the card.  The 利用者証明用 survives moves."""
        if not records:
            return
        codes = list(records)
        certs = list(
            s.scalars(
                select(JpkiCertificate)
                .where(
                    JpkiCertificate.resident_code.in_(codes),
                    JpkiCertificate.status.in_(["good", "suspended"]),
                )
                .with_for_update()
            )
        )
        if not certs:
            return
        changed = False
        ended: set[str] = set()
        for cert in certs:
            rec = records[cert.resident_code]
            gone = rec.get("status") == "removed" and rec.get("removal_reason") in ("死亡", "国外転出")
            if gone:
                cert.status, cert.reason, cert.status_changed_at = "revoked", "cessation_of_operation", now()
                ended.add(cert.card_serial)
                changed = True
            elif cert.kind == KIND_SIGN and not same_four(cert.four, four_of_record(rec)):
                cert.status, cert.reason, cert.status_changed_at = "revoked", "affiliation_changed", now()
                self._event(s, cert.card_serial, "署名用電子証明書失効", "住基ネット", {"why": "4情報の変更"})
                changed = True
        for serial in ended:
            card = s.get(Card, serial, with_for_update=True)
            if card is not None and card.status != "abolished":
                reason = str(records[card.resident_code].get("removal_reason"))
                card.status, card.abolish_reason, card.updated_at, card.chip = (
                    "abolished",
                    reason,
                    now(),
                    None,
                )
                self._event(s, serial, "廃止", "住基ネット", {"reason": reason})
        if changed:
            self._bump_crl(s)

    # --- revocation services -------------------------------------------------------------------
    def status_of(self, serial: int) -> CertStatus:
        with self.db.engine.connect() as conn:
            row = conn.execute(_STATUS, {"serial": str(serial)}).first()
        if row is None:
            return CertStatus("unknown")
        return CertStatus(row[0], row[1], row[2])

    def ocsp(self, request_der: bytes) -> bytes:
        return self.ca.ocsp_response(request_der, self.status_of)

    def crl(self) -> bytes:
        with self.db.transaction() as s:
            row = s.get(CardCounter, CRL_NUMBER)
            number = row.value if row else 0
            cached = self._crl_cache
            if cached is not None and cached[0] == number:
                return cached[1]
            revoked = [
                (
                    int(c.serial),
                    c.status_changed_at or c.not_before,
                    "certificate_hold" if c.status == "suspended" else c.reason or "unspecified",
                )
                for c in s.scalars(
                    select(JpkiCertificate).where(JpkiCertificate.status.in_(["revoked", "suspended"]))
                )
                if c.not_after > now()
            ]
        der = self.ca.crl(revoked, number)
        self._crl_cache = (number, der)
        return der

    def subscriber(self, serial: str, relying_party: str) -> dict[str, Any]:
        """利用者証明用 serial → the person, for the portal: 氏名 and a pseudonym for that portal only
        (never the 住民票コード)."""
        with self.db.engine.connect() as conn:
            row = conn.execute(_SUBSCRIBER, {"serial": serial}).first()
        if row is None:
            raise NotFound("no 利用者証明用電子証明書 with this serial (or its holder is not in 住基ネット)")
        status, code, family, given, family_kana, given_kana = row
        pseudonym = hmac.new(
            self.subscriber_key, f"{relying_party}:{code}".encode(), hashlib.sha256
        ).hexdigest()
        kana = f"{family_kana or ''}\u3000{given_kana or ''}".strip("\u3000")
        return {
            "name": f"{family}\u3000{given}",
            "kana": kana,
            "subscriber_id": pseudonym[:32],
            "status": status,
        }

    def login_check(self, serial: str, relying_party: str, ocsp_request: bytes) -> dict[str, Any]:
        """The portal's one call per login: the OCSP answer for the certificate (the same response
        the public responder gives, signed by the CA, which the portal checks as any OCSP answer)
        and, only while that certificate is good, who it belongs to.  One round trip instead of
        two, and the status is as fresh as asking the responder directly."""
        try:
            asked = ocsp.load_der_ocsp_request(ocsp_request).serial_number
        except ValueError:
            raise BusinessError("the OCSP request cannot be read") from None
        if str(asked) != serial:
            raise BusinessError("the OCSP request is about another certificate than the serial")
        der = self.ocsp(ocsp_request)
        who: dict[str, Any] | None
        try:
            who = self.subscriber(serial, relying_party)
        except NotFound:
            who = None
        if who is not None and who["status"] != "good":
            who = None  # a suspended or revoked certificate names nobody
        return {"ocsp_response": base64.b64encode(der).decode(), "subscriber": who}

    def holder_of(self, serial: str, lg_code: str) -> dict[str, Any]:
        """証明書情報連携: a certificate serial → 住民票コード, for the municipality the holder lives in
        (how an online application signed with the card reaches the right 住民票)."""
        r = IdentityRecord
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(
                    JpkiCertificate.kind, JpkiCertificate.status, r.resident_code, r.municipality, r.status
                )
                .join(r, r.resident_code == JpkiCertificate.resident_code)
                .where(JpkiCertificate.serial == serial)
            ).first()
        if row is None or row[3] != lg_code or row[4] != "current":
            raise NotFound(
                "no certificate with this serial belongs to a current resident of this municipality"
            )
        return {"kind": row[0], "status": row[1], "resident_code": row[2]}

    # --- reading -------------------------------------------------------------------------------
    def card_info(self, card_serial: str, lg_code: str | None = None) -> dict[str, Any]:
        with self.db.transaction() as s:
            card = self._card_of(s, card_serial, lg_code)
            certs = list(s.scalars(select(JpkiCertificate).where(JpkiCertificate.card_serial == card_serial)))
            events = list(
                s.scalars(
                    select(CardEvent).where(CardEvent.card_serial == card_serial).order_by(CardEvent.id)
                )
            )
            out = {
                "card_serial": card.card_serial,
                "municipality": card.municipality,
                "mode": card.mode,
                "status": card.status,
                "issued_on": card.issued_on.isoformat(),
                "expires_on": card.expires_on.isoformat(),
                "abolish_reason": card.abolish_reason,
                "certificates": [
                    {
                        "kind": c.kind,
                        "status": c.status,
                        "reason": c.reason,
                        "not_after": c.not_after.isoformat(),
                    }
                    for c in certs
                ],
                "events": [{"event": e.event, "at": e.at.isoformat(), "actor": e.actor} for e in events],
            }
            if lg_code is not None:  # the card's own municipality may know whose card it is
                out["resident_code"] = card.resident_code
            return out

    def cards_of(self, lg_code: str, resident_code: str) -> list[dict[str, Any]]:
        code = validate_resident_code(resident_code)
        with self.db.transaction() as s:
            serials = list(
                s.scalars(
                    select(Card.card_serial).where(Card.resident_code == code).order_by(Card.manufactured_at)
                )
            )
        return [self.card_info(c) for c in serials]

    def application_status(self, application: int) -> dict[str, Any]:
        with self.db.transaction() as s:
            app = s.get(CardApplication, application)
            if app is None:
                raise NotFound(f"no application {application}")
            return {
                "application": app.id,
                "status": app.status,
                "reason": app.reason,
                "card_serial": app.card_serial,
            }

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            return {
                "applications": s.scalar(select(func.count()).select_from(CardApplication)) or 0,
                "cards": s.scalar(select(func.count()).select_from(Card)) or 0,
                "certificates": s.scalar(select(func.count()).select_from(JpkiCertificate)) or 0,
            }

    # --- helpers -------------------------------------------------------------------------------
    def _card_of(self, s: Session, card_serial: str, lg_code: str | None, for_update: bool = False) -> Card:
        card = s.get(Card, card_serial, with_for_update=for_update)
        if card is None:
            raise NotFound("no card with this card number")
        if lg_code is not None and card.municipality != lg_code:
            # as /api/jpki/holder does: another municipality's card is not one this caller has
            raise NotFound("no card with this card number at this municipality")
        return card

    def _event(self, s: Session, card_serial: str, event: str, actor: str, detail: dict[str, Any]) -> None:
        s.add(CardEvent(card_serial=card_serial, event=event, at=now(), actor=actor, detail=detail))


class _PublicKeys:
    """The chip's side of a counter issuance: public keys in, certificates out (keys stay on the card)."""

    def __init__(self, card_serial: str, auth: str, sign: str | None):
        self.card_serial = card_serial
        self._keys = {KIND_AUTH: auth, KIND_SIGN: sign}
        self.certs: dict[str, str] = {}

    @property
    def has_signing(self) -> bool:
        return self._keys[KIND_SIGN] is not None

    def public_key_pem(self, kind: str) -> str:
        key = self._keys[kind]
        assert key is not None
        return key

    def install_certificate(self, kind: str, der: bytes) -> None:
        self.certs[kind] = base64.b64encode(der).decode()


# Built once: the OCSP responder and the portal's person lookup run on every login.
_STATUS = select(JpkiCertificate.status, JpkiCertificate.reason, JpkiCertificate.status_changed_at).where(
    JpkiCertificate.serial == bindparam("serial")
)
_SUBSCRIBER = (
    select(
        JpkiCertificate.status,
        IdentityRecord.resident_code,
        IdentityRecord.family_name,
        IdentityRecord.given_name,
        IdentityRecord.family_kana,
        IdentityRecord.given_kana,
    )
    .join(IdentityRecord, IdentityRecord.resident_code == JpkiCertificate.resident_code)
    .where(JpkiCertificate.serial == bindparam("serial"), JpkiCertificate.kind == KIND_AUTH)
)


def _public_pem(der: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import PublicFormat

    key = x509.load_der_x509_certificate(der).public_key()
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _normal_pem(pem: str | None) -> str | None:
    from cryptography.hazmat.primitives.serialization import PublicFormat, load_pem_public_key

    if pem is None:
        return None
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        return None
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _card_serial() -> str:
    return f"{secrets.randbelow(10**16):016d}"


def _nospace(text: str) -> str:
    return "".join(text.split())

"""The card desk's operations.  Each one is one transaction here; calls to J-LIS happen outside it."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from kojinbango.card.chip import Chip, ChipError, pin_verifier, pin_verifiers, validate_pin
from kojinbango.card.photo import PhotoError, validate_photo
from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, Conflict, NotFound, UpstreamRefused
from kojinbango.common.transport import RemoteError, SignedClient
from kojinbango.domain.cards import (
    REISSUE_CARD_FEE_YEN,
    REISSUE_CERTIFICATE_FEE_YEN,
    PinFormatError,
    may_hold_signing_certificate,
)
from kojinbango.domain.guardians import (
    is_parent,
    may_act_as_legal_representative,
    pin_needs_legal_representative,
)
from kojinbango.domain.identifiers import validate_resident_code
from kojinbango.domain.jst import today_jst
from kojinbango.municipality.cards.models import CardInSafe, CounterRecord, DeskApplication
from kojinbango.municipality.register.models import Notice, Resident, ResidentEvent
from kojinbango.municipality.register.service import full_address, now

log = logging.getLogger(__name__)

MODES = ("交付時来庁方式", "申請時来庁方式")
IDENTITY_DOCUMENTS = (
    "運転免許証",
    "パスポート",
    "在留カード",
    "身体障害者手帳",
    "住民基本台帳カード",
    "健康保険証+年金手帳",
)
FOUR_FIELDS = ("family_name", "given_name", "address", "address_extra")
ABOLISH_REASONS = ("紛失", "返納", "再交付", "その他")


def four_of(r: Resident) -> dict[str, str]:
    return {
        "name": f"{r.family_name}\u3000{r.given_name}",
        "kana": f"{r.family_kana}\u3000{r.given_kana}",
        "address": full_address(r.address, r.address_extra),
        "birth_date": r.birth_date.isoformat(),
        "sex": str(r.sex),
    }


def _check_document(identity_document: str) -> str:
    if identity_document not in IDENTITY_DOCUMENTS:
        raise BusinessError(
            "identity_document must be one of: " + "、".join(IDENTITY_DOCUMENTS) + " (本人確認書類)"
        )
    return identity_document


@dataclass(frozen=True)
class LegalRepresentative:
    """法定代理人 present at the counter: a resident (internal id) and the document they showed."""

    resident_id: int
    identity_document: str


def _check_staff(staff: str) -> str:
    staff = (staff or "").strip()
    if not staff or len(staff) > 40:
        raise BusinessError("the staff member's name or id (1-40 characters) is required")
    return staff


class CardDesk:
    """A municipality's card desk, talking to J-LIS over signed HTTP."""

    def __init__(self, db: Database, lg_code: str, name: str, mode: str, client: SignedClient, jlis_id: str):
        if mode not in MODES:
            raise ValueError(f"card issuance mode must be one of {MODES}, not {mode!r}")
        self.db = db
        self.lg_code = lg_code
        self.name = name
        self.mode = mode
        self.client = client
        self.jlis_id = jlis_id
        # Test seam (documented in docs/flows/2-cards.md): called with the card number after J-LIS
        # answered with the certificates and before the card is saved as handed over — a test makes
        # it raise to play the process dying at that point.
        self.after_certificates: Callable[[str], None] | None = None

    # --- applications ---------------------------------------------------------------------
    def find(self, resident_code: str) -> dict[str, Any]:
        """The resident and their newest 申請書ID (what the 個人番号通知書 in their hands shows)."""
        code = validate_resident_code(resident_code)
        with self.db.transaction() as s:
            r = s.scalar(select(Resident).where(Resident.resident_code == code, Resident.status == "active"))
            if r is None:
                raise NotFound("no active resident with this 住民票コード here")
            notice = self._newest_notice(s, r.id)
            found: dict[str, Any] = {
                "resident_id": r.id,
                "name": f"{r.family_name}\u3000{r.given_name}",
                "birth_date": r.birth_date.isoformat(),
                "application_id": notice.application_id if notice else None,
                "mode": self.mode,
                "lg_code": self.lg_code,
            }
        return {**found, "legal_representatives": self.legal_representatives(int(found["resident_id"]))}

    def _newest_notice(self, s: Any, resident_id: int) -> Notice | None:
        return s.scalar(
            select(Notice)
            .where(Notice.resident_id == resident_id)
            .order_by(Notice.my_number_version.desc())
            .limit(1)
        )

    def _resolve(self, s: Any, application_id: str) -> tuple[Resident, Notice]:
        if not (isinstance(application_id, str) and len(application_id) == 23 and application_id.isdigit()):
            raise BusinessError("the 申請書ID must be 23 digits")
        notice = s.scalar(select(Notice).where(Notice.application_id == application_id))
        if notice is None:
            raise NotFound("no 個人番号通知書 with this 申請書ID was issued here")
        r = s.get(Resident, notice.resident_id)
        if r is None or r.status != "active":
            raise Conflict("the person of this 申請書ID is no longer a resident here")
        newest = self._newest_notice(s, r.id)
        if newest is not None and newest.id != notice.id:
            raise Conflict(
                "this 申請書ID is from an earlier notice (the number was changed); use the newest one"
            )
        changed = [
            e
            for e in s.scalars(
                select(ResidentEvent).where(
                    ResidentEvent.resident_id == r.id, ResidentEvent.processed_at > notice.created_at
                )
            )
            if any((e.before or {}).get(f) != (e.after or {}).get(f) for f in FOUR_FIELDS if (e.before or {}))
        ]
        if changed:
            raise Conflict(
                "stale application: the 4情報 changed after this 申請書 was printed "
                f"({changed[-1].event_type}); ask the municipality for a new 申請書"
            )
        return r, notice

    def resolve(self, application_id: str, channel: str = "online") -> dict[str, Any]:
        """J-LIS asks who an online or postal application is for; the answer carries today's 4情報."""
        if self.mode == "申請時来庁方式":
            raise Conflict(
                f"{self.name} takes card applications at the counter (申請時来庁方式): bring the 申請書 to the counter"
            )
        with self.db.transaction() as s:
            r, _notice = self._resolve(s, application_id)
            s.add(
                DeskApplication(
                    application_id=application_id,
                    resident_id=r.id,
                    channel=channel,
                    mode=self.mode,
                    created_at=now(),
                )
            )
            return {"resident_code": r.resident_code, "four": four_of(r), "mode": self.mode}

    def apply_at_counter(
        self,
        application_id: str,
        photo: bytes,
        identity_document: str,
        staff: str,
        auth_pin: str | None = None,
        sign_pin: str | None = None,
        reissue: bool = False,
        legal_representative: LegalRepresentative | None = None,
    ) -> dict[str, Any]:
        """申請時来庁方式: identity is checked now and the PINs are given now (under 15: by the
        法定代理人); the card will be mailed.  (Reissue at the counter works in both modes; the fee
        is recorded.)"""
        _check_document(identity_document)
        staff = _check_staff(staff)
        if self.mode != "申請時来庁方式" and not reissue:
            raise Conflict(
                f"{self.name} issues cards by 交付時来庁方式: apply online or by post with the 申請書"
            )
        try:
            validate_photo(photo)
        except PhotoError as exc:
            raise BusinessError(f"photo refused: {exc}") from None
        representative = None
        with self.db.transaction() as s:
            r, _notice = self._resolve(s, application_id)
            rid, code, four, birth = r.id, r.resident_code, four_of(r), r.birth_date
            if self.mode == "申請時来庁方式":  # the PINs are set now
                representative = self._representative(s, r, legal_representative)
        verifiers = None
        if self.mode == "申請時来庁方式":
            if auth_pin is None:
                raise BusinessError(
                    "the PINs are set at application in 申請時来庁方式: give auth_pin (and sign_pin)"
                )
            with_sign = sign_pin is not None and may_hold_signing_certificate(birth, today_jst())
            try:
                verifiers = pin_verifiers(auth_pin, sign_pin if with_sign else None)
            except PinFormatError as exc:
                raise BusinessError(str(exc)) from None
        answer = self._jlis(
            "POST",
            "/api/cards/applications",
            {
                "application_id": application_id,
                "photo": base64.b64encode(photo).decode(),
                "resolved": {"resident_code": code, "four": four, "mode": self.mode},
                "pin_verifiers": verifiers,
                "channel": "counter",
                "reissue": reissue,
            },
        )
        fee = REISSUE_CARD_FEE_YEN + REISSUE_CERTIFICATE_FEE_YEN if reissue else 0
        with self.db.transaction() as s:
            s.add(
                DeskApplication(
                    application_id=application_id,
                    resident_id=rid,
                    channel="counter",
                    mode=self.mode,
                    created_at=now(),
                    jlis_application=int(answer["application"]),
                )
            )
            self._record(
                s,
                rid,
                None,
                "再交付申請" if reissue else "交付申請（申請時来庁）",
                staff,
                identity_document,
                fee,
                {"legal_representative": representative} if representative else None,
            )
        return {**answer, "fee_yen": fee}

    # --- delivery and hand-over (交付時来庁方式) ----------------------------------------------
    def receive_delivery(
        self, card_serial: str, application_id: str, expires_on: str, chip_text: str
    ) -> dict[str, Any]:
        """J-LIS delivers a made card; the 交付通知書 goes out to the holder.  Idempotent."""
        try:
            chip = Chip.loads(chip_text)
        except ChipError as exc:
            raise BusinessError(str(exc)) from None
        if chip.card_serial != card_serial:
            raise BusinessError("the delivered chip does not carry this card number")
        with self.db.transaction() as s:
            if s.get(CardInSafe, card_serial) is not None:
                return {"card_serial": card_serial, "status": "already received"}
            notice = s.scalar(select(Notice).where(Notice.application_id == application_id))
            if notice is None:
                raise NotFound("no notice here carries this 申請書ID")
            face = {k: v for k, v in chip.face.items()}
            s.add(
                CardInSafe(
                    card_serial=card_serial,
                    application_id=application_id,
                    resident_id=notice.resident_id,
                    chip=chip_text,
                    face=face,
                    expires_on=dt.date.fromisoformat(expires_on),
                    status="waiting",
                    received_at=now(),
                    notice_sent_at=now(),  # 交付通知書 (転送不要の葉書) sent the same day
                )
            )
        return {"card_serial": card_serial, "status": "waiting"}

    def waiting_card(self, resident_id: int) -> str | None:
        with self.db.transaction() as s:
            return s.scalar(
                select(CardInSafe.card_serial).where(
                    CardInSafe.resident_id == resident_id, CardInSafe.status == "waiting"
                )
            )

    def hand_over(
        self,
        card_serial: str,
        identity_document: str,
        staff: str,
        auth_pin: str,
        sign_pin: str | None,
        juki_pin: str | None = None,
        hojo_pin: str | None = None,
        legal_representative: LegalRepresentative | None = None,
    ) -> str:
        """交付: identity checked (photo on screen), PINs set by the holder (under 15: by the
        法定代理人), certificates issued for the keys on the chip, the card handed over.  Returns the
        card file's content.

        Recoverable: the intent (status ``issuing`` with an idempotency key) is committed before J-LIS
        is called.  If the process dies after J-LIS issued the certificates, the same hand-over asked
        again (the holder sets the PINs again; they are never stored) gets the same certificates from
        J-LIS and finishes — one card, one pair of certificates."""
        _check_document(identity_document)
        staff = _check_staff(staff)
        with self.db.transaction() as s:
            card = s.get(CardInSafe, card_serial)
            if card is None:
                raise NotFound("no card with this card number is waiting here")
            if card.status not in ("waiting", "issuing") or card.chip is None:
                raise Conflict(f"this card is {card.status}, not waiting for hand-over")
            chip = Chip.loads(card.chip)
            rid = card.resident_id
            r = s.get(Resident, rid)
            if r is None or r.status != "active":
                raise Conflict("the holder is no longer a resident here; the card cannot be handed over")
            representative = self._representative(s, r, legal_representative)
            resumed_with_sign = card.issue_with_sign if card.status == "issuing" else None
            birth = r.birth_date
        if resumed_with_sign is None:
            with_sign = (
                chip.has_signing and sign_pin is not None and may_hold_signing_certificate(birth, today_jst())
            )
        else:  # an interrupted hand-over: J-LIS may already hold certificates for exactly these keys
            with_sign = resumed_with_sign
            if with_sign and sign_pin is None:
                raise BusinessError(
                    "this hand-over was interrupted after the 署名用電子証明書 was requested; "
                    "set the 署名用 PIN again"
                )
        try:
            verifiers = pin_verifiers(auth_pin, sign_pin if with_sign else None, juki_pin, hojo_pin)
        except PinFormatError as exc:
            raise BusinessError(str(exc)) from None
        with self.db.transaction() as s:  # the intent, committed before J-LIS is asked
            card = s.get(CardInSafe, card_serial, with_for_update=True)
            assert card is not None
            if card.status == "waiting":
                card.status, card.issue_key = "issuing", secrets.token_urlsafe(24)
                card.issue_with_sign = with_sign
            elif card.status != "issuing":
                raise Conflict(f"this card is {card.status}, not waiting for hand-over")
            issue_key = card.issue_key
        if not with_sign:
            chip.remove_signing()
        answer = self._jlis(
            "POST",
            "/api/cards/issue",
            {
                "card_serial": card_serial,
                "auth_public_key": chip.public_key_pem("auth"),
                "sign_public_key": chip.public_key_pem("sign") if with_sign else None,
                "issue_key": issue_key,
            },
        )
        if self.after_certificates is not None:
            self.after_certificates(card_serial)
        chip.install_certificate("auth", base64.b64decode(answer["auth"]))
        if with_sign:
            chip.install_certificate("sign", base64.b64decode(answer["sign"]))
        chip.set_pin_verifiers(verifiers)
        with self.db.transaction() as s:
            card = s.get(CardInSafe, card_serial, with_for_update=True)
            assert card is not None
            if card.status != "issuing" or card.issue_key != issue_key:
                raise Conflict("this card was handed over by another terminal meanwhile")
            card.status, card.chip, card.handed_over_at = "handed_over", None, now()
            detail: dict[str, Any] = {"certificates_repeated": bool(answer.get("repeated"))}
            if representative:
                detail["legal_representative"] = representative
            self._record(s, rid, card_serial, "交付（暗証番号設定）", staff, identity_document, 0, detail)
        return chip.dumps()

    def interrupted_hand_overs(self) -> list[str]:
        """Cards whose hand-over was started but not finished (the process died, or J-LIS could not
        be reached): they wait for the same hand-over to be done again at the counter."""
        with self.db.transaction() as s:
            return list(
                s.scalars(
                    select(CardInSafe.card_serial)
                    .where(CardInSafe.status == "issuing")
                    .order_by(CardInSafe.card_serial)
                )
            )

    # --- 法定代理人 (under 15) ------------------------------------------------------------------
    def _representative(
        self, s: Any, holder: Resident, given: LegalRepresentative | None
    ) -> dict[str, Any] | None:
        """For a holder under 15 the PINs are set by the 法定代理人 (DOMAIN.md §6.2): a parent in
        the household, identified at the counter.  Returns what the counter record keeps of them."""
        today = today_jst()
        if not pin_needs_legal_representative(holder.birth_date, today):
            return None
        if given is None:
            raise BusinessError(
                "the holder is under 15: the PINs are set by the 法定代理人 (a parent in the holder's "
                "household), who must be identified at the counter — choose them and their 本人確認書類"
            )
        _check_document(given.identity_document)
        other = s.get(Resident, given.resident_id)
        if (
            other is None
            or other.status != "active"
            or other.id == holder.id
            or other.household_id != holder.household_id
            or not is_parent(holder.relationship, other.relationship)
        ):
            raise BusinessError(
                "the 法定代理人 must be a parent of the holder in the same household (同一世帯の親)"
            )
        if not may_act_as_legal_representative(other.birth_date, today):
            raise BusinessError("the 法定代理人 must be at least 18 years old")
        return {
            "resident_id": other.id,
            "name": f"{other.family_name}\u3000{other.given_name}",
            "relationship": other.relationship,
            "identity_document": given.identity_document,
        }

    def representatives_for_card(self, chip_text: str) -> dict[str, Any]:
        """``legal_representatives`` of the holder of a card file brought to the counter."""
        try:
            serial = Chip.loads(chip_text).card_serial
        except ChipError as exc:
            raise BusinessError(str(exc)) from None
        return self.legal_representatives(self._holder(serial))

    def legal_representatives(self, resident_id: int) -> dict[str, Any]:
        """Whether this holder's PINs need the 法定代理人, and who in the household may act as one."""
        today = today_jst()
        with self.db.transaction() as s:
            holder = s.get(Resident, resident_id)
            if holder is None:
                raise NotFound("no such resident")
            if not pin_needs_legal_representative(holder.birth_date, today):
                return {"required": False, "candidates": []}
            members = s.scalars(
                select(Resident)
                .where(
                    Resident.household_id == holder.household_id,
                    Resident.status == "active",
                    Resident.id != holder.id,
                )
                .order_by(Resident.id)
            )
            candidates = [
                {
                    "resident_id": m.id,
                    "name": f"{m.family_name}\u3000{m.given_name}",
                    "relationship": m.relationship,
                }
                for m in members
                if is_parent(holder.relationship, m.relationship)
                and may_act_as_legal_representative(m.birth_date, today)
            ]
        return {"required": True, "candidates": candidates}

    # --- after issuance ---------------------------------------------------------------------
    def reset_pin(
        self,
        chip_text: str,
        which: str,
        new_pin: str,
        identity_document: str,
        staff: str,
        legal_representative: LegalRepresentative | None = None,
    ) -> str:
        """暗証番号の再設定 at the counter after identity verification: unlocks a locked PIN.
        For a holder under 15 the 法定代理人 sets it and is recorded."""
        _check_document(identity_document)
        staff = _check_staff(staff)
        try:
            chip = Chip.loads(chip_text)
            validate_pin(which, new_pin)
        except (ChipError, PinFormatError, KeyError) as exc:
            raise BusinessError(str(exc) if not isinstance(exc, KeyError) else "unknown PIN kind") from None
        rid = self._holder(chip.card_serial)
        with self.db.transaction() as s:
            holder = s.get(Resident, rid)
            if holder is None:
                raise NotFound("the holder of this card is not in this register")
            representative = self._representative(s, holder, legal_representative)
        try:
            chip.set_pin_verifiers({which: pin_verifier(new_pin)})
        except ChipError as exc:
            raise BusinessError(str(exc)) from None
        detail = {"legal_representative": representative} if representative else None
        with self.db.transaction() as s:
            self._record(
                s, rid, chip.card_serial, f"暗証番号再設定（{which}）", staff, identity_document, 0, detail
            )
        return chip.dumps()

    def lift_suspension(self, card_serial: str, identity_document: str, staff: str) -> dict[str, Any]:
        """一時停止解除: only here, with the holder present and identified."""
        _check_document(identity_document)
        staff = _check_staff(staff)
        rid = self._holder(card_serial)
        answer = self._jlis("POST", "/api/cards/resume", {"card_serial": card_serial})
        with self.db.transaction() as s:
            self._record(s, rid, card_serial, "一時停止解除", staff, identity_document, 0)
        return dict(answer)

    def abolish(
        self, card_serial: str, reason: str, staff: str, identity_document: str | None = None
    ) -> dict[str, Any]:
        """廃止: 紛失届, 返納 (the card is taken back and punched), or before a reissue."""
        if reason not in ABOLISH_REASONS:
            raise BusinessError("reason must be one of " + "、".join(ABOLISH_REASONS))
        staff = _check_staff(staff)
        rid = self._holder(card_serial)
        answer = self._jlis("POST", "/api/cards/abolish", {"card_serial": card_serial, "reason": reason})
        with self.db.transaction() as s:
            self._record(s, rid, card_serial, f"廃止（{reason}）", staff, identity_document, 0)
        return dict(answer)

    def card_status(self, card_serial: str) -> dict[str, Any]:
        return dict(self._jlis("POST", "/api/cards/info", {"card_serial": card_serial}))

    # --- helpers ------------------------------------------------------------------------------
    def _jlis(self, method: str, path: str, payload: Any) -> Any:
        """A signed call to J-LIS; its refusal becomes this desk's refusal with the same meaning.
        J-LIS refusing the municipality's own call (401/403: its key or certificate is not trusted
        there) is no fault of the desk's caller: that is a 502, not the caller's 401."""
        try:
            return self.client.call(self.jlis_id, method, path, payload)
        except RemoteError as exc:
            if exc.status in (401, 403):
                log.warning(
                    "J-LIS refused this municipality's call %s (%s): %s", path, exc.status, exc.detail
                )
                raise UpstreamRefused(
                    "J-LIS refused this municipality's signed request (its key or certificate is not"
                    " accepted there); ask this municipality's system administrator"
                ) from None
            error = {404: NotFound, 409: Conflict}.get(exc.status, BusinessError)
            raise error(f"J-LIS: {exc.detail}") from None

    def _holder(self, card_serial: str) -> int:
        """The resident a card of this municipality belongs to (from the safe, or J-LIS's record)."""
        with self.db.transaction() as s:
            card = s.get(CardInSafe, card_serial)
            if card is not None:
                return card.resident_id
        # 申請時来庁方式: the card was mailed by J-LIS; its record names the holder's 住民票コード.
        info = self.card_status(card_serial)
        with self.db.transaction() as s:
            rid = s.scalar(select(Resident.id).where(Resident.resident_code == info["resident_code"]))
            if rid is None:
                raise NotFound("this card was not issued to a resident of this municipality")
            return int(rid)

    def _record(
        self,
        s: Any,
        resident_id: int,
        card_serial: str | None,
        action: str,
        staff: str,
        document: str | None,
        fee: int,
        detail: dict[str, Any] | None = None,
    ) -> None:
        s.add(
            CounterRecord(
                resident_id=resident_id,
                card_serial=card_serial,
                action=action,
                staff=staff,
                identity_document=document,
                fee_yen=fee,
                at=now(),
                detail=detail or {},
            )
        )

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            return {
                "waiting": s.scalar(
                    select(func.count()).select_from(CardInSafe).where(CardInSafe.status == "waiting")
                )
                or 0,
                "handed_over": s.scalar(
                    select(func.count()).select_from(CardInSafe).where(CardInSafe.status == "handed_over")
                )
                or 0,
            }


def card_issuance_mode(topology: Any, org_id: str) -> str:
    """The municipality's chosen issuance option (topology setting ``card_issuance``); 交付時来庁方式
    by default."""
    modes = topology.settings.get("card_issuance", {})
    mode = modes.get(org_id, "交付時来庁方式") if isinstance(modes, dict) else "交付時来庁方式"
    return str(mode)

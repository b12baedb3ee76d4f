"""The card holder's side, for the CLI and the demo: apply and receive a card, call the 24-hour line,
log in to the portal, open a bank account — each over the organisations' HTTP interfaces.

The commands work on a data directory whose organisations are already serving (``kojinbango demo``)
or, when nothing answers, start them in this process for the duration of the command.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from kojinbango.card.chip import validate_pin
from kojinbango.card.photo import synthetic_photo
from kojinbango.card.reader import CardError, CardReader, write_card
from kojinbango.card.relying import login_message
from kojinbango.common.topology import Topology, TopologyError
from kojinbango.common.transport import INTERNAL_PREFIXES, RemoteError, SignedClient, Unreachable, http_client
from kojinbango.domain.cards import PinFormatError
from kojinbango.domain.clock import now_aware
from kojinbango.domain.jst import today_jst

IDENTITY_DOCUMENT = "運転免許証"
STAFF = "窓口（デモ）"


class HolderError(Exception):
    """A step failed; ``reason`` is a stable word, ``message`` says what happened (no identifiers)."""

    def __init__(self, reason: str, message: str, tries_left: int | None = None):
        super().__init__(message)
        self.reason, self.message, self.tries_left = reason, message, tries_left

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reason": self.reason, "message": self.message}
        if self.tries_left is not None:
            out["tries_left"] = self.tries_left
        return out


def load_topology(data_dir: Path) -> Topology:
    from kojinbango.nation import add_card_organisations

    path = data_dir / "topology.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{data_dir} holds no nation yet: run `kojinbango init --data-dir {data_dir}` first"
        )
    return add_card_organisations(Topology.load(path))


def _serving(topology: Topology) -> bool:
    from cryptography.hazmat.primitives import hashes

    from kojinbango.common.pki import load_certificate

    answered = 0
    for org in topology.organisations.values():
        mine = load_certificate(topology.resolve(org.certificate)).fingerprint(hashes.SHA256()).hex()
        try:
            r = httpx.get(org.base_url.rstrip("/") + "/healthz", timeout=1.0)
            # only this deployment's organisation counts, not another data directory's on the same port
            if r.status_code == 200 and r.json().get("certificate_sha256") == mine:
                answered += 1
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
    if answered and answered != len(topology.organisations):
        raise HolderError(
            "partly_running",
            f"only {answered} of {len(topology.organisations)} organisations of this data directory answer; "
            "start them all (kojinbango demo) or stop them all",
        )
    return answered == len(topology.organisations)


@contextmanager
def nation_urls(data_dir: Path) -> Iterator[tuple[Topology, dict[str, str]]]:
    """The organisations' URLs: the running demo's, or an in-process nation's for this command."""
    topology = load_topology(data_dir)
    if _serving(topology):
        yield topology, topology.directory()
        return
    from kojinbango.nation import running

    with running(data_dir) as nation:
        yield nation.topology, nation.urls


class Client:
    """JSON over HTTP to the organisations' public, staff and resident routes.

    Calls of an organisation's internal interfaces (``/staff/cards/api/…``, ``INTERNAL_PREFIXES``)
    are its own systems at work: they are signed with that organisation's key from this data
    directory, and its signed answer is checked."""

    def __init__(self, topology: Topology, urls: dict[str, str]):
        self.topology = topology
        self.urls = urls
        self.http = http_client(timeout=120.0)
        self._signed: dict[str, SignedClient] = {}

    def close(self) -> None:
        self.http.close()
        for signed in self._signed.values():
            signed.close()
        self._signed.clear()

    def _as_org(self, org_id: str) -> SignedClient:
        """A client signing with ``org_id``'s own credentials, for calls of its internal interfaces."""
        if org_id not in self._signed:
            try:
                creds = self.topology.credentials(org_id)
            except TopologyError as exc:
                raise HolderError("no_credentials", str(exc)) from None
            self._signed[org_id] = SignedClient(
                creds, self.topology.trust_store(), {org_id: self.urls[org_id]}, timeout=120.0
            )
        return self._signed[org_id]

    def post(self, org_id: str, path: str, payload: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        try:
            if path.startswith(INTERNAL_PREFIXES):
                r = self._as_org(org_id).send(org_id, "POST", path, payload)
            else:
                r = self.http.post(self.urls[org_id].rstrip("/") + path, json=payload)
        except httpx.TransportError as exc:
            raise HolderError(
                "unreachable", f"{org_id} could not be reached ({type(exc).__name__})"
            ) from None
        except Unreachable as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "no address"
            raise HolderError("unreachable", f"{org_id} could not be reached ({cause})") from None
        except RemoteError as exc:  # its answer was not signed by it, or replayed
            raise HolderError("bad_answer", str(exc)) from None
        if r.status_code in ok:
            return r.json()
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text}
        reason = body.get("reason") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else body
        raise HolderError(reason or f"http_{r.status_code}", f"{org_id}: {detail}")

    def jlis(self) -> str:
        return self.topology.of_kind("jlis")[0].id

    def portal(self) -> str:
        return self.topology.of_kind("portal")[0].id

    def bank(self) -> str:
        return self.topology.of_kind("relying_party")[0].id


def issue_card(
    client: Client,
    resident_code: str,
    auth_pin: str,
    sign_pin: str | None,
    out: Path | None = None,
    photo: bytes | None = None,
) -> dict[str, Any]:
    """Application → manufacture → issuance for one resident, in the municipality's own option."""
    try:
        validate_pin("auth", auth_pin)
        if sign_pin is not None:
            validate_pin("sign", sign_pin)
    except PinFormatError as exc:
        raise HolderError("bad_pin_format", str(exc)) from None
    found = None
    for muni in client.topology.of_kind("municipality"):
        try:
            found = client.post(muni.id, "/staff/cards/api/find", {"resident_code": resident_code})
            org = muni
            break
        except HolderError as exc:
            if exc.reason in ("http_404",):
                continue
            raise
    if found is None:
        raise HolderError(
            "not_found", "no municipality of this nation has an active resident with this 住民票コード"
        )
    if not found.get("application_id"):
        raise HolderError("no_notice", "this resident has no 個人番号通知書 (and so no 申請書ID) yet")
    application_id = found["application_id"]
    # Under 15 the PINs are set by the 法定代理人: this command plays the parent in the household.
    representative = None
    if (found.get("legal_representatives") or {}).get("required"):
        candidates = found["legal_representatives"]["candidates"]
        if not candidates:
            raise HolderError(
                "no_legal_representative",
                "the holder is under 15 and no parent in the household can act as 法定代理人",
            )
        representative = {"resident_id": candidates[0]["resident_id"], "identity_document": IDENTITY_DOCUMENT}
    photo = photo or synthetic_photo(int(hashlib.sha256(application_id.encode()).hexdigest()[:8], 16))
    photo_b64 = base64.b64encode(photo).decode()
    jlis = client.jlis()
    if found["mode"] == "申請時来庁方式":
        client.post(
            org.id,
            "/staff/cards/api/apply",
            {
                "application_id": application_id,
                "photo": photo_b64,
                "identity_document": IDENTITY_DOCUMENT,
                "staff": STAFF,
                "auth_pin": auth_pin,
                "sign_pin": sign_pin,
                "legal_representative": representative,
            },
        )
        made = client.post(jlis, "/staff/cards/manufacture")
        if not made["manufactured"]:
            raise HolderError(
                "not_manufactured", "the card centre did not make the card (stale application?)"
            )
        text = client.post(
            jlis, "/cards/post/receive", {"application_id": application_id, "birth_date": found["birth_date"]}
        )["card"]
    else:
        client.post(
            jlis,
            "/cards/apply",
            {"lg_code": found["lg_code"], "application_id": application_id, "photo": photo_b64},
        )
        made = client.post(jlis, "/staff/cards/manufacture")
        if not made["manufactured"]:
            raise HolderError(
                "not_manufactured", "the card centre did not make the card (stale application?)"
            )
        serial = client.post(org.id, "/staff/cards/api/waiting", {"resident_code": resident_code})[
            "card_serial"
        ]
        if not serial:
            raise HolderError("not_delivered", "the card has not reached the municipality")
        text = client.post(
            org.id,
            "/staff/cards/api/hand-over",
            {
                "card_serial": serial,
                "identity_document": IDENTITY_DOCUMENT,
                "staff": STAFF,
                "auth_pin": auth_pin,
                "sign_pin": sign_pin,
                "legal_representative": representative,
            },
        )["card"]
    from kojinbango.card.chip import Chip

    chip = Chip.loads(text)
    out = out or client.topology.root / "cards" / f"card-{chip.card_serial}.json"
    write_card(out, chip)
    face = chip.face
    return {
        "card": str(out),
        "card_serial": chip.card_serial,
        "mode": found["mode"],
        "municipality": org.id,
        "name": face["name"],
        "expires_on": face["expires_on"],
        "certificates": sorted(
            k for k in ("auth", "sign") if chip.data["jpki"].get(k) and chip.certificate_der(k)
        ),
    }


def suspend_card(client: Client, card: Path) -> dict[str, Any]:
    """The 24-hour line: the caller gives the card number, 氏名 and 生年月日."""
    reader = _reader(card)
    info = reader.info()
    return dict(
        client.post(
            client.jlis(),
            "/cards/callcentre/suspend",
            {
                "card_serial": info["card_serial"],
                "name": info["face"]["name"],
                "birth_date": info["face"]["birth_date"],
            },
        )
    )


def _reader(card: Path) -> CardReader:
    try:
        return CardReader(card)
    except CardError as exc:
        raise HolderError(exc.reason, exc.message) from None


def _check_expiry(reader: CardReader, today: dt.date | None = None) -> None:
    expires = dt.date.fromisoformat(reader.info()["face"]["expires_on"])
    if expires < (today or today_jst()):
        raise HolderError("card_expired", f"the card expired on {expires.isoformat()}; apply for a new one")


def portal_login(client: Client, card: Path, pin: str) -> dict[str, Any]:
    """Challenge from the portal, signature by the card after the PIN, verification by the portal."""
    reader = _reader(card)
    _check_expiry(reader)
    try:
        cert = reader.auth_certificate()
    except CardError as exc:
        raise HolderError(exc.reason, exc.message) from None
    portal = client.portal()
    ch = client.post(portal, "/login/challenge")
    try:
        sig = reader.sign_auth(pin, login_message(ch["portal"], ch["challenge_id"], ch["challenge"]))
    except CardError as exc:
        raise HolderError(exc.reason, exc.message, exc.tries_left) from None
    result = client.post(
        portal,
        "/login",
        {
            "challenge_id": ch["challenge_id"],
            "certificate": base64.b64encode(cert).decode(),
            "signature": base64.b64encode(sig).decode(),
        },
    )
    return {
        "logged_in": True,
        "name": result["name"],
        "kana": result["kana"],
        "portal": portal,
        "session_expires_at": result["session_expires_at"],
    }


def open_bank_account(
    client: Client, card: Path, sign_pin: str, account_type: str = "普通預金"
) -> dict[str, Any]:
    """A signed account-opening application with the 署名用電子証明書."""
    from kojinbango.relying_party.service import application_bytes

    reader = _reader(card)
    _check_expiry(reader)
    bank = client.bank()
    ch = client.post(bank, "/accounts/challenge")
    application = {
        "bank": ch["bank"],
        "challenge_id": ch["challenge_id"],
        "challenge": ch["challenge"],
        "account_type": account_type,
        "applied_at": now_aware().isoformat(timespec="seconds"),
    }
    try:
        sig, cert = reader.sign_with_signing_key(sign_pin, application_bytes(application))
    except CardError as exc:
        raise HolderError(exc.reason, exc.message, exc.tries_left) from None
    result = client.post(
        bank,
        "/accounts/open",
        {
            "application": application,
            "certificate": base64.b64encode(cert).decode(),
            "signature": base64.b64encode(sig).decode(),
        },
    )
    return {"opened": True, **result}


def counter(client: Client, card: Path, action: str, **extra: Any) -> dict[str, Any]:
    """Counter work on the holder's card at its municipality: ``resume`` (一時停止解除) or
    ``pin-reset`` (returns the updated card file)."""
    reader = _reader(card)
    chip = reader.chip()
    info = None
    for muni in client.topology.of_kind("municipality"):
        try:
            if action == "resume":
                info = client.post(
                    muni.id,
                    "/staff/cards/api/resume",
                    {"card_serial": chip.card_serial, "identity_document": IDENTITY_DOCUMENT, "staff": STAFF},
                )
            else:
                representative = extra.get("legal_representative")
                wanted = client.post(muni.id, "/staff/cards/api/representatives", {"card": chip.dumps()})
                if representative is None and wanted["required"]:
                    if not wanted["candidates"]:
                        raise HolderError(
                            "no_legal_representative",
                            "the holder is under 15 and no parent in the household can act as 法定代理人",
                        )
                    # under 15 the 法定代理人 resets the PIN: this command plays the parent
                    representative = {
                        "resident_id": wanted["candidates"][0]["resident_id"],
                        "identity_document": IDENTITY_DOCUMENT,
                    }
                answer = client.post(
                    muni.id,
                    "/staff/cards/api/pin-reset",
                    {
                        "card": chip.dumps(),
                        "which": extra["which"],
                        "new_pin": extra["new_pin"],
                        "identity_document": IDENTITY_DOCUMENT,
                        "staff": STAFF,
                        "legal_representative": representative,
                    },
                )
                from kojinbango.card.chip import Chip

                write_card(card, Chip.loads(answer["card"]))
                info = {"card_serial": chip.card_serial, "pin_reset": extra["which"]}
            break
        except HolderError as exc:
            # Not this municipality's card (404), or a municipality whose key this machine does not
            # hold (it runs elsewhere): ask the next.  A refused signature (401) is a real fault.
            if exc.reason in ("http_404", "no_credentials"):
                continue
            raise
    if info is None:
        raise HolderError("not_found", "no municipality of this nation issued this card")
    return dict(info)


DEMO_CARDS = "cards/demo-cards.json"
DEMO_AUTH_PIN, DEMO_SIGN_PIN = "1234", "ABC123"


def demo_cards(topology: Topology, urls: dict[str, str]) -> list[dict[str, Any]]:
    """`kojinbango demo`: cards for a few adults in both issuance options, one of them suspended by
    the 24-hour line (to see the portal refuse it).  Issued once per data directory."""
    import json

    from sqlalchemy import select

    from kojinbango.common.db import Database
    from kojinbango.municipality.register.models import Resident

    state = topology.root / DEMO_CARDS
    if state.exists():
        cards: list[dict[str, Any]] = json.loads(state.read_text(encoding="utf-8"))
        if all(Path(c["card"]).exists() for c in cards):
            return cards
    client = Client(topology, urls)
    cards = []
    try:
        plan = [(m.id, k) for k, m in enumerate(topology.of_kind("municipality"))] + [
            (topology.of_kind("municipality")[0].id, 2)
        ]
        today = today_jst()
        for org_id, k in plan:
            db = Database(topology.database_url(org_id))
            try:
                with db.transaction() as s:
                    candidates = list(
                        s.scalars(
                            select(Resident.resident_code)
                            .where(
                                Resident.status == "active",
                                Resident.birth_date < today.replace(year=today.year - 20),
                            )
                            .order_by(Resident.id)
                            .limit(60)
                        )
                    )
            finally:
                db.dispose()
            for code in candidates[k * 20 :]:
                try:
                    res = issue_card(client, code, DEMO_AUTH_PIN, DEMO_SIGN_PIN)
                except HolderError:
                    continue  # e.g. already holds a card, or a stale notice: try the next person
                entry = {
                    "card": res["card"],
                    "name": res["name"],
                    "municipality": res["municipality"],
                    "mode": res["mode"],
                    "auth_pin": DEMO_AUTH_PIN,
                    "sign_pin": DEMO_SIGN_PIN,
                    "state": "issued",
                }
                if len(cards) == 2:
                    suspend_card(client, Path(res["card"]))
                    entry["state"] = "suspended (24時間コールセンター)"
                cards.append(entry)
                break
    finally:
        client.close()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(cards, ensure_ascii=False, indent=1), encoding="utf-8")
    return cards

"""Assemble a municipality as a service: its register (with CS) and staff pages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from kojinbango.card.relying import JpkiVerifier
from kojinbango.common.app import OrgRuntime, close_sessions_on_shutdown, org_app
from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.linkage import LinkageSettings
from kojinbango.common.pki import load_certificate
from kojinbango.common.topology import Topology
from kojinbango.common.transport import INTERNAL_PREFIXES, SignedClient
from kojinbango.documents.pades import DocumentSigner, issue_document_certificate
from kojinbango.jlis.app import load_or_create_key
from kojinbango.kiosk import views as kiosk_views
from kojinbango.kiosk.service import KioskService
from kojinbango.municipality.addressee import models as addressee_models
from kojinbango.municipality.addressee import views as addressee_views
from kojinbango.municipality.addressee.service import AddresseeService
from kojinbango.municipality.business import models as business_models
from kojinbango.municipality.business.service import BusinessService
from kojinbango.municipality.cards import api as cards_api
from kojinbango.municipality.cards import views as cards_views
from kojinbango.municipality.cards.service import CardDesk, card_issuance_mode
from kojinbango.municipality.counter import views as counter_views
from kojinbango.municipality.forms import models as forms_models
from kojinbango.municipality.forms import views as forms_views
from kojinbango.municipality.forms.service import FormsService
from kojinbango.municipality.linkage import models as linkage_models
from kojinbango.municipality.linkage import views as linkage_views
from kojinbango.municipality.linkage.service import LinkageService
from kojinbango.municipality.outreach import api as outreach_api
from kojinbango.municipality.outreach import models as outreach_models
from kojinbango.municipality.outreach import views as outreach_views
from kojinbango.municipality.outreach.network_channel import NetworkNoticeChannel
from kojinbango.municipality.outreach.service import OutreachService
from kojinbango.municipality.register import api, views
from kojinbango.municipality.register.models import seen_nonces
from kojinbango.municipality.register.notices import NoticePrinter
from kojinbango.municipality.register.service import RegisterService
from kojinbango.municipality.staff import models as staff_models
from kojinbango.municipality.staff import views as staff_views
from kojinbango.municipality.staff.service import StaffService

MIGRATIONS = "kojinbango.municipality.register:migrations"
CARD_MIGRATIONS = "kojinbango.municipality.cards:migrations"
# The other systems of the municipality, in the same database with their own migration histories.
EXTRA_MIGRATIONS = [
    (business_models.MIGRATIONS, business_models.VERSION_TABLE),
    (addressee_models.MIGRATIONS, addressee_models.VERSION_TABLE),
    (CARD_MIGRATIONS, "alembic_version_cards"),
    (staff_models.MIGRATIONS, staff_models.VERSION_TABLE),
    (forms_models.MIGRATIONS, forms_models.VERSION_TABLE),
    (outreach_models.MIGRATIONS, outreach_models.VERSION_TABLE),
    (linkage_models.MIGRATIONS, linkage_models.VERSION_TABLE),
]


def staff_totp_key(topology: Topology, org_id: str) -> bytes:
    """The municipality's key sealing its staff TOTP secrets (a 0600 file, never in the database)."""
    org = topology.org(org_id)
    return load_or_create_key(
        topology.resolve(org.secrets.get("staff_totp_key", f"secrets/{org_id}/staff-totp.key"))
    )


def open_database(topology: Topology, org_id: str, database_url: str | None = None) -> Database:
    """The municipality's database, migrated (the staff migration seals TOTP secrets with its key)."""
    return Database(
        database_url or topology.database_url(org_id),
        MIGRATIONS,
        EXTRA_MIGRATIONS,
        {"staff_totp_key": staff_totp_key(topology, org_id)},
    )


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
    extra_callers: Iterable[str] = (),
) -> OrgRuntime:
    """``extra_callers``: organisations allowed to call it beyond its peers (direct mode, assembled
    by ``kojinbango.direct``: the network and the municipality itself)."""
    org = topology.org(org_id)
    if not org.lg_code or not org.prefecture:
        raise ValueError(f"municipality {org_id} needs lg_code and prefecture in the topology")
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    db = open_database(topology, org_id, database_url)
    client = SignedClient(creds, trust, directory or topology.directory())
    files_dir: Path = topology.resolve(org.secrets.get("files_dir", f"files/{org_id}"))
    notice_key = load_or_create_key(
        topology.resolve(org.secrets.get("notice_key", f"secrets/{org_id}/notice.key"))
    )
    jlis = topology.of_kind("jlis")[0].id
    register = RegisterService(
        db, org_id, org.lg_code, org.name, client, trust, creds, jlis, org.prefecture, files_dir, notice_key
    )
    printer = NoticePrinter(register, f"{org.short_name or org.name}長")
    peers = {m.id for m in topology.of_kind("municipality") if m.id != org_id}
    peers.add(jlis)  # the card centre resolves applications and delivers cards
    peers.update(p.id for p in topology.of_kind("portal"))  # お知らせ and 自己情報 (/api/portal/…)
    peers.update(extra_callers)
    app = org_app(
        f"{org.name} 住民記録システム",
        creds,
        trust,
        db,
        DbNonceStore(db, seen_nonces),
        allowed_callers=peers,
        internal_prefixes=INTERNAL_PREFIXES,  # the kojinbango commands: signed by this municipality
    )
    api.install(app, register, topology)
    views.install(app, register, printer)
    business = BusinessService(db)
    addressee = AddresseeService(
        db, org.lg_code, org.name, lambda q: client.call(jlis, "POST", "/api/identity/lookup", q)
    )
    addressee_views.install(app, addressee)
    services: dict[str, object] = {"register": register, "printer": printer}
    services.update(business=business, addressee=addressee)
    cards = CardDesk(db, org.lg_code, org.name, card_issuance_mode(topology, org_id), client, jlis)
    cards_api.install(app, cards, topology)
    cards_views.install(app, cards)
    services["cards"] = cards
    staff = StaffService(db, staff_totp_key(topology, org_id))
    staff_views.install(app, staff, org.name, staff_views.card_owner(db))
    services["staff"] = staff
    forms = _forms(topology, org_id, db, printer.mayor_title)
    forms_views.install(app, forms, staff, load_certificate(topology.resolve(topology.ca_certificate)))
    services["forms"] = forms
    outreach = OutreachService(db, org.name, printer.mayor_title, _benefit_holders(db))  # 3-1
    outreach_api.install(app, outreach, client, topology, jlis)
    outreach_views.install(app, outreach, staff)
    services["outreach"] = outreach
    kiosk = _kiosk(app, topology, org_id, db, client, jlis, forms)  # コンビニ交付
    services["kiosk"] = kiosk
    counter_views.install(  # 3-2: the card at the counter
        app,
        db,
        staff,
        kiosk.verifier,
        org.name,
        str(topology.settings.get("reader_url", "http://127.0.0.1:8790")),
        lambda: services.get("linkage"),  # 3-3 from the counter once 情報連携 is there
        addressee.sync_residents,  # 統合宛名 for the 児童手当 claim written at the counter
    )
    # 情報連携の登録状況 for the 管理者 (503 until the deployment has the network)
    linkage_views.install_status_page(
        app, staff, org.name, lambda: cast(LinkageService | None, services.get("linkage"))
    )
    runtime = OrgRuntime(org_id, "municipality", app, db, client, services)
    runtime.closers.append(kiosk.verifier.close)
    if topology.of_kind("network") and org_id in LinkageSettings.of(topology).intermediate_of:
        linkage = LinkageService(db, org_id, client, topology, trust, addressee)  # 情報連携 (3-3)
        linkage_views.install(app, linkage)
        close_sessions_on_shutdown(app, client)  # its queries' onward calls (SignedClient.acall)
        services["linkage"] = linkage
        linkage.start()
        runtime.closers.append(linkage.stop)
        # 3-1 お知らせ through the intermediate server and the network (letters stay for the rest)
        channel = NetworkNoticeChannel(
            db, client, linkage.intermediate, lambda: services.get("linkage"), addressee,
            linkage.settings.retry_max_seconds,
        )  # fmt: skip
        outreach.channel = channel
        channel.start()
        runtime.closers.append(channel.stop)
    return runtime


def _forms(topology: Topology, org_id: str, db: Database, mayor: str) -> FormsService:
    """The certificate desk, signing with a 文書署名用 certificate issued by the deployment CA."""
    org = topology.org(org_id)
    ca_path = topology.resolve(topology.ca_certificate)

    def signer() -> DocumentSigner:
        ca = load_certificate(ca_path)
        key, cert = issue_document_certificate(
            topology.resolve(f"secrets/{org_id}"), org_id, org.name, ca_path.with_name("ca.key"), ca
        )
        return DocumentSigner(key, cert, ca)

    return FormsService(db, org.name, mayor or f"{org.short_name or org.name}長", signer)


def _benefit_holders(db: Database) -> Callable[[str], set[int]]:
    """Residents (internal ids) with a linked record in a business system (受給・業務記録あり)."""
    from sqlalchemy import select

    from kojinbango.municipality.addressee.models import Addressee, RecordLink

    def holders(system: str) -> set[int]:
        with db.transaction() as s:
            return {
                int(rid)
                for rid in s.scalars(
                    select(Addressee.resident_id)
                    .join(RecordLink, RecordLink.addressee_id == Addressee.id)
                    .where(RecordLink.system == system, RecordLink.status == "linked")
                )
                if rid is not None
            }

    return holders


def _kiosk(
    app: Any,
    topology: Topology,
    org_id: str,
    db: Database,
    client: SignedClient,
    jlis: str,
    forms: FormsService,
) -> KioskService:
    """コンビニ交付: card login (chain, OCSP, signature) → 証明書情報連携 → the person's own document."""
    org = topology.org(org_id)
    verifier = JpkiVerifier(
        lambda: str(client.call(jlis, "GET", "/api/jpki/ca")["certificate_pem"]),
        lambda: client.directory[jlis].rstrip("/") + "/jpki/ocsp",
    )
    kiosk = KioskService(
        org_id,
        forms,
        verifier,
        lambda serial: dict(client.call(jlis, "POST", "/api/jpki/holder", {"serial": serial})),
        DbNonceStore(db, seen_nonces),
        load_or_create_key(topology.resolve(org.secrets.get("kiosk_key", f"secrets/{org_id}/kiosk.key"))),
    )
    reader = str(topology.settings.get("reader_url", "http://127.0.0.1:8790"))
    kiosk_views.install(app, kiosk, org.name, reader)
    return kiosk

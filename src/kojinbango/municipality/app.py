"""Assemble a municipality as a service: its register (with CS) and staff pages."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kojinbango.common.app import OrgRuntime, org_app
from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.jlis.app import load_or_create_key
from kojinbango.municipality.addressee import models as addressee_models
from kojinbango.municipality.addressee import views as addressee_views
from kojinbango.municipality.addressee.service import AddresseeService
from kojinbango.municipality.business import models as business_models
from kojinbango.municipality.business.service import BusinessService
from kojinbango.municipality.cards import api as cards_api
from kojinbango.municipality.cards import views as cards_views
from kojinbango.municipality.cards.service import CardDesk, card_issuance_mode
from kojinbango.municipality.register import api, views
from kojinbango.municipality.register.models import seen_nonces
from kojinbango.municipality.register.notices import NoticePrinter
from kojinbango.municipality.register.service import RegisterService

MIGRATIONS = "kojinbango.municipality.register:migrations"
CARD_MIGRATIONS = "kojinbango.municipality.cards:migrations"
# The other systems of the municipality, in the same database with their own migration histories.
EXTRA_MIGRATIONS = [
    (business_models.MIGRATIONS, business_models.VERSION_TABLE),
    (addressee_models.MIGRATIONS, addressee_models.VERSION_TABLE),
    (CARD_MIGRATIONS, "alembic_version_cards"),
]


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> OrgRuntime:
    org = topology.org(org_id)
    if not org.lg_code or not org.prefecture:
        raise ValueError(f"municipality {org_id} needs lg_code and prefecture in the topology")
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    db = Database(database_url or topology.database_url(org_id), MIGRATIONS, EXTRA_MIGRATIONS)
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
    app = org_app(
        f"{org.name} 住民記録システム", creds, trust, db, DbNonceStore(db, seen_nonces), allowed_callers=peers
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
    return OrgRuntime(org_id, "municipality", app, db, client, services)

"""Assemble J-LIS as a service."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from kojinbango.common.app import OrgRuntime, org_app
from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.topology import Topology
from kojinbango.common.transport import INTERNAL_PREFIXES, SignedClient
from kojinbango.jlis import api, fugo
from kojinbango.jlis.cards import api as cards_api
from kojinbango.jlis.cards.centre import CardCentre
from kojinbango.jlis.cards.jpki import JpkiCa
from kojinbango.jlis.models import seen_nonces
from kojinbango.jlis.numbering import NumberGenerator
from kojinbango.jlis.service import JlisService

MIGRATIONS = "kojinbango.jlis:migrations"
CARD_MIGRATIONS = "kojinbango.jlis.cards:migrations"


def load_or_create_key(path: Path, size: int = 32) -> bytes:
    """A secret held only by its organisation (0600 file); created on first use."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(size))
    os.replace(tmp, path)
    return path.read_bytes()


def create(
    topology: Topology,
    org_id: str,
    database_url: str | None = None,
    directory: Mapping[str, str] | None = None,
) -> OrgRuntime:
    org = topology.org(org_id)
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    db = Database(
        database_url or topology.database_url(org_id),
        MIGRATIONS,
        extra_migrations=[(CARD_MIGRATIONS, "alembic_version_cards")],
    )
    key = load_or_create_key(
        topology.resolve(org.secrets.get("numbering_key", f"secrets/{org_id}/numbering.key"))
    )
    service = JlisService(db, NumberGenerator(key))
    app = org_app(
        "J-LIS 地方公共団体情報システム機構",
        creds,
        trust,
        db,
        DbNonceStore(db, seen_nonces),
        internal_prefixes=INTERNAL_PREFIXES,  # the card centre's batch and 受付センター: J-LIS's own
    )
    api.install(app, service, topology)
    client = SignedClient(creds, trust, directory or topology.directory())
    centre = CardCentre(
        db,
        JpkiCa(topology.resolve(org.secrets.get("jpki_dir", f"secrets/{org_id}/jpki"))),
        client.call,
        lambda lg_code: topology.municipality_by_code(lg_code).id,
        org.base_url.rstrip("/") + "/jpki/crl.der",
        load_or_create_key(topology.resolve(f"secrets/{org_id}/subscriber.key")),
        lambda lg_code: topology.municipality_by_code(lg_code).short_name or lg_code,
    )
    service.change_hooks.append(centre.on_identity_changes)
    cards_api.install(app, centre, topology)
    fugo.install(app, service, topology, client.call)  # 符号取得 relayed to the network
    return OrgRuntime(org_id, "jlis", app, db, client, {"jlis": service, "cards": centre})

"""Assemble a prefecture as a service."""

from __future__ import annotations

from collections.abc import Mapping

from kojinbango.common.app import OrgRuntime, org_app
from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.prefecture import api
from kojinbango.prefecture.models import seen_nonces
from kojinbango.prefecture.service import PrefectureService

MIGRATIONS = "kojinbango.prefecture:migrations"


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> OrgRuntime:
    org = topology.org(org_id)
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    db = Database(database_url or topology.database_url(org_id), MIGRATIONS)
    client = SignedClient(creds, trust, directory or topology.directory())
    jlis = topology.of_kind("jlis")[0].id
    municipalities = {
        m.id: m.lg_code or "" for m in topology.of_kind("municipality") if m.prefecture == org.id
    }
    service = PrefectureService(db, client, jlis, municipalities)
    app = org_app(
        f"{org.name} 都道府県サーバ",
        creds,
        trust,
        db,
        DbNonceStore(db, seen_nonces),
        allowed_callers=set(municipalities),
    )
    api.install(app, service)
    return OrgRuntime(org_id, "prefecture", app, db, client, {"prefecture": service})

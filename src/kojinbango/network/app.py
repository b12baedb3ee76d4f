"""Assemble the network (情報提供NWS: core + IF) as a service."""

from __future__ import annotations

from collections.abc import Mapping

from kojinbango.common.app import OrgRuntime, close_sessions_on_shutdown, org_app
from kojinbango.common.db import Database
from kojinbango.common.linkage import LinkageSettings, LockedNonceStore, limit_worker_threads
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.jlis.app import load_or_create_key
from kojinbango.network import api, notices
from kojinbango.network.core import NetworkCore
from kojinbango.network.fugo import FugoCipher
from kojinbango.network.interface import NetworkInterface
from kojinbango.network.legal import LegalTable, write_default
from kojinbango.network.log import MerkleLog
from kojinbango.network.models import seen_nonces

MIGRATIONS = "kojinbango.network:migrations"


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> OrgRuntime:
    org = topology.org(org_id)
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    settings = LinkageSettings.of(topology)
    db = Database(
        database_url or topology.database_url(org_id),
        MIGRATIONS,
        extra_migrations=[(notices.MIGRATIONS, notices.VERSION_TABLE)],  # お知らせ
    )
    key = load_or_create_key(topology.resolve(org.secrets.get("fugo_key", f"secrets/{org_id}/fugo.key")))
    table_path = settings.table_path(topology)
    write_default(table_path)
    merkle = MerkleLog(db, creds, settings.retention_years)
    core = NetworkCore(db, org_id, FugoCipher(key), LegalTable(table_path), merkle, topology, trust, settings)
    client = SignedClient(creds, trust, directory or topology.directory(), timeout=30.0)
    iface = NetworkInterface(core, client, settings)
    callers = [
        o.id
        for o in topology.organisations.values()
        if o.kind in ("jlis", "intermediate", "agency", "portal") or settings.receives_itself(o.id)
    ]
    app = org_app(
        f"{org.name} (core + IF)",
        creds,
        trust,
        db,
        LockedNonceStore(db, seen_nonces),
        allowed_callers=callers,
    )
    api.install(app, core, iface, topology)
    mail = notices.NetworkNotices(db, core.cipher, topology, settings, client)
    notices.install(app, mail)
    limit_worker_threads(app, settings.worker_threads)
    close_sessions_on_shutdown(app, client)
    runtime = OrgRuntime(
        org_id, "network", app, db, client, {"core": core, "interface": iface, "log": merkle, "notices": mail}
    )
    iface.start()
    runtime.closers.append(iface.stop)
    mail.start()
    runtime.closers.append(mail.stop)
    return runtime

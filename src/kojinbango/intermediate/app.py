"""Assemble the intermediate server (中間サーバ, 共同設置) as a service hosting its tenants."""

from __future__ import annotations

from collections.abc import Mapping

from kojinbango.common.app import OrgRuntime, close_sessions_on_shutdown, org_app
from kojinbango.common.db import Database
from kojinbango.common.linkage import LinkageSettings, LockedNonceStore, limit_worker_threads, public_id
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.intermediate import api, notices
from kojinbango.intermediate.models import MIGRATIONS, VERSION_TABLE, seen_nonces
from kojinbango.intermediate.service import IntermediateService, LiveCopies

# The intermediate server's tables beside an organisation's own (or alone in its database).
SERVER_MIGRATIONS = [(MIGRATIONS, VERSION_TABLE), (notices.MIGRATIONS, notices.VERSION_TABLE)]


def service_for(
    topology: Topology,
    org_id: str,
    db: Database,
    client: SignedClient,
    tenants: list[str],
    live: LiveCopies | None = None,
) -> IntermediateService:
    """The intermediate server's service run by ``org_id`` for ``tenants`` (itself, for the agency
    and a direct-mode municipality), with the deployment's linkage settings."""
    settings = LinkageSettings.of(topology)
    return IntermediateService(
        db, topology.credentials(org_id), tenants, topology.of_kind("network")[0].id, client.call,
        {o: public_id(topology, o) for o in topology.organisations}, settings.retention_years,
        acall=client.acall, sealing_key=topology.sealing_key_now,
        batches_in_flight=settings.batches_in_flight, live=live,
    )  # fmt: skip


def attach(
    runtime: OrgRuntime,
    db: Database,
    client: SignedClient,
    topology: Topology,
    tenants: list[str],
    live: LiveCopies | None = None,
) -> IntermediateService:
    """The intermediate server on ``runtime``'s app: the IF (for the network), the tenants' interface
    and お知らせ store and forward, on ``db``; started, and stopped with the runtime."""
    network = topology.of_kind("network")[0].id
    service = service_for(topology, runtime.org_id, db, client, tenants, live)
    api.install_if(runtime.app, service, network)
    api.install_tenant(runtime.app, service)
    mail = notices.IntermediateNotices(
        db, tenants, network, client.call, LinkageSettings.of(topology).retry_max_seconds
    )
    notices.install(runtime.app, mail)
    runtime.services.update(intermediate=service, notices=mail)
    service.start()
    runtime.closers.append(service.stop)
    mail.start()
    runtime.closers.append(mail.stop)
    return service


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
    db = Database(database_url or topology.database_url(org_id), extra_migrations=SERVER_MIGRATIONS)
    client = SignedClient(creds, trust, directory or topology.directory(), timeout=30.0)
    network = topology.of_kind("network")[0].id
    tenants = settings.tenants_of(org_id)
    app = org_app(
        f"{org.name}",
        creds,
        trust,
        db,
        LockedNonceStore(db, seen_nonces),
        allowed_callers=[network, *tenants],
    )
    runtime = OrgRuntime(org_id, "intermediate", app, db, client, {})
    attach(runtime, db, client, topology, tenants)
    limit_worker_threads(app, settings.worker_threads)
    close_sessions_on_shutdown(app, client)
    return runtime

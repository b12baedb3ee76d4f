"""Direct mode (論点2): a municipality whose business systems answer the network themselves.

DESIGN.md's answer to 論点2 puts an intermediate server between the business systems and the
network, and keeps a "direct" mode without it for comparison in simulations.  In direct mode
(``settings.linkage.intermediate_of`` names the municipality as its own receiver; ``kojinbango
init --direct CODE``) the municipality's own service is what the network's IF talks to:

* a query is answered from the 正本 as the business systems hold it at that moment — no 副本 is
  registered or refreshed, and every answer's ``as_of`` is the time it was made;
* the 符号 of its persons, its queries and its provision records are kept by the municipality's
  own service, in a database of its own beside the municipality's (``<org>-linkage.db``);
* the network sees a municipality, not an intermediate server, at the other end — everything
  else (the legal table, 符号 translation, signed and sealed answers, the three records, the log)
  is the same.

It reuses the intermediate server's components for the 符号 store, the query path and the records
(the parts that are the same in both modes); what differs is where the answer's data comes from.
Assembled here, above the organisations, so that no organisation imports another.
"""

from __future__ import annotations

from collections.abc import Mapping

from kojinbango.common.app import OrgRuntime
from kojinbango.common.db import Database
from kojinbango.common.linkage import LinkageSettings, linkage_database_url, public_id
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.intermediate import api as intermediate_api
from kojinbango.intermediate import notices
from kojinbango.intermediate.models import MIGRATIONS, VERSION_TABLE
from kojinbango.intermediate.service import IntermediateService
from kojinbango.municipality import app as municipality_app
from kojinbango.municipality.linkage.service import LinkageService


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> OrgRuntime:
    settings = LinkageSettings.of(topology)
    network = topology.of_kind("network")[0].id
    runtime = municipality_app.create(
        topology, org_id, directory, database_url, extra_callers=[network, org_id]
    )
    linkage = runtime.services["linkage"]
    assert isinstance(linkage, LinkageService) and linkage.direct
    db = Database(
        linkage_database_url(database_url or topology.database_url(org_id)),
        extra_migrations=[(MIGRATIONS, VERSION_TABLE), (notices.MIGRATIONS, notices.VERSION_TABLE)],
    )
    runtime.closers.insert(0, db.dispose)  # closers run in reverse: the database goes last
    client = runtime.client
    assert isinstance(client, SignedClient)
    service = IntermediateService(
        db, topology.credentials(org_id), [org_id], network, client.call,
        {o: public_id(topology, o) for o in topology.organisations}, settings.retention_years,
        acall=client.acall, sealing_key=topology.sealing_key_now,
        batches_in_flight=settings.batches_in_flight, live=linkage.live_copies,
    )  # fmt: skip
    intermediate_api.install_if(runtime.app, service, network)
    intermediate_api.install_tenant(runtime.app, service)  # its own systems, signed by itself
    mail = notices.IntermediateNotices(db, [org_id], network, client.call, settings.retry_max_seconds)
    notices.install(runtime.app, mail)  # お知らせ, store and forward, as an intermediate server does
    runtime.services.update(intermediate=service, notices=mail)
    service.start()
    runtime.closers.append(service.stop)
    mail.start()
    runtime.closers.append(mail.stop)
    return runtime

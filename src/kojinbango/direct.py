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
from kojinbango.common.linkage import linkage_database_url
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.intermediate.app import SERVER_MIGRATIONS, attach
from kojinbango.municipality import app as municipality_app
from kojinbango.municipality.linkage.service import LinkageService


def create(
    topology: Topology,
    org_id: str,
    directory: Mapping[str, str] | None = None,
    database_url: str | None = None,
) -> OrgRuntime:
    network = topology.of_kind("network")[0].id
    runtime = municipality_app.create(
        topology, org_id, directory, database_url, extra_callers=[network, org_id]
    )
    linkage = runtime.services["linkage"]
    assert isinstance(linkage, LinkageService) and linkage.direct
    db = Database(
        linkage_database_url(database_url or topology.database_url(org_id)),
        extra_migrations=SERVER_MIGRATIONS,
    )
    runtime.closers.insert(0, db.dispose)  # closers run in reverse: the database goes last
    client = runtime.client
    assert isinstance(client, SignedClient)
    # its own systems reach it through the tenants' interface, signed by itself
    attach(runtime, db, client, topology, [org_id], live=linkage.live_copies)
    return runtime

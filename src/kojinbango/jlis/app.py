"""Assemble J-LIS as a service."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from kojinbango.common.app import OrgRuntime, org_app
from kojinbango.common.db import Database, DbNonceStore
from kojinbango.common.topology import Topology
from kojinbango.jlis import api
from kojinbango.jlis.models import seen_nonces
from kojinbango.jlis.numbering import NumberGenerator
from kojinbango.jlis.service import JlisService

MIGRATIONS = "kojinbango.jlis:migrations"


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


def create(topology: Topology, org_id: str, database_url: str | None = None) -> OrgRuntime:
    org = topology.org(org_id)
    creds = topology.credentials(org_id)
    trust = topology.trust_store()
    db = Database(database_url or topology.database_url(org_id), MIGRATIONS)
    key = load_or_create_key(
        topology.resolve(org.secrets.get("numbering_key", f"secrets/{org_id}/numbering.key"))
    )
    service = JlisService(db, NumberGenerator(key))
    app = org_app("J-LIS 地方公共団体情報システム機構", creds, trust, db, DbNonceStore(db, seen_nonces))
    api.install(app, service, topology)
    return OrgRuntime(org_id, "jlis", app, db, None, {"jlis": service})

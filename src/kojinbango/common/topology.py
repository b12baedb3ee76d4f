"""The topology file: which organisations a deployment has, where they listen, and their certificates.

One JSON file describes the deployment.  In the embedded default every organisation runs in one
process with an SQLite file each in the data directory; in production each machine holds the same
file (with only its own organisations' keys) and runs ``kojinbango serve ORG``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from kojinbango.common.pki import OrgCredentials, load_certificate, load_key, verify_encryption_certificate
from kojinbango.common.sealing import Opener
from kojinbango.common.signing import TrustStore

KINDS = ("jlis", "prefecture", "municipality", "portal", "relying_party", "network", "intermediate", "agency")


class TopologyError(Exception):
    """The topology file is missing something or contradicts itself."""


@dataclass
class OrgEntry:
    """One organisation of the deployment."""

    id: str
    kind: str
    name: str
    base_url: str
    certificate: str
    key: str | None = None
    database_url: str | None = None
    lg_code: str | None = None
    prefecture: str | None = None
    short_name: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    # 情報照会者 only: the key pair answers are sealed to (key agreement; common.sealing)
    encryption_certificate: str | None = None
    encryption_key: str | None = None
    # the keys it replaced (newest first; ``kojinbango exchange rotate-key``): kept to open what was
    # sealed to them
    retired_encryption_keys: list[str] = field(default_factory=list)


@dataclass
class Topology:
    path: Path
    ca_certificate: str
    organisations: dict[str, OrgEntry]
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    @classmethod
    def load(cls, path: Path) -> Topology:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TopologyError(
                f"topology file {path} does not exist (run `kojinbango init` first)"
            ) from None
        except json.JSONDecodeError as exc:
            raise TopologyError(f"topology file {path} is not valid JSON: {exc}") from None
        try:
            orgs = {o["id"]: OrgEntry(**o) for o in raw["organisations"]}
            topo = cls(path, raw["ca_certificate"], orgs, raw.get("settings", {}))
        except (KeyError, TypeError) as exc:
            raise TopologyError(f"topology file {path} is incomplete: {exc}") from None
        for org in orgs.values():
            if org.kind not in KINDS:
                raise TopologyError(f"organisation {org.id} has unknown kind {org.kind!r}")
        return topo

    def save(self) -> None:
        raw = {
            "ca_certificate": self.ca_certificate,
            "organisations": [asdict(o) for o in self.organisations.values()],
            "settings": self.settings,
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(self.path)

    def org(self, org_id: str) -> OrgEntry:
        try:
            return self.organisations[org_id]
        except KeyError:
            known = ", ".join(sorted(self.organisations))
            raise TopologyError(f"no organisation {org_id!r} in the topology (known: {known})") from None

    def of_kind(self, kind: str) -> list[OrgEntry]:
        return [o for o in self.organisations.values() if o.kind == kind]

    def municipality_by_code(self, lg_code: str) -> OrgEntry:
        for o in self.of_kind("municipality"):
            if o.lg_code == lg_code:
                return o
        raise TopologyError(f"no municipality with code {lg_code} in this deployment")

    def trust_store(self) -> TrustStore:
        ca = load_certificate(self.resolve(self.ca_certificate))
        certs = {o.id: load_certificate(self.resolve(o.certificate)) for o in self.organisations.values()}
        return TrustStore(ca, certs)

    def sealing_key(self, org_id: str) -> ec.EllipticCurvePublicKey | None:
        """The public key answers to ``org_id`` are sealed to: its encryption certificate, checked
        against the deployment CA; None when it has none (answers to it then travel unsealed)."""
        org = self.org(org_id)
        if not org.encryption_certificate:
            return None
        ca = load_certificate(self.resolve(self.ca_certificate))
        return verify_encryption_certificate(
            load_certificate(self.resolve(org.encryption_certificate)), ca, org_id
        )

    def opening_keys(self, org_id: str) -> list[ec.EllipticCurvePrivateKey]:
        """``org_id``'s own keys for opening the answers sealed to it: the current one, then those it
        replaced, newest first (none: it has no encryption certificate)."""
        org = self.org(org_id)
        if not org.encryption_key:
            return []
        keys = []
        for name, relative in [("encryption_key", org.encryption_key)] + [
            ("retired_encryption_keys", r) for r in org.retired_encryption_keys
        ]:
            path = self.resolve(relative)
            if not path.exists():
                raise TopologyError(
                    f"{org_id}'s encryption key {relative} is not on this machine: copy it here"
                    f" (answers to it are sealed to that key), or remove it from {name} in the topology"
                )
            keys.append(load_key(path))
        return keys

    def sealing_key_now(self, org_id: str) -> ec.EllipticCurvePublicKey | None:
        """``sealing_key`` as the topology file says now: a querier's rotated key is sealed to
        without restarting the intermediate server (it reads this every minute)."""
        return Topology.load(self.path).sealing_key(org_id)

    def opening_keys_now(self, org_id: str) -> list[ec.EllipticCurvePrivateKey]:
        """``opening_keys`` as the topology file says now: after a key rotation, before this
        service restarted (``sealing.Opener``'s ``reload``)."""
        return Topology.load(self.path).opening_keys(org_id)

    def opener(self, org_id: str) -> Opener | None:
        """What opens the answers sealed to ``org_id``: its keys, read again from the topology file
        when a seal none of them opens arrives (a rotation while the service runs); None for an
        organisation with no encryption certificate."""
        keys = self.opening_keys(org_id)
        return Opener(*keys, reload=lambda: self.opening_keys_now(org_id)) if keys else None

    def credentials(self, org_id: str) -> OrgCredentials:
        org = self.org(org_id)
        if not org.key:
            raise TopologyError(f"this machine does not hold the private key of {org_id}")
        return OrgCredentials(
            org_id, load_key(self.resolve(org.key)), load_certificate(self.resolve(org.certificate))
        )

    def directory(self) -> dict[str, str]:
        return {o.id: o.base_url for o in self.organisations.values()}

    def database_url(self, org_id: str) -> str:
        org = self.org(org_id)
        if org.database_url:
            if org.database_url.startswith("sqlite:///") and not org.database_url.startswith("sqlite:////"):
                return "sqlite:///" + str(self.resolve(org.database_url[len("sqlite:///") :]))
            return org.database_url
        return "sqlite:///" + str(self.root / f"{org_id}.db")

"""The miniature nation: creating a deployment and running every organisation in one process.

Each organisation still has its own database and its own HTTP server (on 127.0.0.1) and talks to
the others only through signed HTTP; "embedded" only means one process hosts all the servers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from kojinbango.common.app import OrgRuntime
from kojinbango.common.pki import create_ca, issue_encryption_certificate, issue_org_certificate
from kojinbango.common.topology import OrgEntry, Topology
from kojinbango.common.transport import SERVER_KEEP_ALIVE_SECONDS
from kojinbango.domain.identifiers import validate_lg_code
from kojinbango.domain.jst import today_jst
from kojinbango.municipality.register.notices import NoticePrinter
from kojinbango.municipality.register.service import RegisterService
from kojinbango.synth import generate_population, municipality_names

log = logging.getLogger(__name__)

JLIS_ID = "jlis"
PREFECTURE = ("130001", "東京都")
MUNICIPALITIES = ("131016", "131041")  # 千代田区, 新宿区 (real 地方公共団体コード)
SHARES = (0.4, 0.6)
BASE_PORT = 8700
NATION_FILE = "nation.json"
CARD_ORGANISATIONS = (  # (id, kind, name, port offset)
    ("portal", "portal", "マイポータル", 20),
    ("bank", "relying_party", "こじん銀行 (sample relying party)", 21),
)
READER_PORT_OFFSET = 90  # the holder's card reader service (kojinbango card reader)
LINKAGE_ORGANISATIONS = (  # (id, kind, name, port offset): information linkage (seed 3-3)
    ("network", "network", "情報提供ネットワークシステム", 30),
    ("intermediate", "intermediate", "自治体中間サーバ・プラットフォーム (共同設置)", 31),
    ("nenkin", "agency", "日本年金機構", 32),
)


def org_id_for(lg_code: str, kind: str) -> str:
    return ("p" if kind == "prefecture" else "m") + lg_code


def create_deployment(data_dir: Path, base_port: int = BASE_PORT) -> Topology:
    """PKI and topology for J-LIS, one prefecture and two municipalities (kept if already there)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "topology.json"
    if path.exists():
        return add_linkage_organisations(add_card_organisations(Topology.load(path), base_port), base_port)
    pki = data_dir / "pki"
    create_ca(pki)
    orgs: dict[str, OrgEntry] = {}

    def add(org_id: str, kind: str, name: str, port: int, **extra: Any) -> None:
        issue_org_certificate(pki, org_id, name)
        orgs[org_id] = OrgEntry(
            id=org_id,
            kind=kind,
            name=name,
            base_url=f"http://127.0.0.1:{port}",
            certificate=f"pki/{org_id}.pem",
            key=f"pki/{org_id}.key",
            database_url=f"sqlite:///{org_id}.db",
            **extra,
        )

    add(
        JLIS_ID,
        "jlis",
        "地方公共団体情報システム機構",
        base_port,
        secrets={"numbering_key": "secrets/jlis/numbering.key"},
    )
    pref_id = org_id_for(PREFECTURE[0], "prefecture")
    add(pref_id, "prefecture", PREFECTURE[1], base_port + 1, lg_code=PREFECTURE[0])
    for i, code in enumerate(MUNICIPALITIES):
        pref_name, city = municipality_names(code)
        mid = org_id_for(code, "municipality")
        add(
            mid,
            "municipality",
            pref_name + city,
            base_port + 10 + i,
            lg_code=code,
            prefecture=pref_id,
            short_name=city,
            secrets={"notice_key": f"secrets/{mid}/notice.key", "files_dir": f"files/{mid}"},
        )
    topo = Topology(path, "pki/ca.pem", orgs)
    topo.save()
    return add_linkage_organisations(add_card_organisations(topo, base_port), base_port)


def _add_organisations(
    topo: Topology,
    entries: Sequence[tuple[str, str, str, int]],
    base_port: int,
    secrets: Callable[[str, str], dict[str, str]] = lambda _id, _kind: {},
) -> bool:
    """Each of ``entries`` (id, kind, name, port offset) the deployment does not have yet, with its
    certificate and its own SQLite file; True if any was added."""
    added = False
    for org_id, kind, name, port in entries:
        if org_id in topo.organisations:
            continue
        issue_org_certificate(topo.root / "pki", org_id, name)
        topo.organisations[org_id] = OrgEntry(
            id=org_id,
            kind=kind,
            name=name,
            base_url=f"http://127.0.0.1:{base_port + port}",
            certificate=f"pki/{org_id}.pem",
            key=f"pki/{org_id}.key",
            database_url=f"sqlite:///{org_id}.db",
            secrets=secrets(org_id, kind),
        )
        added = True
    return added


def add_card_organisations(topo: Topology, base_port: int = BASE_PORT) -> Topology:
    """The portal (マイポータル) and a sample bank, and each municipality's card issuance option
    (交付時来庁方式 for the first, 申請時来庁方式 for the second); added to older deployments too."""
    changed = _add_organisations(topo, CARD_ORGANISATIONS, base_port)
    if "card_issuance" not in topo.settings:
        munis = [o.id for o in topo.of_kind("municipality")]
        modes = ("交付時来庁方式", "申請時来庁方式")
        topo.settings["card_issuance"] = {m: modes[i % 2] for i, m in enumerate(munis)}
        changed = True
    if "reader_url" not in topo.settings:
        topo.settings["reader_url"] = f"http://127.0.0.1:{base_port + READER_PORT_OFFSET}"
        changed = True
    if changed:
        topo.save()
    return topo


def add_linkage_organisations(topo: Topology, base_port: int = BASE_PORT) -> Topology:
    """The network, one intermediate server for every municipality (共同設置) and 日本年金機構, with
    the linkage settings and the legal table file; added to older deployments too."""
    from kojinbango.common.linkage import DEFAULT_REFRESH, LinkageSettings
    from kojinbango.network.legal import write_default

    # the network's secret key for 符号 (a file of its own, never in the topology)
    changed = _add_organisations(
        topo,
        LINKAGE_ORGANISATIONS,
        base_port,
        lambda org_id, kind: {"fugo_key": f"secrets/{org_id}/fugo.key"} if kind == "network" else {},
    )
    if "linkage" not in topo.settings:
        munis = [o.id for o in topo.of_kind("municipality")]
        intermediate = topo.of_kind("intermediate")[0].id
        receivers = {m: intermediate for m in munis}
        receivers.update({a.id: a.id for a in topo.of_kind("agency")})
        defaults = LinkageSettings()
        topo.settings["linkage"] = {
            "legal_table": defaults.legal_table,
            "intermediate_of": receivers,
            "refresh": {m: dict(DEFAULT_REFRESH) for m in munis},
            "nightly_at": defaults.nightly_at,
            "on_change_seconds": defaults.on_change_seconds,
            "retention_years": defaults.retention_years,
            "notice_retention_days": defaults.notice_retention_days,
            "answer_retention_days": defaults.answer_retention_days,
            "sync_wait_seconds": defaults.sync_wait_seconds,
            "retry_max_seconds": defaults.retry_max_seconds,
            "retry_give_up_hours": defaults.retry_give_up_hours,
        }
        changed = True
    changed |= _add_answer_encryption(topo, topo.root / "pki")
    write_default(LinkageSettings.of(topo).table_path(topo))
    if changed:
        topo.save()
    return topo


def set_direct(topo: Topology, lg_codes: Sequence[str]) -> None:
    """Put these municipalities (by 地方公共団体コード) in direct mode (論点2): each becomes its own
    receiver in ``settings.linkage.intermediate_of``.  Before any 符号 is obtained: a deployment
    already linked would have its 符号 and records at the intermediate server."""
    if not lg_codes:
        return
    receivers = topo.settings["linkage"]["intermediate_of"]  # type: ignore[index]
    for code in lg_codes:
        org = topo.municipality_by_code(validate_lg_code(code))
        receivers[org.id] = org.id
    topo.save()


QUERIER_KINDS = ("municipality", "agency")  # 情報照会者: answers to them are sealed (common.sealing)


def _add_answer_encryption(topo: Topology, pki: Path) -> bool:
    """An encryption certificate for every querier whose keys this machine holds, where the
    deployment's CA is (older deployments too): answers are sealed to it, so the network and the
    intermediate servers see no information.  Elsewhere the operator issues it where the CA is
    and copies the topology."""
    changed = False
    if not (pki / "ca.key").exists():  # only where the deployment's CA is (never a CA of its own)
        return False
    for org in topo.organisations.values():
        if org.kind not in QUERIER_KINDS or org.encryption_certificate or not org.key:
            continue
        if not topo.resolve(org.key).exists():  # not this machine's organisation
            continue
        issue_encryption_certificate(pki, org.id, org.name)
        org.encryption_certificate, org.encryption_key = f"pki/{org.id}.enc.pem", f"pki/{org.id}.enc.key"
        changed = True
    return changed


# The package whose ``app.create(topology, org_id, directory=…, database_url=…)`` assembles each kind.
FACTORIES = {
    "jlis": "kojinbango.jlis.app",
    "prefecture": "kojinbango.prefecture.app",
    "municipality": "kojinbango.municipality.app",
    "portal": "kojinbango.portal.app",
    "relying_party": "kojinbango.relying_party.app",
    "network": "kojinbango.network.app",
    "intermediate": "kojinbango.intermediate.app",
    "agency": "kojinbango.agency.app",
}


def build(
    topology: Topology, org_id: str, directory: dict[str, str] | None = None, database_url: str | None = None
) -> OrgRuntime:
    """Assemble one organisation from the topology (imported lazily: a machine runs only its own)."""
    kind = topology.org(org_id).kind
    direct = kind == "municipality" and _answers_itself(topology, org_id)
    module = importlib.import_module("kojinbango.direct" if direct else FACTORIES[kind])
    runtime: OrgRuntime = module.create(topology, org_id, directory=directory, database_url=database_url)
    return runtime


def _answers_itself(topology: Topology, org_id: str) -> bool:
    """A municipality in direct mode (``kojinbango.direct``), once the network is there."""
    from kojinbango.common.linkage import LinkageSettings

    return bool(topology.of_kind("network")) and LinkageSettings.of(topology).receives_itself(org_id)


class _Server(threading.Thread):
    """One organisation's uvicorn server on its own thread and event loop (the embedded nation).

    ``on_stop`` runs on that loop after the server has stopped (lifespan is off here): the
    organisation's client closes the sessions it opened on this loop (``SignedClient.aclose``).
    """

    def __init__(self, app: Any, sock: socket.socket, on_stop: Callable[[], Awaitable[None]] | None = None):
        super().__init__(daemon=True)
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_keep_alive=SERVER_KEEP_ALIVE_SECONDS,
        )
        self.server = uvicorn.Server(config)
        self.sock = sock
        self.on_stop = on_stop

    def run(self) -> None:
        with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            if self.on_stop is not None:
                await self.on_stop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(timeout=10)


@dataclass
class Nation:
    topology: Topology
    runtimes: dict[str, OrgRuntime]
    urls: dict[str, str]

    def municipalities(self) -> list[OrgRuntime]:
        return [r for r in self.runtimes.values() if r.kind == "municipality"]

    def register(self, org_id: str) -> RegisterService:
        svc = self.runtimes[org_id].services["register"]
        assert isinstance(svc, RegisterService)
        return svc

    def printer(self, org_id: str) -> NoticePrinter:
        svc = self.runtimes[org_id].services["printer"]
        assert isinstance(svc, NoticePrinter)
        return svc

    def runtime(self, kind: str) -> OrgRuntime:
        return next(r for r in self.runtimes.values() if r.kind == kind)


@contextmanager
def running(data_dir: Path, fixed_ports: bool = False) -> Iterator[Nation]:
    """Start every organisation of the deployment in ``data_dir`` on 127.0.0.1; stop them after."""
    topology = Topology.load(data_dir / "topology.json")
    sockets: dict[str, socket.socket] = {}
    for org in topology.organisations.values():
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and
        # without it every request between organisations waited ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = int(org.base_url.rsplit(":", 1)[1]) if fixed_ports else 0
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sockets[org.id] = sock
    urls = {oid: f"http://127.0.0.1:{s.getsockname()[1]}" for oid, s in sockets.items()}
    runtimes: dict[str, OrgRuntime] = {}
    servers: list[_Server] = []
    try:
        for org_id in topology.organisations:
            runtimes[org_id] = build(topology, org_id, urls)
        for org_id, rt in runtimes.items():
            srv = _Server(rt.app, sockets[org_id], getattr(rt.client, "aclose", None))
            srv.start()
            servers.append(srv)
        deadline = time.time() + 30
        while not all(s.server.started for s in servers):
            if time.time() > deadline:
                raise RuntimeError("organisations did not start within 30 s")
            time.sleep(0.02)
        yield Nation(topology, runtimes, urls)
    finally:
        for srv in servers:  # all told first, then waited for: each takes a few tenths of a second
            srv.server.should_exit = True
        for srv in servers:
            srv.stop()
        for rt in runtimes.values():
            rt.close()
        for sock in sockets.values():
            sock.close()


def read_nation(data_dir: Path) -> dict[str, Any]:
    path = data_dir / NATION_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{data_dir} holds no nation yet: run `kojinbango init --data-dir {data_dir}` first"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def init_nation(
    data_dir: Path, residents: int, seed: int, as_of: dt.date | None = None, direct: Sequence[str] = ()
) -> dict[str, Any]:
    """Create the nation with its residents registered (住民票コード, no numbers yet).

    ``direct``: 地方公共団体コード of municipalities in direct mode (論点2, ``kojinbango.direct``)."""
    if (data_dir / NATION_FILE).exists():
        raise FileExistsError(f"{data_dir} already holds a nation; use another --data-dir or remove it")
    if residents < len(MUNICIPALITIES):
        raise ValueError(f"--residents must be at least {len(MUNICIPALITIES)}")
    marker = data_dir / ".init-unfinished"
    if marker.exists():
        raise FileExistsError(
            f"{data_dir} holds an unfinished nation (an earlier init stopped midway); remove it and run init again"
        )
    for code in direct:
        if validate_lg_code(code) not in MUNICIPALITIES:
            raise ValueError(
                f"--direct {code}: no municipality with that code in this nation ({', '.join(MUNICIPALITIES)})"
            )
    as_of = as_of or today_jst()
    topology = create_deployment(data_dir)
    set_direct(topology, direct)
    marker.touch()
    counts: dict[str, int] = {}
    with running(data_dir) as nation:
        remaining = residents
        munis = topology.of_kind("municipality")
        for i, org in enumerate(munis):
            n = remaining if i == len(munis) - 1 else int(residents * SHARES[i])
            remaining -= n
            assert org.lg_code
            households = generate_population(org.lg_code, n, seed + i, as_of)
            reg = nation.register(org.id)
            counts[org.id] = reg.register_households(households, as_of)
            reg.push()
    info = {"seed": seed, "residents": residents, "as_of": as_of.isoformat(), "created": counts}
    (data_dir / NATION_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    marker.unlink()
    return info


def intro(nation: Nation, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Flow 1-1 for every municipality: numbers from J-LIS, designation, notices, push.

    Each municipality's notices are printed by worker processes while the main process goes on
    pushing 本人確認情報 and designating the next municipality's numbers, so the print runs overlap
    the rest of the run instead of adding to it.
    """
    result: dict[str, Any] = {}
    printing: list[tuple[str, threading.Thread, dict[str, Any]]] = []
    started = time.perf_counter()
    for rt in nation.municipalities():
        reg, printer = nation.register(rt.org_id), nation.printer(rt.org_id)
        todo = reg.residents_without_number()

        def step(n: int, org: str = rt.org_id, total: int = todo) -> None:
            if progress:
                progress(org, n, total)

        t0 = time.perf_counter()
        designated = reg.designate_numbers(progress=step)
        t1 = time.perf_counter()
        outcome: dict[str, Any] = {}
        thread = threading.Thread(target=_print_all, args=(printer, outcome), name=f"print-{rt.org_id}")
        thread.start()
        printing.append((rt.org_id, thread, outcome))
        pushed = reg.push()
        t2 = time.perf_counter()
        result[rt.org_id] = {
            "designated": designated,
            "pushed": pushed,
            "seconds": {"designate": round(t1 - t0, 2), "push": round(t2 - t1, 2)},
        }
    for org_id, thread, outcome in printing:
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        result[org_id]["pages_printed"] = outcome["pages"]
        result[org_id]["seconds"]["print"] = outcome["seconds"]
    return {"municipalities": result, "seconds_total": round(time.perf_counter() - started, 2)}


def _print_all(printer: NoticePrinter, outcome: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    try:
        outcome["pages"] = printer.print_pending()
    except BaseException as exc:  # handed to the joining thread, which raises it
        outcome["error"] = exc
    outcome["seconds"] = round(time.perf_counter() - t0, 2)

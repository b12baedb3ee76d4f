"""Benchmark of portal logins with the card (challenge, reader signature, chain and OCSP check,
session), beside the raw RSA-2048 rates of the same run on the same machine.

``run(seconds, workers, data_dir)`` builds a small nation, issues one card per worker, and measures:

* ``raw`` — RSA-2048 PKCS#1 v1.5 / SHA-256 verify and sign per second on one core (cryptography /
  OpenSSL), measured in this run;
* ``pipeline`` — the whole login without HTTP, in ``workers`` processes at once: the portal's
  challenge (a row in its database), the reader's PIN check and signature (card file lock, read,
  RSA sign), the portal's checks (chain to the JPKI CA, the signature, an OCSP request answered by
  J-LIS's responder from J-LIS's database and the response's own signature checked, with J-LIS's
  serial → person lookup in the same call), and the session, its certificate and the login record
  written in one transaction.  Each process has its own
  portal database (SQLite); all read J-LIS's database;
* ``http`` — the same logins end to end as deployed: J-LIS and the portal each ``kojinbango serve``
  as its own process on its own port, ``workers`` client processes with ``http_clients`` holders
  in all (one thread and card each) doing challenge → reader signature → login over HTTP (the
  portal asks J-LIS for the OCSP response and the subscriber in one signed HTTP call).

Every figure is logins (or operations) per second over the measured window, never extrapolated.
Beside each rate the CPU seconds the work used (``logins_per_cpu_second``: the same logins divided
by the CPU time of the processes doing them — servers included for HTTP), and the load average
before the run: on a shared machine the wall-clock rate moves with other work, the per-CPU-second
figure much less.
Run: ``python bench/portal_logins.py --seconds 10 --workers 2 [--http-clients 8]`` prints one JSON
object.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

AADHAAR_PER_DAY = 100_000_000
AADHAAR_AVERAGE_PER_S = AADHAAR_PER_DAY / 86_400


def raw_rsa(seconds: float = 1.0) -> dict[str, float]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub, msg = key.public_key(), b"kojinbango-login\nportal\n" + os.urandom(48)
    sig = key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    out: dict[str, float] = {}
    for name, op in (
        ("rsa2048_verify_per_s", lambda: pub.verify(sig, msg, padding.PKCS1v15(), hashes.SHA256())),
        ("rsa2048_sign_per_s", lambda: key.sign(msg, padding.PKCS1v15(), hashes.SHA256())),
    ):
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            op()
            n += 1
        out[name] = round(n / elapsed)
    return out


def _prepare(data_dir: Path, workers: int) -> list[Path]:
    from kojinbango.holder import Client, issue_card, load_topology
    from kojinbango.nation import init_nation, intro, running

    init_nation(data_dir, max(60, workers * 10), seed=11)
    load_topology(data_dir)
    cards: list[Path] = []
    with running(data_dir) as nation:
        intro(nation)
        client = Client(nation.topology, nation.urls)
        from sqlalchemy import select

        from kojinbango.municipality.register.models import Resident

        org = nation.topology.of_kind("municipality")[0].id
        with nation.runtimes[org].db.transaction() as s:
            codes = list(
                s.scalars(
                    select(Resident.resident_code).where(Resident.status == "active").order_by(Resident.id)
                )
            )
        seen_households: set[str] = set()
        for code in codes:
            if len(cards) == workers:
                break
            try:
                out = data_dir / "cards" / f"bench-{len(cards)}.json"
                issue_card(client, code, "1234", None, out)
                cards.append(out)
            except Exception:  # e.g. a child under 15 cannot take the no-sign path? try the next
                continue
        del seen_households
        client.close()
    if len(cards) < workers:
        raise RuntimeError("could not issue enough cards for the benchmark")
    return cards


def _pipeline_worker(data_dir: str, card: str, seconds: float, index: int, queue: Any) -> None:
    from kojinbango.card.reader import CardReader
    from kojinbango.card.relying import JpkiVerifier, login_message
    from kojinbango.common.db import Database
    from kojinbango.common.topology import Topology
    from kojinbango.jlis.cards.centre import CardCentre
    from kojinbango.jlis.cards.jpki import JpkiCa
    from kojinbango.portal import records_models
    from kojinbango.portal.app import MIGRATIONS
    from kojinbango.portal.service import PortalService

    topo = Topology.load(Path(data_dir) / "topology.json")
    jlis_db = Database(topo.database_url("jlis"))
    ca = JpkiCa(topo.resolve("secrets/jlis/jpki"))
    centre = CardCentre(jlis_db, ca, lambda *a: None, lambda lg: lg, "http://crl", b"k" * 32)

    verifier = JpkiVerifier(lambda: ca.pem().decode(), lambda: "")
    db = Database(
        f"sqlite:///{data_dir}/bench-portal-{index}.db",
        MIGRATIONS,
        extra_migrations=[(records_models.MIGRATIONS, records_models.VERSION_TABLE)],
    )
    # J-LIS's login check without the HTTP hop: OCSP response (signed by the CA, checked by the
    # portal) and subscriber, from J-LIS's database.
    portal = PortalService(
        db, "portal", verifier, lambda serial, der: centre.login_check(serial, "portal", der)
    )
    reader = CardReader(Path(card))
    cert = base64.b64encode(reader.auth_certificate()).decode()

    def one() -> None:
        ch = portal.challenge()
        sig = reader.sign_auth("1234", login_message(ch["portal"], ch["challenge_id"], ch["challenge"]))
        portal.login(ch["challenge_id"], cert, base64.b64encode(sig).decode())

    for _ in range(20):
        one()  # warm-up
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - t0) < seconds:
        one()
        n += 1
    queue.put((n, elapsed, time.process_time() - c0))


def _http_worker(portal_url: str, cards: list[str], seconds: float, start_at: float, queue: Any) -> None:
    """One client process; one thread per card (a holder at their own reader), all logging in."""
    import threading

    import httpx

    from kojinbango.card.reader import CardReader
    from kojinbango.card.relying import login_message

    counts: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def holder(card: str) -> None:
        reader = CardReader(Path(card))
        cert = base64.b64encode(reader.auth_certificate()).decode()
        with httpx.Client(base_url=portal_url, timeout=30) as http:

            def one() -> None:
                ch = http.post("/login/challenge").json()
                msg = login_message(ch["portal"], ch["challenge_id"], ch["challenge"])
                sig = reader.sign_auth("1234", msg)
                r = http.post(
                    "/login",
                    json={
                        "challenge_id": ch["challenge_id"],
                        "certificate": cert,
                        "signature": base64.b64encode(sig).decode(),
                    },
                )
                if r.status_code != 200:
                    raise RuntimeError(f"login refused: {r.text}")

            try:
                for _ in range(5):
                    one()
                while time.time() < start_at:
                    time.sleep(0.005)
                n = 0
                while time.time() < start_at + seconds:
                    one()
                    n += 1
            except Exception as exc:  # reported, and the run fails
                with lock:
                    failures.append(str(exc)[:300])
                return
        with lock:
            counts.append(n)

    threads = [threading.Thread(target=holder, args=(c,)) for c in cards]
    for t in threads:
        t.start()
    while time.time() < start_at:
        time.sleep(0.001)
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError("; ".join(failures))
    queue.put((sum(counts), time.perf_counter() - t0, time.process_time() - c0))


def _gather(procs: list[Any], queue: Any) -> tuple[int, float, float]:
    """(logins, wall-clock window, CPU seconds the workers used)."""
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise RuntimeError("a benchmark worker failed")
    total = sum(r[0] for r in results)
    window = max(r[1] for r in results)
    return total, window, sum(r[2] for r in results)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, deadline: float) -> None:
    import httpx

    while time.time() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def run(seconds: float, workers: int, data_dir: Path, http_clients: int = 8) -> dict[str, Any]:
    """``workers`` processes for the pipeline and as HTTP clients; over HTTP ``http_clients``
    holders log in at once (threads spread over the client processes, one card each): a portal
    serves many people at a time, and one sequential client per core measures only latency."""
    ctx = mp.get_context("fork")
    http_clients = max(http_clients, workers)
    cards = _prepare(data_dir, http_clients)
    raw = raw_rsa()

    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_pipeline_worker, args=(str(data_dir), str(cards[i]), seconds, i, queue))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    load_before = _load()
    total, window, cpu = _gather(procs, queue)
    pipeline = round(total / window)

    from kojinbango.common.topology import Topology

    topo = Topology.load(data_dir / "topology.json")
    for org in topo.organisations.values():
        org.base_url = f"http://127.0.0.1:{_free_port()}"
    topo.save()
    servers = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for org_id in ("jlis", "portal"):
            servers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "kojinbango.cli",
                        "serve",
                        org_id,
                        "--topology",
                        str(data_dir / "topology.json"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            )
        deadline = time.time() + 60
        for org_id in ("jlis", "portal"):
            _wait(topo.org(org_id).base_url, deadline)
        portal_url = topo.org("portal").base_url
        queue = ctx.Queue()
        start_at = time.time() + 3
        procs = [
            ctx.Process(
                target=_http_worker,
                args=(portal_url, [str(c) for c in cards[i::workers]], seconds, start_at, queue),
            )
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        time.sleep(max(0.0, start_at - time.time()))
        server_cpu0 = sum(_cpu_seconds(s.pid) for s in servers)
        total_http, window_http, client_cpu = _gather(procs, queue)
        server_cpu = sum(_cpu_seconds(s.pid) for s in servers) - server_cpu0
    finally:
        for s in servers:
            s.terminate()
            s.wait(timeout=30)
    http = round(total_http / window_http)
    cores = os.cpu_count() or 1
    return {
        "benchmark": "portal_logins",
        "cpu_count": cores,
        "workers": workers,
        "seconds": seconds,
        "raw": raw,
        "load_average_before": load_before,
        "pipeline": {
            "logins": total,
            "logins_per_s": pipeline,
            "cpu_seconds": round(cpu, 2),
            "logins_per_cpu_second": round(total / cpu),
            "per_login_ms_per_worker": round(1000 * workers / pipeline, 3),
            "ratio_to_raw_verify_all_workers": round(
                pipeline / (raw["rsa2048_verify_per_s"] * min(workers, cores)), 4
            ),
            "ratio_to_raw_sign_all_workers": round(
                pipeline / (raw["rsa2048_sign_per_s"] * min(workers, cores)), 4
            ),
        },
        "http": {
            "concurrent_clients": http_clients,
            "logins": total_http,
            "logins_per_s": http,
            "cpu_seconds_servers": round(server_cpu, 2),
            "cpu_seconds_clients": round(client_cpu, 2),
            "logins_per_cpu_second": round(total_http / (server_cpu + client_cpu)),
            "ratio_to_raw_verify_all_workers": round(
                http / (raw["rsa2048_verify_per_s"] * min(workers, cores)), 4
            ),
        },
        "aadhaar_average_per_s": round(AADHAAR_AVERAGE_PER_S),
        "pipeline_meets_aadhaar_average": pipeline >= AADHAAR_AVERAGE_PER_S,
        "http_meets_aadhaar_average": http >= AADHAAR_AVERAGE_PER_S,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--http-clients", type=int, default=8, help="holders logging in at once over HTTP")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.seconds, args.workers, Path(tmp) / "nation", args.http_clients)
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()

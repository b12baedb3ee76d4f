"""`kojinbango bench exchange --queries N --concurrency C`: end-to-end exchanges against the same hops bare.

*Exchanges*: 日本年金機構's staff API asks municipality A for 地方税関係情報 (row pension-exemption) —
the agency's business system and its intermediate server → the network's IF and core (legal table,
符号 translation, the exchange and its Merkle-log record) → the joint intermediate server (副本 lookup,
signed answer document, the provider's record) → back, verified and stored with the querier's record.
Each organisation runs as its own process (`kojinbango serve`), on SQLite (or, with ``--pg-url``,
each on its own PostgreSQL database), with signed HTTP.

*Bare hops*: three processes on the stack the exchange path runs on — FastAPI on uvicorn, each hop's
route answered by a middleware past the router, onward calls with the project's ``Client`` from the
event loop — client → agency stand-in → network
stand-in → intermediate stand-in and back, passing the same JSON with no signatures, no database,
no authorisation.

Both are driven by C concurrent clients (one asyncio thread; ``Client``: keep-alive HTTP/1.1, the
answers parsed by httptools) for N requests after a warm-up, in alternating stretches (``ROUNDS``:
exchange then bare, bare then exchange, …) so that a change in the host's speed during the run
weighs on both alike; then the exchanges again as an open-loop load at 80% of the measured rate, for
the latency there, and at each rate given with ``--rate`` (e.g. 400/s: 80 % of a 500/s target); and
the bare chain the same way (at 80 % of its own rate and at each ``--rate``), the latency its stack
alone has on this machine; and each one request at a time (``exchange_alone``, ``bare_hops_alone``:
the round trip with no load). Prints one JSON object; beside the rates, ``cpu_ms_per_query`` (the
CPU all processes spent per request) and ``cpu_ratio`` (bare over exchange), which move less with
the host's load, and ``targets``."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from kojinbango.common.httpclient import Client
from kojinbango.common.transport import request_body

SERVED = ("network", "intermediate", "nenkin")


def _free_ports(n: int) -> list[int]:
    """``n`` different free ports (held open while choosing, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"a service exited: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError("a service did not start")


def host_profile() -> dict[str, Any]:
    """What the machine is, measured the same way on every run, so that runs on different hosts can
    be told apart (the figures move with the host far more than with most changes to the code): the
    CPU's model, the cores, a loop of three million additions in Python and a P-256 signature and
    its check (the exchange path's signature), each the best of three."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def best(f: Callable[[], object], repeat: int = 3) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return min(times)

    def loop() -> int:
        x = 0
        for i in range(3_000_000):
            x += i
        return x

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()  # derived once: the check alone is timed
    message, algorithm = b"k" * 256, ec.ECDSA(hashes.SHA256())
    signature = key.sign(message, algorithm)
    n = 500
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python_loop_ms": round(best(loop) * 1000, 1),
        "p256_sign_us": round(best(lambda: [key.sign(message, algorithm) for _ in range(n)]) / n * 1e6, 1),
        "p256_verify_us": round(
            best(lambda: [public.verify(signature, message, algorithm) for _ in range(n)]) / n * 1e6,
            1,
        ),
    }


# --- the bare hops -----------------------------------------------------------------------------
def stub_app(next_url: str | None) -> Any:
    """A stand-in hop on the organisations' own stack: FastAPI on uvicorn, the hop's route answered
    by a middleware in the place of the signature middleware, past the router (as the exchange
    path's routes are: ``direct_json_route``), onward calls with the project's ``Client`` from the
    event loop (as ``SignedClient.acall``), JSON parsed and re-encoded at every hop."""
    from fastapi import FastAPI

    app = FastAPI()
    clients: list[Client] = []

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def answer(path: str, raw: bytes) -> tuple[int, bytes]:
        payload = json.loads(raw)
        if path == "/relay" and next_url is not None:
            if not clients:
                clients.append(Client())
            status, got = await clients[0].post(next_url, json.dumps(payload).encode())
            if status != 200:
                return 502, b'{"detail": "the next hop failed"}'
            payload = json.loads(got)
        return 200, json.dumps(payload).encode()

    class Direct:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if (
                scope["type"] != "http"
                or scope["method"] != "POST"
                or scope["path"] not in ("/hop", "/relay")
            ):
                await self.app(scope, receive, send)
                return
            status, out = await answer(scope["path"], await request_body(receive))
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": out})

    app.add_middleware(Direct)
    return app


def serve_stub(port: int, next_url: str) -> None:
    import uvicorn

    uvicorn.run(
        stub_app(next_url or None), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


# --- load ----------------------------------------------------------------------------------------
# The load comes from one asyncio thread with ``Client``: the driver's own CPU (it shares the two
# cores with the services) stays small and the same for both measurements.
Send = Callable[[Client, int], Awaitable[None]]
ROUNDS = 4  # the closed-loop measurements, exchange and bare, alternate in this many stretches


STEAL = "(steal)"  # in a ``_cpu_seconds`` reading: the machine's steal time, not a process


def _cpu_seconds(pids: dict[str, int] | None) -> dict[str, float]:
    """CPU time (user + system) each of the processes ``pids`` (by name) and this one (``driver``)
    have used so far, and the time the host took the machine's CPUs away (``STEAL``: a virtual
    machine's neighbours); nothing without ``pids`` or off Linux."""
    if pids is None or not os.path.exists("/proc/self/stat"):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    out = {"driver": time.process_time()}
    for name, pid in pids.items():
        with open(f"/proc/{pid}/stat") as f:  # fields after the command name; 14th/15th: utime, stime
            fields = f.read().rsplit(")", 1)[1].split()
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    with open("/proc/stat") as f:  # "cpu user nice system idle iowait irq softirq steal …", all CPUs
        out[STEAL] = int(f.readline().split()[8]) / tick
    return out


def _cpu_per_query(
    before: dict[str, float], after: dict[str, float], completed: int, elapsed: float
) -> dict[str, Any]:
    """``cpu_ms_per_query`` (all processes) and ``cpu_ms_per_query_by_process`` between two
    ``_cpu_seconds`` readings ``elapsed`` seconds apart, and ``host_steal_percent`` (of all the
    machine's CPU time then: a latency that moves with it is the host's, not the services');
    nothing when there were none or no request completed."""
    if not before or not completed:
        return {}
    per = {k: (after[k] - before[k]) * 1000 / completed for k in before if k != STEAL}
    out: dict[str, Any] = {
        "cpu_ms_per_query": round(sum(per.values()), 3),
        "cpu_ms_per_query_by_process": {k: round(v, 3) for k, v in per.items()},
    }
    if STEAL in before and elapsed > 0:
        steal = after[STEAL] - before[STEAL]
        out["host_steal_percent"] = round(100 * steal / (elapsed * (os.cpu_count() or 1)), 1)
    return out


class _Sample:
    """What one closed-loop stretch measured: each latency, the errors, the time it took and the
    CPU each process used in it (summed over the stretches of one measurement)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.elapsed = 0.0
        self.cpu: dict[str, float] = {}

    def add_cpu(self, before: dict[str, float], after: dict[str, float]) -> None:
        for k in before:
            self.cpu[k] = self.cpu.get(k, 0.0) + after[k] - before[k]

    def summary(self) -> dict[str, Any]:
        zero = dict.fromkeys(self.cpu, 0.0)
        return _summary(self.latencies, self.errors, self.elapsed) | _cpu_per_query(
            zero, self.cpu, len(self.latencies), self.elapsed
        )


def _closed_loop(send: Send, n: int, concurrency: int, pids: dict[str, int] | None, into: _Sample) -> None:
    async def main() -> None:
        counter = iter(range(n))

        async def one_client(session: Client) -> None:
            for i in counter:
                t0 = time.perf_counter()
                try:
                    await send(session, i)
                except Exception:
                    into.errors += 1
                    continue
                into.latencies.append((time.perf_counter() - t0) * 1000)

        session = Client(concurrency)
        try:
            cpu0 = _cpu_seconds(pids)
            start = time.perf_counter()
            await asyncio.gather(*(one_client(session) for _ in range(concurrency)))
            into.elapsed += time.perf_counter() - start
            into.add_cpu(cpu0, _cpu_seconds(pids))
        finally:
            await session.close()

    asyncio.run(main())


def closed_loop(send: Send, n: int, concurrency: int, pids: dict[str, int] | None = None) -> dict[str, Any]:
    """``concurrency`` clients, each sending its next request as soon as it has the answer.

    ``pids``: the server processes by name; their CPU and the driver's, per completed request, is
    reported as ``cpu_ms_per_query`` and by process (Linux /proc; left out elsewhere)."""
    sample = _Sample()
    _closed_loop(send, n, concurrency, pids, sample)
    return sample.summary()


def interleaved(
    loads: Sequence[tuple[Send, dict[str, int] | None]], n: int, concurrency: int, rounds: int = ROUNDS
) -> list[dict[str, Any]]:
    """A closed loop of ``n`` requests for each of ``loads`` (a sender and its processes), measured
    in ``rounds`` alternating stretches — A B, B A, A B, … — so that a change in the host's speed
    during the run (a shared machine's neighbours, its clock) weighs on each alike."""
    samples = [_Sample() for _ in loads]
    for r in range(rounds):
        part = n // rounds + (1 if r < n % rounds else 0)
        order = range(len(loads)) if r % 2 == 0 else reversed(range(len(loads)))
        for k in order:
            if part:
                _closed_loop(loads[k][0], part, concurrency, loads[k][1], samples[k])
    return [s.summary() for s in samples]


def open_loop(
    send: Send,
    rate: float,
    n: int,
    pids: dict[str, int] | None = None,
    record: list[tuple[float, float]] | None = None,
    readings: tuple[float, list[dict[str, float]]] | None = None,
) -> dict[str, Any]:
    """Requests started on a fixed schedule (``rate`` per second), whatever the answers do; each
    latency counts from when its request was due.  ``pids``: as for ``closed_loop``.  ``record``:
    gets (seconds from the start when it was due, latency ms) of every completed request.
    ``readings``: (every, into) — a ``_cpu_seconds`` reading is added to ``into`` at the start and
    every ``every`` seconds from it, and one at the end."""

    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        errors = 0

        async def one(session: Client, i: int, due: float) -> None:
            nonlocal errors
            try:
                await send(session, i)
            except Exception:
                errors += 1
                return
            latencies.append((time.perf_counter() - due) * 1000)
            if record is not None and i >= 0:
                record.append((i / rate, latencies[-1]))  # when it was due, from the start

        session = Client(0)
        try:
            # open the connections first, unmeasured (else the schedule starts with dozens opening)
            await asyncio.gather(*(one(session, -1, time.perf_counter()) for _ in range(32)))
            latencies.clear()
            cpu0 = _cpu_seconds(pids)
            start = time.perf_counter() + 0.1
            sampler = asyncio.create_task(_read_every(start, readings, pids)) if readings else None
            # only the requests still running are held: a long run (``sustained``) that kept every
            # finished task would slow its own driver down as the heap grew
            running: set[asyncio.Task[None]] = set()
            for i in range(n):
                due = start + i / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                task = asyncio.create_task(one(session, i, due))
                running.add(task)
                task.add_done_callback(running.discard)
            while running:
                await asyncio.gather(*list(running))
            elapsed = time.perf_counter() - start
            cpu1 = _cpu_seconds(pids)
            if sampler is not None and readings is not None:
                sampler.cancel()
                readings[1].append(cpu1)
        finally:
            await session.close()
        out = _summary(latencies, errors, elapsed) | _cpu_per_query(cpu0, cpu1, len(latencies), elapsed)
        out["offered_per_s"] = round(rate, 1)
        return out

    return asyncio.run(main())


async def _read_every(
    start: float, readings: tuple[float, list[dict[str, float]]], pids: dict[str, int] | None
) -> None:
    every, into = readings
    k = 0
    while True:
        pause = start + k * every - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        into.append(_cpu_seconds(pids))
        k += 1


def sustained(send: Send, rate: float, seconds: float, pids: dict[str, int] | None = None) -> dict[str, Any]:
    """``open_loop`` held for ``seconds``, with the latency of each window of it (10 s, or a sixth
    of a shorter run): what grows with time — a table, a cache, a window of nonces — shows as a
    drift from window to window that a short run never reaches.  With ``pids``, each window also
    has the CPU per request and the host's steal time in it: a drift with CPU per request flat and
    steal moving is the host's."""
    record: list[tuple[float, float]] = []
    width = 10.0 if seconds >= 60 else max(seconds / 6, 0.1)
    marks: list[dict[str, float]] = []
    out = open_loop(send, rate, max(1, int(rate * seconds)), pids, record, (width, marks))
    windows: dict[int, list[float]] = {}
    for at, ms in record:
        windows.setdefault(int(at // width), []).append(ms)
    out["seconds"] = seconds
    out["window_s"] = round(width, 2)
    out["windows"] = [
        {"from_s": round(k * width, 1), **_summary(v, 0, width)}
        | {"max_ms": round(max(v), 2)}
        | (_cpu_per_query(marks[k], marks[k + 1], len(v), width) if k + 1 < len(marks) else {})
        for k, v in sorted(windows.items())
    ]
    return out


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else 0.0

    return {
        "queries_per_s": round(len(lat) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else 0.0,
        "completed": len(lat),
        "errors": errors,
    }


# --- the nation ----------------------------------------------------------------------------------
PROVIDER = "m131016"  # municipality A, which the agency asks


def served(direct: bool) -> tuple[str, ...]:
    """The processes of the exchange path: the provider's side is the joint intermediate server,
    or in direct mode (論点2) the municipality itself."""
    return ("network", PROVIDER, "nenkin") if direct else SERVED


def build_nation(
    d: Path, residents: int, databases: Callable[[str], str] | None = None, direct: bool = False
) -> list[str]:
    """A prepared nation; returns 個人番号 of people the agency may ask A about (符号 already held).

    ``databases``: a database URL for each organisation (PostgreSQL), else SQLite files in ``d``.
    ``direct``: municipality A in direct mode (``kojinbango.direct``)."""
    from sqlalchemy import select

    from kojinbango import demo, linkage_setup
    from kojinbango.common.topology import Topology
    from kojinbango.domain.jst import today_jst
    from kojinbango.municipality.addressee.models import Addressee, RecordLink
    from kojinbango.municipality.linkage.copies import LINKED
    from kojinbango.municipality.linkage.models import CopyState
    from kojinbango.nation import create_deployment, init_nation, intro, running

    if databases is not None:
        deployment = create_deployment(d)
        for org in deployment.organisations.values():
            org.database_url = databases(org.id)
        if direct:
            databases(f"{PROVIDER}_linkage")  # its linkage side's database (common.linkage)
        deployment.save()
    init_nation(d, residents, seed=11, direct=[PROVIDER[1:]] if direct else ())
    with running(d) as nation:
        intro(nation)
        demo.move(nation, 11, today_jst())
        linkage_setup.prepare(nation, 11)
        a = nation.municipalities()[0]
        # people A holds 地方税関係情報 of: a 副本 registered, or in direct mode a linked 課税台帳 record
        held = (
            select(Addressee.my_number)
            .join(RecordLink, RecordLink.addressee_id == Addressee.id)
            .where(RecordLink.system == "tax", RecordLink.status.in_(LINKED))
            if direct
            else select(Addressee.my_number)
            .join(CopyState, CopyState.addressee_id == Addressee.id)
            .where(CopyState.category == "地方税関係情報")
        )
        with a.db.transaction() as s:
            numbers = list(s.scalars(held.where(Addressee.my_number.is_not(None)).distinct().limit(200)))
        agency = nation.runtime("agency").services["agency"]
        for n in numbers:
            agency.register(n)
        agency.ensure_fugo()
    topo = Topology.load(d / "topology.json")
    for org, port in zip(topo.organisations.values(), _free_ports(len(topo.organisations)), strict=True):
        org.base_url = f"http://127.0.0.1:{port}"
    topo.save()
    return [str(n) for n in numbers]


class PgDatabases:
    """A fresh PostgreSQL database per organisation on the server of ``base_url``, dropped after."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.created: list[str] = []
        self.tag = os.urandom(3).hex()

    def __call__(self, org_id: str) -> str:
        import psycopg

        name = f"kb_bench_{self.tag}_{org_id}"
        try:
            with psycopg.connect(self.base_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:  # reported by the CLI as a usage error, not a traceback
            raise ValueError(f"--pg-url: cannot create a database on that server ({exc})") from None
        self.created.append(name)
        return self.base_url.rsplit("/", 1)[0] + "/" + name

    def drop(self) -> None:
        import psycopg

        if not self.created:
            return
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(
    queries: int,
    concurrency: int,
    residents: int = 300,
    pg_url: str | None = None,
    rates: Sequence[float] = (),
    sustain: float | None = None,
    direct: bool = False,
) -> dict[str, Any]:
    """``pg_url``: every organisation on its own PostgreSQL database on that server (else SQLite).
    ``rates``: offered loads (exchanges per second) at which to measure the latency as well, each
    an open-loop run like the one at 80 % (``exchange_at_rates``).  ``sustain``: then hold the last
    of ``rates`` (or 80 % of the measured rate) for that many seconds (``sustained``).  ``direct``:
    municipality A answers in direct mode (論点2) — no intermediate server on the provider's side,
    the answer read from its 正本 — for comparison with the joint intermediate server."""
    if queries < 1 or not 1 <= concurrency <= 10_000:
        raise ValueError("--queries must be at least 1 and --concurrency from 1 to 10000")
    if sustain is not None and not 0 < sustain <= 3600:
        raise ValueError(f"--sustain must be above 0 and at most 3600 seconds (got {sustain:g})")
    bad = [r for r in rates if not 0 < r <= 100_000]
    if bad:
        raise ValueError(f"--rate must be above 0 and at most 100000 exchanges per second (got {bad[0]:g})")
    from kojinbango.common.signing import InternalKey, sign_request
    from kojinbango.common.topology import Topology

    host = host_profile()  # before anything runs beside it
    tmp = Path(tempfile.mkdtemp(prefix="kb-bench-exchange-"))
    procs: list[subprocess.Popen[bytes]] = []
    pg = PgDatabases(pg_url) if pg_url else None
    try:
        t0 = time.perf_counter()
        numbers = build_nation(tmp / "nation", residents, pg, direct)
        setup_s = time.perf_counter() - t0
        topo = Topology.load(tmp / "nation" / "topology.json")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for org in served(direct):
            log = tmp / f"{org}.log"
            p = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kojinbango.cli",
                    "serve",
                    org,
                    "--topology",
                    str(tmp / "nation" / "topology.json"),
                ],
                stdout=open(log, "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs.append(p)
            _wait(topo.org(org).base_url, p, log)
        query_path = "/staff/linkage/api/query"
        agency_url = topo.org("nenkin").base_url + query_path
        # the agency's own staff system asks, with the agency's MAC for its internal interfaces (as the
        # kojinbango commands on its side do)
        nenkin = topo.credentials("nenkin")
        mac = InternalKey.of(nenkin)
        rng = random.Random(5)

        async def exchange(session: Client, i: int) -> None:
            body = {"my_number": numbers[rng.randrange(len(numbers))], "provider": "131016",
                    "affair": "pension-exemption", "info": "地方税関係情報", "wait_seconds": 10}  # fmt: skip
            raw = json.dumps(body, ensure_ascii=False).encode()
            signed = sign_request(nenkin, "POST", query_path, "", raw, "nenkin", mac)
            status, got = await session.post(agency_url, raw, signed)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            answer = json.loads(got)
            if answer["status"] != "answered" or answer["signature_valid"] is not True:
                raise RuntimeError(answer["status"])

        # the bare hops: three stand-in processes in a chain, running beside the organisations (idle
        # while the other is measured) so that the two closed loops can alternate
        stubs: list[subprocess.Popen[bytes]] = []
        ports = _free_ports(3)
        nxt = [f"http://127.0.0.1:{ports[1]}/relay", f"http://127.0.0.1:{ports[2]}/hop", ""]
        for port, url in zip(ports, nxt, strict=True):
            log = tmp / f"stub-{port}.log"
            p = subprocess.Popen(
                [sys.executable, __file__, "stub", str(port), url],
                stdout=open(log, "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            procs.append(p)
            stubs.append(p)
            _wait(f"http://127.0.0.1:{port}", p, log)
        sample = {"exchange_id": "EX20250101-00000001", "status": "answered",
                  "answer": {"payload": {"data": {"assessments": [{"fiscal_year": 2025, "taxable": True,
                             "total_income": 3000000, "tax_amount": 250000}]}}, "signature": "x" * 96}}  # fmt: skip
        first = f"http://127.0.0.1:{ports[0]}/relay"
        sample_raw = json.dumps(sample).encode()

        async def bare(session: Client, i: int) -> None:
            status, _ = await session.post(first, sample_raw)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")

        gc.collect()
        gc.freeze()  # the driver's own heap (it built the nation) out of the collector's full passes
        closed_loop(exchange, min(100, queries), concurrency)  # warm-up
        closed_loop(bare, min(100, queries), concurrency)
        pids = dict(zip(served(direct), (p.pid for p in procs[: len(SERVED)]), strict=True))
        hops = {f"hop{i}": p.pid for i, p in enumerate(stubs)}
        ours, plain = interleaved([(exchange, pids), (bare, hops)], queries, concurrency)
        n_open = max(200, queries // 2)  # requests in each open-loop run
        at80 = open_loop(exchange, max(1.0, 0.8 * ours["queries_per_s"]), n_open, pids)
        at_rates = [open_loop(exchange, rate, n_open, pids) for rate in rates]
        # the same open loops on the bare chain: the latency its stack alone has at 80 % of its own
        # rate and at each given rate on this machine — the floor the exchange's latency is read against
        bare80 = open_loop(bare, max(1.0, 0.8 * plain["queries_per_s"]), n_open, hops)
        bare_rates = [open_loop(bare, rate, n_open, hops) for rate in rates]
        # one request at a time on otherwise idle services: the round trip with no queue anywhere and
        # nothing to batch with — what a batch's round trip starts from before the load stretches it
        n_alone = max(20, min(300, queries // 10))
        alone = closed_loop(exchange, n_alone, 1, pids)
        bare_alone = closed_loop(bare, n_alone, 1, hops)
        held = (
            sustained(exchange, rates[-1] if rates else at80["offered_per_s"], sustain, pids)
            if sustain is not None
            else None
        )
        ratio = ours["queries_per_s"] / plain["queries_per_s"] if plain["queries_per_s"] else None
        at400 = next((r for r in at_rates if r["offered_per_s"] == 400.0), None)
        return {
            "queries": queries,
            "concurrency": concurrency,
            "rounds": ROUNDS,
            "cpus": os.cpu_count(),
            "host": host,
            "exchange": ours,
            "exchange_at_80_percent": at80,
            **({"exchange_at_rates": at_rates} if rates else {}),
            **({"sustained": held} if held is not None else {}),
            "exchange_alone": alone,
            "bare_hops": plain,
            "bare_hops_at_80_percent": bare80,
            **({"bare_hops_at_rates": bare_rates} if rates else {}),
            "bare_hops_alone": bare_alone,
            "queries_per_s": ours["queries_per_s"],
            "p50_ms": ours["p50_ms"],
            "p99_ms": ours["p99_ms"],
            "ratio": round(ratio, 3) if ratio is not None else None,
            # what one request costs in CPU, all processes together: steadier across machines and
            # runs than the rates, which move with the host's load
            "cpu_ratio": round(plain["cpu_ms_per_query"] / ours["cpu_ms_per_query"], 3)
            if ours.get("cpu_ms_per_query") and plain.get("cpu_ms_per_query")
            else None,
            # the targets, as measured in this run (the 80 % load is 80 % of this run's rate)
            "targets": {
                "at_least_500_per_s": ours["queries_per_s"] >= 500,
                "ratio_at_least_0_5": ratio is not None and ratio >= 0.5,  # unrounded
                "p99_under_50_ms_at_80_percent": at80["completed"] > 0 and at80["p99_ms"] < 50,
                # the other reading of "80 % of that load": 80 % of the 500/s target (only with --rate 400)
                "p99_under_50_ms_at_400_per_s": at400["completed"] > 0 and at400["p99_ms"] < 50
                if at400 is not None
                else None,
            },
            "setup_seconds": round(setup_s, 1),
            "databases": "postgresql" if pg else "sqlite",
            # the provider's side: the joint intermediate server, or municipality A itself (論点2)
            "provider_mode": "direct" if direct else "intermediate",
            "note": "exchange = agency staff API → agency + its intermediate server → network IF/core → "
            + ("municipality A itself (direct mode)" if direct else "joint intermediate server")
            + " → back; bare_hops = the same three server processes relaying JSON only",
        }
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        if pg is not None:
            pg.drop()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "stub":
        serve_stub(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
    else:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
        c = int(sys.argv[2]) if len(sys.argv) > 2 else 16
        print(json.dumps(run(n, c), ensure_ascii=False))

"""Helpers of the information-linkage tests (a plain module: the test directories are not packages)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from kojinbango import linkage_setup
from kojinbango.common.topology import Topology
from kojinbango.nation import Nation

A, B = "m131016", "m131041"


def scenarios(d: Path) -> list[dict[str, Any]]:
    return list(json.loads((d / linkage_setup.SCENARIOS_FILE).read_text(encoding="utf-8")))


def args_of(command: str) -> dict[str, str]:
    parts = command.split()[3:]
    return {a[2:]: b for a, b in zip(parts[::2], parts[1::2], strict=True)}


def querier_service(nation: Nation, querier: str) -> Any:
    from kojinbango.common.linkage import org_of_public_id

    org = org_of_public_id(nation.topology, querier)
    services = nation.runtimes[org].services
    return services.get("linkage") or services["agency"]


def ask(nation: Nation, command: str) -> dict[str, Any]:
    a = args_of(command)
    result: dict[str, Any] = querier_service(nation, a["querier"]).query(
        a["my-number"], a["provider"], a["affair"], a["info"]
    )
    return result


def concurrent_signed_posts(nation: Nation, signer: str, to: str, path: str, bodies: list[Any]) -> list[Any]:
    """``bodies`` posted to ``to`` all at once, each signed by ``signer`` (as its own systems sign):
    the answers, in order (each must be 200)."""
    import asyncio

    import aiohttp

    from kojinbango.common.signing import sign_request

    creds = nation.topology.credentials(signer)

    async def one(session: aiohttp.ClientSession, payload: Any) -> Any:
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = sign_request(creds, "POST", path, "", body, to)
        headers["content-type"] = "application/json"
        async with session.post(nation.urls[to] + path, data=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def all_at_once() -> list[Any]:
        async with aiohttp.ClientSession() as session:
            return list(await asyncio.gather(*(one(session, b) for b in bodies)))

    return asyncio.run(all_at_once())


def concurrent_pension_queries(nation: Nation, n: int) -> list[dict[str, Any]]:
    """The agency's pension scenario asked ``n`` times at once through its staff API."""
    command = next(s["command"] for s in scenarios(nation.topology.path.parent) if "pension" in s["command"])
    a = args_of(command)
    query = {"my_number": a["my-number"], "provider": a["provider"], "affair": a["affair"], "info": a["info"]}
    return concurrent_signed_posts(nation, "nenkin", "nenkin", "/staff/linkage/api/query", [query] * n)


def cli_args(command: str, d: Path) -> list[str]:
    """The scenario's command line (without `kojinbango`) pointed at data directory ``d``."""
    parts = command.split()[1:]
    parts[parts.index("--data-dir") + 1] = str(d)
    return parts


def free_ports(n: int) -> list[int]:
    """``n`` different free ports (all held open while choosing, so none is handed out twice)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class Services:
    """Organisations as separate processes (`kojinbango serve`), each killable with SIGKILL."""

    def __init__(self, d: Path):
        self.d = d
        topo = Topology.load(d / "topology.json")
        for org, port in zip(topo.organisations.values(), free_ports(len(topo.organisations)), strict=True):
            org.base_url = f"http://127.0.0.1:{port}"
        topo.save()
        self.topology = topo
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, org: str) -> str:
        return self.topology.org(org).base_url

    def start(self, org: str, env: dict[str, str] | None = None) -> None:
        log = open(self.d / f"serve-{org}.log", "ab")  # noqa: SIM115
        self.procs[org] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kojinbango.cli",
                "serve",
                org,
                "--topology",
                str(self.d / "topology.json"),
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, **(env or {})},
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                r = httpx.get(self.url(org) + "/healthz", timeout=1)
                if r.status_code == 200 and r.json().get("organisation") == org:
                    return
            except httpx.HTTPError:
                pass
            if self.procs[org].poll() is not None:
                raise RuntimeError(f"{org} exited: {(self.d / f'serve-{org}.log').read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{org} did not start")

    def kill(self, org: str) -> None:
        p = self.procs.pop(org)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)

    def wait_exit(self, org: str, timeout: float = 30) -> int:
        p = self.procs.pop(org)
        return p.wait(timeout=timeout)

    def stop_all(self) -> None:
        for org in list(self.procs):
            self.kill(org)

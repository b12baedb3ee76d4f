"""`kojinbango bench exchange` still runs end to end (a smoke run: small, and no timing asserted —
the figures are the bench's job, not a test's)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _bench() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "exchange.py"
    spec = importlib.util.spec_from_file_location("kojinbango_bench_exchange_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_exchange_bench_runs_every_exchange_and_reports_both_chains() -> None:
    out = _bench().run(40, 4, residents=150, rates=[120.0, 400.0], sustain=1.2)
    json.dumps(out)  # one JSON object
    ours, at80, bare = out["exchange"], out["exchange_at_80_percent"], out["bare_hops"]
    assert ours["completed"] == 40 and ours["errors"] == 0  # every exchange answered, signature valid
    assert at80["errors"] == 0 and at80["completed"] == 200
    # the latency at a given offered load (--rate), with the CPU it cost
    at_rate, at400 = out["exchange_at_rates"]
    assert at_rate["offered_per_s"] == 120.0 and at_rate["completed"] == 200 and at_rate["errors"] == 0
    assert 0 < at_rate["p50_ms"] <= at_rate["p99_ms"]
    assert set(at_rate["cpu_ms_per_query_by_process"]) == {"driver", "network", "intermediate", "nenkin"}
    assert bare["completed"] == 40 and bare["errors"] == 0
    # the bare chain's latency under the same open loops: at 80 % of its own rate, and at each rate
    bare80 = out["bare_hops_at_80_percent"]
    assert bare80["offered_per_s"] == round(max(1.0, 0.8 * bare["queries_per_s"]), 1)
    assert bare80["completed"] == 200 and bare80["errors"] == 0 and 0 < bare80["p50_ms"] <= bare80["p99_ms"]
    assert [r["offered_per_s"] for r in out["bare_hops_at_rates"]] == [120.0, 400.0]
    assert all(r["completed"] == 200 and r["errors"] == 0 for r in out["bare_hops_at_rates"])
    assert set(bare80["cpu_ms_per_query_by_process"]) == {"driver", "hop0", "hop1", "hop2"}
    for key in ("queries_per_s", "p50_ms", "p99_ms", "ratio"):
        assert out[key] is not None and out[key] > 0
    assert out["ratio"] == round(ours["queries_per_s"] / bare["queries_per_s"], 3)
    assert out["databases"] == "sqlite" and out["provider_mode"] == "intermediate"
    # the host, measured alike on every run so that runs on different machines can be told apart
    host = out["host"]
    assert host["cpus"] == os.cpu_count() and isinstance(host["cpu_model"], str)
    assert all(host[k] > 0 for k in ("python_loop_ms", "p256_sign_us", "p256_verify_us"))
    assert out["targets"] == {
        "at_least_500_per_s": ours["queries_per_s"] >= 500,
        "ratio_at_least_0_5": ours["queries_per_s"] / bare["queries_per_s"] >= 0.5,
        "p99_under_50_ms_at_80_percent": at80["p99_ms"] < 50,
        "p99_under_50_ms_at_400_per_s": at400["p99_ms"] < 50,  # 80 % of the 500/s target
    }
    assert at400["offered_per_s"] == 400.0 and at400["completed"] == 200
    # --sustain: the last rate held, with the latency of each window of the run
    held = out["sustained"]
    assert held["offered_per_s"] == 400.0 and held["completed"] == 480 and held["errors"] == 0
    assert held["window_s"] == 0.2 and sum(w["completed"] for w in held["windows"]) == 480
    assert [w["from_s"] for w in held["windows"]] == sorted(w["from_s"] for w in held["windows"])
    assert all(0 < w["p50_ms"] <= w["p99_ms"] <= w["max_ms"] for w in held["windows"])
    # each window's CPU per request and the host's steal time in it (a drift's cause: the services
    # or the host)
    assert all(w["cpu_ms_per_query"] > 0 and w["host_steal_percent"] >= 0 for w in held["windows"])
    assert set(held["windows"][0]["cpu_ms_per_query_by_process"]) == {
        "driver",
        "network",
        "intermediate",
        "nenkin",
    }
    assert ours["host_steal_percent"] >= 0 and bare["host_steal_percent"] >= 0
    # one request at a time, no load: the round trip a batch starts from, for both chains
    alone, bare_alone = out["exchange_alone"], out["bare_hops_alone"]
    assert alone["completed"] == bare_alone["completed"] == 20
    assert alone["errors"] == bare_alone["errors"] == 0
    assert 0 < alone["p50_ms"] <= alone["p99_ms"] and 0 < bare_alone["p50_ms"] <= bare_alone["p99_ms"]
    assert set(alone["cpu_ms_per_query_by_process"]) == {"driver", "network", "intermediate", "nenkin"}
    assert 0 < bare_alone["cpu_ms_per_query"] < alone["cpu_ms_per_query"]
    # the CPU of every process per request: an exchange does more than relaying JSON
    assert 0 < bare["cpu_ms_per_query"] < ours["cpu_ms_per_query"]
    assert out["cpu_ratio"] == round(bare["cpu_ms_per_query"] / ours["cpu_ms_per_query"], 3)


def test_the_bench_compares_the_direct_mode_provider() -> None:
    """``--direct`` (論点2): municipality A answers the network itself; its process is measured in the
    place of the joint intermediate server's, and every exchange is still answered and verified."""
    out = _bench().run(30, 4, residents=150, direct=True)
    assert out["provider_mode"] == "direct" and "municipality A itself" in out["note"]
    ours = out["exchange"]
    assert ours["completed"] == 30 and ours["errors"] == 0
    assert set(ours["cpu_ms_per_query_by_process"]) == {"driver", "network", "m131016", "nenkin"}
    assert out["exchange_alone"]["errors"] == 0 and out["ratio"] > 0


def test_a_rate_that_is_no_load_is_refused_before_anything_is_built(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kojinbango.cli import main

    assert main(["bench", "exchange", "--queries", "10", "--rate", "0"]) == 2
    assert "--rate must be above 0" in capsys.readouterr().err
    assert main(["bench", "exchange", "--concurrency", "0"]) == 2
    assert "--concurrency from 1 to 10000" in capsys.readouterr().err
    assert main(["bench", "exchange", "--sustain", "0"]) == 2
    assert "--sustain must be above 0" in capsys.readouterr().err


def test_the_two_closed_loops_alternate_so_a_drifting_host_weighs_on_both_alike() -> None:
    bench = _bench()
    sent: list[str] = []

    def load(name: str) -> Any:
        async def send(_session: Any, _i: int) -> None:
            sent.append(name)

        return send

    ours, bare = bench.interleaved([(load("exchange"), None), (load("bare"), None)], 10, 1, rounds=4)
    assert ours["completed"] == bare["completed"] == 10 and ours["errors"] == bare["errors"] == 0
    # stretches of 3, 3, 2 and 2 requests: A B, B A, A B, B A
    expected = ["exchange"] * 3 + ["bare"] * 6 + ["exchange"] * 5 + ["bare"] * 4 + ["exchange"] * 2
    assert sent == expected


def test_cpu_per_request_leaves_the_hosts_steal_time_out_and_reports_it_as_a_share() -> None:
    bench = _bench()
    before = {"driver": 1.0, "network": 2.0, bench.STEAL: 10.0}
    after = {"driver": 1.5, "network": 3.5, bench.STEAL: 10.0 + 0.2 * (os.cpu_count() or 1)}
    out = bench._cpu_per_query(before, after, 100, 2.0)
    assert out["cpu_ms_per_query_by_process"] == {"driver": 5.0, "network": 15.0}
    assert out["cpu_ms_per_query"] == 20.0
    assert out["host_steal_percent"] == 10.0  # 0.2 s per CPU in 2 s
    assert bench._cpu_per_query({}, {}, 100, 2.0) == {}


async def _tiny_server(mode: str, accepted: list[int]) -> Any:
    """A local HTTP/1.1 server for the driver's client: ``echo`` answers each POST with its body
    (keep-alive), ``hang_up`` closes without answering, ``silent`` never answers."""
    import asyncio

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                if mode == "hang_up":
                    break
                if mode == "silent":
                    await asyncio.sleep(5)
                    break
                status = b"200 OK" if body != b"fail" else b"500 Internal Server Error"
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_the_drivers_client_keeps_connections_alive_within_its_limit_and_reads_each_answer_whole() -> None:
    import asyncio

    bench = _bench()
    accepted: list[int] = []

    async def main() -> list[tuple[int, bytes]]:
        server = await _tiny_server("echo", accepted)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        client = bench.Client(limit=2)
        try:
            first = [await client.post(url, b'{"n": %d}' % i, {"x-test": "1"}) for i in range(5)]
            together = await asyncio.gather(*(client.post(url, b"y" * 70_000) for _ in range(6)))
            failed = await client.post(url, b"fail")
        finally:
            await client.close()
            server.close()
        return [*first, *together, failed]

    answers = asyncio.run(main())
    assert answers[:5] == [(200, b'{"n": %d}' % i) for i in range(5)]
    assert answers[5:11] == [(200, b"y" * 70_000)] * 6  # a body in several reads, whole
    assert answers[11] == (500, b"fail")  # the status as the server gave it
    assert len(accepted) == 2  # five in turn on one connection; six at once on no more than two


def test_the_drivers_client_fails_a_request_whose_server_hangs_up_or_stays_silent() -> None:
    import asyncio

    bench = _bench()

    async def main(mode: str) -> BaseException | None:
        server = await _tiny_server(mode, [])
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        client = bench.Client(timeout=0.3)
        try:
            await client.post(url, b"{}")
        except BaseException as exc:  # noqa: BLE001 — what the request ended with is the point
            return exc
        finally:
            await client.close()
            server.close()
        return None

    assert isinstance(asyncio.run(main("hang_up")), ConnectionError)
    assert isinstance(asyncio.run(main("silent")), TimeoutError)

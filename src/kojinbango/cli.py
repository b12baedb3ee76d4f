"""The `kojinbango` command."""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from kojinbango.domain.jst import today_jst

DEFAULT_DATA_DIR = Path("demo-data")


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def cmd_validate(args: argparse.Namespace) -> int:
    from kojinbango.domain import identifiers as ids

    validators = {
        "mynumber": ids.validate_my_number,
        "resident-code": ids.validate_resident_code,
        "corporate": ids.validate_corporate_number,
        "lg-code": ids.validate_lg_code,
    }
    try:
        validators[args.kind](args.value)
    except ids.IdentifierError as exc:
        print(f"invalid: {exc}")
        return 1
    print("valid")
    return 0


def _setup_logs(data_dir: Path) -> None:
    from kojinbango.common.logs import configure

    configure(data_dir / "logs" / "kojinbango.log")


def cmd_init(args: argparse.Namespace) -> int:
    from kojinbango.nation import init_nation

    _setup_logs(args.data_dir)
    info = init_nation(args.data_dir, args.residents, args.seed, direct=args.direct)
    _print_json(info)
    return 0


class _Progress:
    """A progress bar on a terminal; silent otherwise."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._bars: dict[str, Any] = {}
        self._progress: Any = None
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(),
                transient=False,
            )

    def __enter__(self) -> _Progress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def __call__(self, org: str, n: int, total: int) -> None:
        if not self._progress:
            return
        if org not in self._bars:
            self._bars[org] = self._progress.add_task(f"{org} 個人番号の指定", total=total)
        self._progress.advance(self._bars[org], n)


def cmd_intro(args: argparse.Namespace) -> int:
    from kojinbango.nation import intro, read_nation, running

    read_nation(args.data_dir)
    _setup_logs(args.data_dir)
    with running(args.data_dir) as nation, _Progress() as progress:
        result = intro(nation, progress)
    _print_json(result)
    return 0


def _check_direct(data_dir: Path, codes: list[str]) -> None:
    """``demo --direct`` on a nation already made: it must have been made so (a municipality is not
    moved between modes once it holds 符号)."""
    from kojinbango.common.linkage import LinkageSettings
    from kojinbango.common.topology import Topology

    topology = Topology.load(data_dir / "topology.json")
    settings = LinkageSettings.of(topology)
    for code in codes:
        org = topology.municipality_by_code(code)
        if not settings.receives_itself(org.id):
            raise ValueError(
                f"--direct {code}: the nation in {data_dir} was made without direct mode for it; "
                "use another --data-dir"
            )


def cmd_demo(args: argparse.Namespace) -> int:
    from kojinbango import demo
    from kojinbango.nation import NATION_FILE, init_nation, intro, running

    data_dir: Path = args.data_dir
    _setup_logs(data_dir)
    if not (data_dir / NATION_FILE).exists():
        init_nation(data_dir, args.residents, args.seed, direct=args.direct)
    elif args.direct:
        _check_direct(data_dir, args.direct)
    today = today_jst()
    from kojinbango.holder import demo_cards, load_topology

    load_topology(data_dir)  # an older data directory gets the portal and the bank
    with running(data_dir, fixed_ports=False) as nation:
        intro(nation)
        state = data_dir / "demo-events.json"
        if not state.exists():
            births = demo.births(nation, args.seed, today)
            moved = demo.move(nation, args.seed, today)
            state.write_text(json.dumps({"births": births, "move": moved}), encoding="utf-8")
        for rt in nation.municipalities():
            nation.register(rt.org_id).push()
        munis, totals = demo.check_consistency(nation)
        cards = demo_cards(nation.topology, nation.urls)
        staff = demo.demo_staff(nation)  # staff terminal log-ins (password + TOTP)
        from kojinbango import linkage_setup

        linkage = linkage_setup.prepare(nation, args.seed)  # 3-3: business data, 符号, 副本
    summary = {"municipalities": munis, **totals, "cards": cards, "linkage": linkage}
    summary["staff"] = [{k: v for k, v in a.items() if k != "password"} for a in staff]
    if args.no_serve:
        _print_json(summary)
        return 1 if totals["errors"] else 0
    print(json.dumps(summary, ensure_ascii=False, indent=2)[:2000])
    return _serve_all(data_dir)


def _serve_all(data_dir: Path) -> int:
    from kojinbango import linkage_setup
    from kojinbango.nation import running

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running(data_dir, fixed_ports=True) as nation:
        print("\nkojinbango is serving (Ctrl-C to stop):")
        for org_id, url in nation.urls.items():
            org = nation.topology.org(org_id)
            print(f"  {org.name:<24} {org_id:<8} API {url}/docs")
            if org.kind == "municipality":
                print(f"  {'':<24} {'':<8} staff page {url}/staff/")
                print(f"  {'':<24} {'':<8} card desk  {url}/staff/cards/")
                print(f"  {'':<24} {'':<8} staff login {url}/staff/login  kiosk {url}/kiosk/")
            if org.kind == "portal":
                print(f"  {'':<24} {'':<8} やりとり履歴 {url}/records (after logging in)")
                print(f"  {'':<24} {'':<8} お知らせ {url}/inbox  自己情報 {url}/self (after logging in)")
        scenarios = data_dir / "linkage" / "scenarios.json"
        if scenarios.exists():
            print(f"\n情報連携 (3-3): the three scenarios as commands are in {scenarios}")
        example = data_dir / linkage_setup.PORTAL_EXAMPLE_FILE
        if example.exists():
            print(f"  an exchange about a demo card's holder, then their やりとり履歴: {example}")
        reader = _demo_reader(nation)
        _demo_staff_lines(nation)
        sys.stdout.flush()
        stop.wait()
        if reader is not None:
            reader.stop()
    return 0


def _demo_staff_lines(nation: Any) -> None:
    """The staff terminal's log-ins, beside the card files and PINs."""
    from kojinbango.demo import DEMO_STAFF_FILE

    path = nation.topology.root / DEMO_STAFF_FILE
    if not path.exists():
        return
    print(
        f"\n職員端末 (staff terminal) log-ins — one-time codes: `kojinbango staff code --secret SECRET` or any authenticator app ({path}):"
    )
    for a in json.loads(path.read_text(encoding="utf-8")):
        url = nation.urls[a["municipality"]]
        print(
            f"  {url}/staff/login  {a['login']:<8} password {a['password']}  TOTP secret {a['totp_secret']}  [{','.join(a['roles'])}]"
        )


def _demo_reader(nation: Any) -> Any:
    """The holder's card reader with the demo cards, for the portal's login page in a browser."""
    from kojinbango.card.service import ReaderThread
    from kojinbango.holder import DEMO_CARDS

    state = nation.topology.root / DEMO_CARDS
    if not state.exists():
        return None
    cards = json.loads(state.read_text(encoding="utf-8"))
    portal = nation.urls[nation.topology.of_kind("portal")[0].id]
    port = int(str(nation.topology.settings.get("reader_url", "http://127.0.0.1:8790")).rsplit(":", 1)[1])
    try:
        reader = ReaderThread(
            [Path(c["card"]) for c in cards], port, [portal, portal.replace("127.0.0.1", "localhost")]
        )
    except OSError as exc:
        print(f"  (card reader not started: port {port}: {exc.strerror})")
        return None
    print(f"\nマイポータル login page: {portal}/   (card reader {reader.url})")
    for c in cards:
        print(
            f"  card {c['card']}  {c['name']}  {c['mode']}  PIN {c['auth_pin']} / 署名用 {c['sign_pin']}  [{c['state']}]"
        )
    return reader


FULL_PASS_EVERY = 1000  # collections of the middle generation between two of the collector's full passes


def settle_heap() -> None:
    """Before a service takes requests: everything built so far (modules, app, services) lives as
    long as the process, so keep it out of the cyclic collector's full passes, which otherwise pause
    a request now and then; and make those passes rarer — after ``FULL_PASS_EVERY`` collections of
    the middle generation rather than 10 (at 1,100 exchanges/s the agency's service paused 5–8 ms
    for one about every second).  Cyclic garbage old enough to reach the oldest generation is rare
    in a request's work, so it waits longer to be freed."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_EVERY)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from kojinbango.common.logs import configure
    from kojinbango.common.topology import Topology
    from kojinbango.common.transport import SERVER_KEEP_ALIVE_SECONDS
    from kojinbango.nation import build

    topology = Topology.load(Path(args.topology))
    org = topology.org(args.org)
    configure(topology.root / "logs" / f"{org.id}.log")
    runtime = build(topology, org.id, database_url=args.database_url)
    host, port = org.base_url.split("://", 1)[1].rsplit(":", 1)
    settle_heap()
    uvicorn.run(
        runtime.app,
        host=args.host or host,
        port=int(port),
        log_level="info",
        access_log=False,
        timeout_keep_alive=SERVER_KEEP_ALIVE_SECONDS,
    )
    return 0


def _rows_to_csv(header: list[str], rows: Any, out: Path | None) -> None:
    if out is None:
        w = csv.writer(sys.stdout)
        w.writerow(header)
        w.writerows(rows)
        return
    with open(out, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def cmd_export(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from kojinbango.common.db import Database
    from kojinbango.common.topology import Topology

    topology = Topology.load(args.data_dir / "topology.json")
    if args.what == "residents":
        from kojinbango.municipality.register.models import Resident
        from kojinbango.municipality.register.service import full_address

        if not args.municipality:
            raise SystemExit("export residents needs --municipality CODE")
        org = topology.municipality_by_code(args.municipality)
        db = Database(topology.database_url(org.id))
        header = [
            "resident_code",
            "my_number",
            "name",
            "kana",
            "birth_date",
            "sex",
            "address",
            "status",
            "atena_number",
            "household_id",
            "relationship",
        ]
        with db.transaction() as s:
            rows = [
                [
                    r.resident_code,
                    r.my_number or "",
                    f"{r.family_name}\u3000{r.given_name}",
                    f"{r.family_kana}\u3000{r.given_kana}",
                    r.birth_date.isoformat(),
                    r.sex,
                    full_address(r.address, r.address_extra),
                    r.status,
                    r.atena_number,
                    r.household_id,
                    r.relationship,
                ]
                for r in s.scalars(select(Resident).order_by(Resident.id))
            ]
    else:
        from kojinbango.jlis.models import IdentityRecord

        org = topology.of_kind("jlis")[0]
        db = Database(topology.database_url(org.id))
        header = [
            "resident_code",
            "my_number",
            "name",
            "kana",
            "birth_date",
            "sex",
            "address",
            "status",
            "municipality",
        ]
        with db.transaction() as s:
            rows = [
                [
                    r.resident_code,
                    r.my_number or "",
                    f"{r.family_name}\u3000{r.given_name}",
                    f"{r.family_kana}\u3000{r.given_kana}",
                    r.birth_date.isoformat(),
                    r.sex,
                    r.address,
                    r.status,
                    r.municipality,
                ]
                for r in s.scalars(select(IdentityRecord).order_by(IdentityRecord.resident_code))
            ]
    _rows_to_csv(header, rows, args.out)
    return 0


def _load_bench(name: str, file: str | None = None) -> Any:
    """The benchmark ``bench/{file or name}.py`` of the source checkout, loaded as a module named
    ``kojinbango_bench_{name}`` (the benchmarks are not part of the installed package)."""
    import importlib.util

    bench_file = Path(__file__).resolve().parents[2] / "bench" / f"{file or name}.py"
    if not bench_file.exists():
        raise SystemExit("the bench/ directory of the source checkout is needed for `kojinbango bench`")
    spec = importlib.util.spec_from_file_location(f"kojinbango_bench_{name}", bench_file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "linkage":
        return _bench_linkage(args)
    if args.what == "portal":
        return _bench_portal(args)
    if args.what == "exchange":
        return _bench_exchange(args)
    module = _load_bench("numbering")
    pg = args.pg_url if args.pg_url is not None else os.environ.get("KOJINBANGO_BENCH_PG_URL")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = module.run(args.count, pg or None, Path(tmp))
    _print_json(result)
    return 0


def _bench_linkage(args: argparse.Namespace) -> int:
    module = _load_bench("linkage")
    for result in module.run(args.records, splink=not args.skip_splink):
        _print_json(result)
    return 0


def _bench_portal(args: argparse.Namespace) -> int:
    import tempfile

    module = _load_bench("portal", "portal_logins")
    with tempfile.TemporaryDirectory() as tmp:
        _print_json(module.run(args.seconds, args.workers or os.cpu_count() or 2, Path(tmp) / "nation"))
    return 0


def _bench_exchange(args: argparse.Namespace) -> int:
    module = _load_bench("exchange")
    _print_json(
        module.run(
            args.queries,
            args.concurrency,
            pg_url=args.pg_url,
            rates=args.rate or (),
            sustain=args.sustain,
            direct=args.direct,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kojinbango", description="Japan's My Number system as a municipality lives it"
    )
    sub = p.add_subparsers(dest="command", required=True)

    def data_dir(sp: argparse.ArgumentParser, default: Path | None = None) -> None:
        sp.add_argument("--data-dir", type=Path, required=default is None, default=default)

    def direct_option(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--direct",
            action="append",
            default=[],
            metavar="CODE",
            help="a municipality (地方公共団体コード) in direct mode: it answers the network itself, from "
            "its 正本, with no intermediate server (論点2, for comparison); may be repeated",
        )

    sp = sub.add_parser("init", help="create the nation: residents registered, no numbers yet")
    data_dir(sp)
    sp.add_argument("--residents", type=int, default=3000)
    sp.add_argument("--seed", type=int, default=1)
    direct_option(sp)
    sp.set_defaults(func=cmd_init)

    sp = sub.add_parser("intro", help="flow 1-1: number every resident, notices, push to J-LIS")
    data_dir(sp)
    sp.set_defaults(func=cmd_intro)

    sp = sub.add_parser("demo", help="init + intro + births + a move, then serve everything")
    data_dir(sp, DEFAULT_DATA_DIR)
    sp.add_argument("--residents", type=int, default=3000)
    sp.add_argument("--seed", type=int, default=1)
    direct_option(sp)
    sp.add_argument("--no-serve", action="store_true")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("export", help="CSV of a register or of J-LIS's 本人確認情報")
    sp.add_argument("what", choices=["residents", "jukinet"])
    data_dir(sp)
    sp.add_argument("--municipality")
    sp.add_argument("--out", type=Path)
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("validate", help="check an identifier's format and check digit")
    sp.add_argument("kind", choices=["mynumber", "resident-code", "corporate", "lg-code"])
    sp.add_argument("value")
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("serve", help="run one organisation alone on its own database")
    sp.add_argument("org")
    sp.add_argument("--topology", required=True)
    sp.add_argument("--database-url")
    sp.add_argument("--host")
    sp.set_defaults(func=cmd_serve)

    from kojinbango import cardcli, linkcli

    linkcli.add_parsers(sub)
    cardcli.add_parsers(sub)
    from kojinbango import exchangecli

    exchangecli.add_parsers(sub)  # after cardcli: `portal records` joins `portal login`
    from kojinbango import staffcli

    staffcli.add_parsers(sub)  # staff terminal accounts, TOTP codes, signed-document checks

    sp = sub.add_parser("bench", help="benchmarks (print JSON)")
    sp.add_argument("what", choices=["numbering", "linkage", "portal", "exchange"])
    sp.add_argument("--queries", type=int, default=2000, help="exchange: end-to-end exchanges to run")
    sp.add_argument("--concurrency", type=int, default=16, help="exchange: exchanges in flight at once")
    sp.add_argument(
        "--rate",
        type=float,
        action="append",
        help="exchange: also measure the latency at this offered load (exchanges/s; repeatable)",
    )
    sp.add_argument(
        "--sustain",
        type=float,
        help="exchange: then hold the last --rate (or 80%% of the measured rate) for this many seconds,"
        " with the latency per window (JSON: sustained)",
    )
    sp.add_argument(
        "--direct",
        action="store_true",
        help="exchange: the provider municipality in direct mode (論点2): it answers the network itself,"
        " from its 正本, with no intermediate server (JSON: provider_mode)",
    )
    sp.add_argument("--seconds", type=float, default=10.0, help="portal: measured window per phase")
    sp.add_argument("--workers", type=int, default=0, help="portal: worker processes (default: CPU count)")
    sp.add_argument("--records", type=int, default=100_000, help="linkage: business records")
    sp.add_argument("--skip-splink", action="store_true", help="linkage: run only kojinbango's matcher")
    sp.add_argument("--count", type=int, default=10_000_000)
    sp.add_argument(
        "--pg-url",
        default=None,
        help="numbering: persist there; exchange: each organisation on its own database there",
    )
    sp.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kojinbango.common.topology import TopologyError
    from kojinbango.common.transport import RemoteError, Unreachable

    try:
        return int(args.func(args))
    except (FileExistsError, FileNotFoundError, ValueError, TopologyError, RemoteError, Unreachable) as exc:
        print(f"kojinbango: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

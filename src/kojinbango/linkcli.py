"""`kojinbango link …` and `kojinbango audit links`: step 3-0 from the command line.

    link import   --data-dir D --municipality CODE --system NAME --csv FILE [--strict]
    link run      --data-dir D --municipality CODE --system NAME [--recheck]
    link export   --data-dir D --municipality CODE --system NAME [--out FILE]
    link generate --data-dir D --municipality CODE --out DIR [--seed S] [--load]
    audit links   --data-dir D [--municipality CODE]

``import`` and ``export`` work on the municipality's database alone; ``run`` and ``audit`` start the
nation in-process, because 住登外者 are identified through J-LIS's 住基ネット lookup.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kojinbango.common.errors import BusinessError
from kojinbango.domain.jst import today_jst


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _topology(data_dir: Path) -> Any:
    from kojinbango.common.topology import Topology

    path = data_dir / "topology.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{data_dir} holds no nation: run `kojinbango init --data-dir {data_dir}` first"
        )
    return Topology.load(path)


@contextmanager
def _municipality_db(data_dir: Path, code: str) -> Iterator[tuple[Any, Any]]:
    """The municipality's database (migrated) with its business and 統合宛名 services, no network."""
    from kojinbango.municipality.addressee.service import AddresseeService
    from kojinbango.municipality.app import open_database
    from kojinbango.municipality.business.service import BusinessService

    topology = _topology(data_dir)
    org = topology.municipality_by_code(code)
    db = open_database(topology, org.id)
    try:
        yield BusinessService(db), AddresseeService(db, org.lg_code or code, org.name)
    finally:
        db.dispose()


def cmd_link_import(args: argparse.Namespace) -> int:
    with _municipality_db(args.data_dir, args.municipality) as (business, _):
        result = business.import_csv(args.system, args.csv, strict=args.strict)
    out = result.as_dict()
    if args.strict and result.errors:
        out["imported"] = 0
    _print_json(out)
    if result.errors:
        shown = ", ".join(f"line {e['line']}: {e['error']}" for e in result.errors[:20])
        more = f" (and {len(result.errors) - 20} more)" if len(result.errors) > 20 else ""
        tail = "nothing was imported (--strict)" if args.strict else "the other rows were imported"
        print(f"kojinbango: {len(result.errors)} row(s) rejected — {shown}{more}; {tail}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


def cmd_link_run(args: argparse.Namespace) -> int:
    from kojinbango.nation import read_nation, running

    read_nation(args.data_dir)
    org = _topology(args.data_dir).municipality_by_code(args.municipality)
    with running(args.data_dir) as nation:
        service = nation.runtimes[org.id].services["addressee"]
        result = service.run(args.system, recheck=args.recheck)  # type: ignore[attr-defined]
    _print_json(result)
    return 0


def cmd_link_export(args: argparse.Namespace) -> int:
    with _municipality_db(args.data_dir, args.municipality) as (_, addressee):
        rows, pending = addressee.export_rows(args.system)
    if not rows:
        raise BusinessError(f"business system {args.system!r} has no records at this municipality")
    header = ["legacy_id", "status", "my_number"]
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
    else:
        w = csv.writer(sys.stdout)
        w.writerow(header)
        w.writerows(rows)
    if pending:
        print(
            f"kojinbango: {pending} record(s) were imported but not linked yet and are listed as unmatched; "
            f"run `kojinbango link run` first",
            file=sys.stderr,
        )
    return 0


def cmd_link_generate(args: argparse.Namespace) -> int:

    from kojinbango.common.db import Database
    from kojinbango.municipality.business import synthetic
    from kojinbango.nation import read_nation
    from kojinbango.synth.business import generate_business_data

    read_nation(args.data_dir)
    topology = _topology(args.data_dir)
    org = topology.municipality_by_code(args.municipality)
    others = [m for m in topology.of_kind("municipality") if m.id != org.id]
    outsiders = []
    numbers: dict[str, str] = {}
    for m in others:
        db = Database(topology.database_url(m.id))
        people, nums = synthetic.register_people(db)
        db.dispose()
        outsiders += synthetic.as_outsiders(people)
        numbers.update(nums)
    with _municipality_db(args.data_dir, args.municipality) as (business, _):
        people, nums = synthetic.register_people(business.db)
        numbers.update(nums)
        data = generate_business_data(people, outsiders, args.seed, today_jst())
        files = synthetic.write_csvs(data, args.out)
        loaded = synthetic.load(business, data, numbers) if args.load else {}
    _print_json({"files": files, "records": len(data.rows), "loaded": loaded})
    return 0


def cmd_audit_links(args: argparse.Namespace) -> int:
    from kojinbango.nation import read_nation, running

    read_nation(args.data_dir)
    topology = _topology(args.data_dir)
    orgs = (
        [topology.municipality_by_code(args.municipality)]
        if args.municipality
        else topology.of_kind("municipality")
    )
    out: dict[str, Any] = {}
    with running(args.data_dir) as nation:
        for org in orgs:
            out[org.lg_code] = nation.runtimes[org.id].services["addressee"].audit()  # type: ignore[attr-defined]
    _print_json(out)
    return 0


def _wrap(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except BusinessError as exc:
            print(f"kojinbango: {exc}", file=sys.stderr)
            return 2

    return run


def add_parsers(sub: Any) -> None:
    """Add `link` and `audit` to the `kojinbango` command's subparsers."""

    def common(sp: argparse.ArgumentParser, system: bool = True) -> None:
        sp.add_argument("--data-dir", type=Path, required=True)
        sp.add_argument("--municipality", required=True, help="地方公共団体コード, e.g. 131016")
        if system:
            sp.add_argument("--system", required=True, help="business system, e.g. tax or welfare")

    link = sub.add_parser("link", help="3-0: tie business records to the right person (団体内統合宛名)")
    lsub = link.add_subparsers(dest="link_command", required=True)
    sp = lsub.add_parser(
        "import", help="read a business system's CSV (legacy_id,name,kana,birth_date,sex,address)"
    )
    common(sp)
    sp.add_argument("--csv", type=Path, required=True)
    sp.add_argument("--strict", action="store_true", help="reject the whole file if any row is bad")
    sp.set_defaults(func=_wrap(cmd_link_import))
    sp = lsub.add_parser("run", help="link the imported records; prints counts as JSON")
    common(sp)
    sp.add_argument("--recheck", action="store_true", help="retry undecided review/unmatched records too")
    sp.set_defaults(func=_wrap(cmd_link_run))
    sp = lsub.add_parser("export", help="CSV legacy_id,status,my_number")
    common(sp)
    sp.add_argument("--out", type=Path)
    sp.set_defaults(func=_wrap(cmd_link_export))
    sp = lsub.add_parser("generate", help="synthetic dirty tax/welfare CSVs (+ truth.csv) for a nation")
    common(sp, system=False)
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--load", action="store_true", help="also load them with their business data")
    sp.set_defaults(func=_wrap(cmd_link_generate))

    audit = sub.add_parser("audit", help="総点検")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    sp = asub.add_parser("links", help="re-check every link against the current 本人確認情報")
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("--municipality")
    sp.set_defaults(func=_wrap(cmd_audit_links))

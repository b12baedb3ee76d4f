"""`kojinbango staff …`: staff accounts of a municipality's terminal, one-time codes, document checks.

kojinbango staff add --data-dir D --municipality 131016 --login yamada --name "山田 花子" --roles tax
kojinbango staff code --secret BASE32SECRET
kojinbango staff verify-document --data-dir D FILE.pdf
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cmd_add(args: argparse.Namespace) -> int:
    from kojinbango.common.topology import Topology
    from kojinbango.municipality.app import open_database, staff_totp_key
    from kojinbango.municipality.staff.client import create_staff
    from kojinbango.municipality.staff.service import ROLES, StaffService

    topology = Topology.load(args.data_dir / "topology.json")
    org = topology.municipality_by_code(args.municipality)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        print(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(ROLES)}", file=sys.stderr)
        return 2
    db = open_database(topology, org.id)
    try:
        made = create_staff(StaffService(db, staff_totp_key(topology, org.id)), args.login, args.name, roles)
    except Exception as exc:  # BusinessError: what is wrong with the input
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(json.dumps({"municipality": org.id, **made}, ensure_ascii=False))
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    import pyotp

    print(pyotp.TOTP(args.secret).now())
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from kojinbango.common.pki import load_certificate
    from kojinbango.common.topology import Topology
    from kojinbango.documents.pades import verify_pdf

    topology = Topology.load(args.data_dir / "topology.json")
    result = verify_pdf(args.file.read_bytes(), load_certificate(topology.resolve(topology.ca_certificate)))
    print(json.dumps({**result.__dict__, "ok": result.ok}, ensure_ascii=False))
    return 0 if result.ok else 1


def add_parsers(sub: Any) -> None:
    staff = sub.add_parser("staff", help="staff terminal accounts, one-time codes, document verification")
    ssub = staff.add_subparsers(dest="staff_command", required=True)
    sp = ssub.add_parser("add", help="create a staff account (prints the password and the TOTP secret)")
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("--municipality", required=True, help="地方公共団体コード, e.g. 131016")
    sp.add_argument("--login", required=True)
    sp.add_argument("--name", required=True)
    sp.add_argument("--roles", required=True, help="comma-separated: resident_records, tax, welfare, admin")
    sp.set_defaults(func=cmd_add)
    sp = ssub.add_parser("code", help="the current TOTP code of a secret (instead of an authenticator app)")
    sp.add_argument("--secret", required=True)
    sp.set_defaults(func=cmd_code)
    sp = ssub.add_parser(
        "verify-document", help="check a municipality's signed PDF against the deployment CA"
    )
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("file", type=Path)
    sp.set_defaults(func=cmd_verify)

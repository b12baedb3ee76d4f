"""The holder's commands: ``kojinbango card …``, ``kojinbango portal login``, ``kojinbango bank …``.

Success prints one JSON object and exits 0.  A refusal (wrong PIN, locked PIN, suspended or revoked
certificate, expired card …) prints one JSON object with ``reason`` and ``message`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _run(args: argparse.Namespace, action: Any) -> int:
    from kojinbango.holder import Client, HolderError, nation_urls

    try:
        with nation_urls(args.data_dir) as (topology, urls):
            client = Client(topology, urls)
            try:
                _print(action(client))
            finally:
                client.close()
    except HolderError as exc:
        _print({"ok": False, **exc.as_dict()})
        print(f"kojinbango: {exc.message}", file=sys.stderr)
        return 1
    return 0


def cmd_card_issue(args: argparse.Namespace) -> int:
    from kojinbango.holder import issue_card

    photo = None
    if args.photo:
        photo = Path(args.photo).read_bytes()
    return _run(
        args, lambda c: issue_card(c, args.resident_code, args.auth_pin, args.sign_pin, args.out, photo)
    )


def cmd_card_suspend(args: argparse.Namespace) -> int:
    from kojinbango.holder import suspend_card

    return _run(args, lambda c: suspend_card(c, args.card))


def cmd_card_resume(args: argparse.Namespace) -> int:
    from kojinbango.holder import counter

    return _run(args, lambda c: counter(c, args.card, "resume"))


def cmd_card_reset_pin(args: argparse.Namespace) -> int:
    from kojinbango.holder import counter

    return _run(args, lambda c: counter(c, args.card, "pin-reset", which=args.which, new_pin=args.new_pin))


def cmd_card_info(args: argparse.Namespace) -> int:
    from kojinbango.card.reader import CardError, CardReader

    try:
        _print(CardReader(args.card).info())
    except CardError as exc:
        _print({"ok": False, "reason": exc.reason, "message": exc.message})
        return 1
    return 0


def cmd_card_face(args: argparse.Namespace) -> int:
    from kojinbango.card.face import render_face
    from kojinbango.card.reader import CardError, read_card

    try:
        chip = read_card(args.card)
    except CardError as exc:
        _print({"ok": False, "reason": exc.reason, "message": exc.message})
        return 1
    args.out.write_bytes(
        render_face(chip.face, back=args.back, my_number=chip.data["kenmen"]["back"]["my_number"])
    )
    _print({"face": str(args.out), "side": "back" if args.back else "front"})
    return 0


def cmd_card_reader(args: argparse.Namespace) -> int:
    from kojinbango.card.service import serve_reader

    return serve_reader(args.card, args.port, args.allow_origin)


def cmd_portal_login(args: argparse.Namespace) -> int:
    from kojinbango.holder import portal_login

    return _run(args, lambda c: portal_login(c, args.card, args.pin))


def cmd_bank_open(args: argparse.Namespace) -> int:
    from kojinbango.holder import open_bank_account

    return _run(args, lambda c: open_bank_account(c, args.card, args.pin, args.account_type))


def add_parsers(sub: Any) -> None:
    card = sub.add_parser("card", help="個人番号カード: issue, suspend, counter work, face image, reader")
    csub = card.add_subparsers(dest="card_command", required=True)

    sp = csub.add_parser(
        "issue", help="application → manufacture → issuance for one resident; writes the card file"
    )
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("--resident-code", required=True)
    sp.add_argument(
        "--auth-pin", required=True, help="4 digits (利用者証明用; also 住基 and 券面事項入力補助)"
    )
    sp.add_argument("--sign-pin", help="6-16 of A-Z0-9 with a letter and a digit (署名用; none under 15)")
    sp.add_argument("--out", type=Path, help="card file to write (default DATA_DIR/cards/card-SERIAL.json)")
    sp.add_argument("--photo", help="JPEG or PNG photo (default: a synthetic portrait)")
    sp.set_defaults(func=cmd_card_issue)

    sp = csub.add_parser("suspend", help="the 24-hour line: suspend a lost card (一時停止)")
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("--card", type=Path, required=True)
    sp.set_defaults(func=cmd_card_suspend)

    sp = csub.add_parser("resume", help="at the counter: lift a suspension (一時停止解除)")
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("--card", type=Path, required=True)
    sp.set_defaults(func=cmd_card_resume)

    sp = csub.add_parser("reset-pin", help="at the counter: set a new PIN and unlock it")
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("--card", type=Path, required=True)
    sp.add_argument("--which", choices=["auth", "sign", "juki", "hojo"], required=True)
    sp.add_argument("--new-pin", required=True)
    sp.set_defaults(func=cmd_card_reset_pin)

    sp = csub.add_parser("info", help="what the card shows without a PIN (serial, face, PIN counters)")
    sp.add_argument("--card", type=Path, required=True)
    sp.set_defaults(func=cmd_card_info)

    sp = csub.add_parser("face", help="the card face as PNG (front, or --back with the number)")
    sp.add_argument("--card", type=Path, required=True)
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--back", action="store_true")
    sp.set_defaults(func=cmd_card_face)

    sp = csub.add_parser("reader", help="a local card reader service for the portal's login page")
    sp.add_argument(
        "--card", type=Path, action="append", required=True, help="card file (repeat for more slots)"
    )
    sp.add_argument("--port", type=int, default=8790)
    sp.add_argument("--allow-origin", action="append", default=None, help="portal origin allowed to use it")
    sp.set_defaults(func=cmd_card_reader)

    portal = sub.add_parser("portal", help="マイポータル: log in with the card")
    psub = portal.add_subparsers(dest="portal_command", required=True)
    sp = psub.add_parser("login", help="log in with the 利用者証明用電子証明書 and its PIN")
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("--card", type=Path, required=True)
    sp.add_argument("--pin", required=True)
    sp.set_defaults(func=cmd_portal_login)

    bank = sub.add_parser("bank", help="the sample bank: open an account with the 署名用電子証明書")
    bsub = bank.add_subparsers(dest="bank_command", required=True)
    sp = bsub.add_parser("open-account", help="sign an account-opening application with the card")
    sp.add_argument("--data-dir", type=Path, required=True)
    sp.add_argument("--card", type=Path, required=True)
    sp.add_argument("--pin", required=True, help="the 署名用電子証明書 PIN")
    sp.add_argument("--account-type", default="普通預金", choices=["普通預金", "貯蓄預金"])
    sp.set_defaults(func=cmd_bank_open)

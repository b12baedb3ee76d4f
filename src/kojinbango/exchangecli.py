"""`kojinbango exchange …` and `kojinbango portal records`: information linkage (seed 3-3) from the CLI.

    exchange table      --data-dir D
    exchange prepare    --data-dir D [--seed S]
    exchange query      --data-dir D --querier ORG --provider ORG --affair ROW_ID --info CATEGORY --my-number N
    exchange result     --data-dir D --querier ORG --id 処理通番
    exchange waiting    --data-dir D --querier ORG [--collect]
    exchange records    --data-dir D [--id 処理通番]
    exchange refresh    --data-dir D [--municipality CODE]
    exchange status     --data-dir D
    exchange verify-log --data-dir D
    portal records      --data-dir D --card FILE --pin P

Organisations are named by 地方公共団体コード (municipalities) or id (``nenkin``).  Commands that need
the organisations use the demo's running servers when they answer, and otherwise start the nation in
this process for the duration of the command — the same signed HTTP either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

FINAL_OK = ("answered", "not_held")


class ExchangeCliError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _topology(data_dir: Path) -> Any:
    from kojinbango.common.topology import Topology
    from kojinbango.nation import add_card_organisations, add_linkage_organisations

    path = data_dir / "topology.json"
    if not path.exists():
        raise ExchangeCliError(
            f"{data_dir} holds no nation yet: run `kojinbango init --data-dir {data_dir}` first"
        )
    return add_linkage_organisations(add_card_organisations(Topology.load(path)))


def _answering(topology: Any) -> int:
    n = 0
    for org in topology.organisations.values():
        try:
            r = httpx.get(org.base_url.rstrip("/") + "/healthz", timeout=1.0)
            if r.status_code == 200 and r.json().get("organisation") == org.id:
                n += 1
        except (httpx.HTTPError, ValueError):
            pass
    return n


def _ours(topology: Any) -> bool:
    """Do the servers answering at the topology's addresses belong to this deployment (its CA)?"""
    from kojinbango.common.transport import RemoteError, SignedClient, Unreachable

    jlis, network = topology.of_kind("jlis")[0].id, topology.of_kind("network")[0].id
    client = SignedClient(
        topology.credentials(jlis), topology.trust_store(), topology.directory(), timeout=5.0
    )
    try:
        client.call(network, "GET", "/api/log/head")
        return True
    except (RemoteError, Unreachable):
        return False
    finally:
        client.close()


@contextmanager
def nation_urls(data_dir: Path) -> Iterator[tuple[Any, dict[str, str], Any]]:
    """(topology, urls, in-process nation or None): the running demo's, or a nation started here."""
    from kojinbango.nation import running

    topology = _topology(data_dir)
    if _answering(topology) == len(topology.organisations) and _ours(topology):
        yield topology, topology.directory(), None
        return
    # Nothing of this deployment is serving (servers of another data directory may hold the ports):
    # start the nation here, on ports of its own.
    with running(data_dir) as nation:
        yield topology, nation.urls, nation


def _post(topology: Any, urls: dict[str, str], org_id: str, path: str, payload: Any) -> Any:
    """POST to one of ``org_id``'s internal interfaces (``/staff/linkage/api/…``) as the
    organisation's own system: signed with its key from this data directory, its answer checked."""
    from kojinbango.common.transport import RemoteError, SignedClient, Unreachable

    base = urls[org_id].rstrip("/")
    client = SignedClient(topology.credentials(org_id), topology.trust_store(), {org_id: base}, timeout=120.0)
    try:
        r = client.send(org_id, "POST", path, payload)
    except Unreachable as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "no address"
        raise ExchangeCliError(f"{base} could not be reached ({cause})") from None
    except RemoteError as exc:  # the answer was not signed by the organisation, or replayed
        raise ExchangeCliError(str(exc)) from None
    finally:
        client.close()
    try:
        body = r.json()
    except ValueError:
        body = {"detail": r.text}
    if r.status_code != 200:
        detail = body.get("detail") if isinstance(body, dict) else body
        raise ExchangeCliError(f"{detail}", 1 if r.status_code in (404, 409, 422) else 2)
    return body


def _querier(topology: Any, querier: str) -> str:
    from kojinbango.common.linkage import org_of_public_id
    from kojinbango.common.topology import TopologyError

    try:
        org = org_of_public_id(topology, querier)
    except TopologyError as exc:
        raise ExchangeCliError(str(exc)) from None
    if topology.org(org).kind not in ("municipality", "agency"):
        raise ExchangeCliError(f"{querier} is not a municipality or an agency: it makes no queries")
    return str(org)


def cmd_table(args: argparse.Namespace) -> int:
    from kojinbango.common.linkage import LinkageSettings
    from kojinbango.network.legal import LegalTableError, load

    topology = _topology(args.data_dir)
    path = LinkageSettings.of(topology).table_path(topology)
    try:
        rows = load(path)
    except LegalTableError as exc:
        raise ExchangeCliError(str(exc)) from None
    _print([r.as_dict() for r in rows])
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    with nation_urls(args.data_dir) as (topology, urls, _):
        answer = _post(
            topology,
            urls,
            _querier(topology, args.querier),
            "/staff/linkage/api/query",
            {
                "my_number": args.my_number,
                "provider": args.provider,
                "affair": args.affair,
                "info": args.info,
                "staff": args.staff,
                "wait_seconds": args.wait,
            },
        )
    return _report(answer)


def _report(answer: dict[str, Any]) -> int:
    from kojinbango.common.linkage import WAITING

    _print(answer)
    status = answer.get("status")
    if status in FINAL_OK:
        return 0
    if status in WAITING:
        print(
            f"kojinbango: the answer is not there yet (処理通番 {answer.get('exchange_id')}); "
            "collect it later with `kojinbango exchange result`",
            file=sys.stderr,
        )
        return 3
    print(f"kojinbango: {status}: {answer.get('reason')}", file=sys.stderr)
    return 1


def cmd_result(args: argparse.Namespace) -> int:
    with nation_urls(args.data_dir) as (topology, urls, _):
        querier = _querier(topology, args.querier)
        answer = _post(topology, urls, querier, "/staff/linkage/api/result", {"exchange_id": args.id})
    return _report(answer)


def cmd_waiting(args: argparse.Namespace) -> int:
    """The querier's queries still waiting for their answer; exit 3 while any does."""
    with nation_urls(args.data_dir) as (topology, urls, _):
        querier = _querier(topology, args.querier)
        out = _post(topology, urls, querier, "/staff/linkage/api/waiting", {"collect": args.collect})
    _print(out)
    return 3 if out.get("waiting") else 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from kojinbango import linkage_setup
    from kojinbango.nation import read_nation, running

    read_nation(args.data_dir)
    _topology(args.data_dir)
    with running(args.data_dir) as nation:
        _print(linkage_setup.prepare(nation, args.seed))
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    with nation_urls(args.data_dir) as (topology, urls, _):
        orgs = (
            [topology.municipality_by_code(args.municipality)]
            if args.municipality
            else topology.of_kind("municipality")
        )
        out = {
            o.lg_code: _post(topology, urls, o.id, "/staff/linkage/api/refresh", {"full": True}) for o in orgs
        }
        for a in topology.of_kind("agency"):
            out[a.id] = _post(topology, urls, a.id, "/staff/linkage/api/refresh", {})
    _print(out)
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """A querier's encryption key replaced: a new key pair and certificate from the deployment CA, the
    old key kept among its retired keys (what was sealed to it still opens), the topology saved."""
    from kojinbango.common.linkage import public_id
    from kojinbango.common.pki import CertificateError, rotate_encryption_certificate
    from kojinbango.common.sealing import key_id

    topology = _topology(args.data_dir)
    org = topology.org(_querier(topology, args.org))
    if not org.encryption_key or not org.encryption_certificate:
        raise ExchangeCliError(f"{args.org} has no encryption key on this machine to replace")
    topology.opening_keys(org.id)  # every key it has now is here (else: which one is missing)
    pki = topology.root / "pki"
    try:
        stem, key = rotate_encryption_certificate(pki, org.id, org.name)
    except CertificateError as exc:
        raise ExchangeCliError(str(exc)) from None
    org.retired_encryption_keys = [org.encryption_key, *org.retired_encryption_keys]
    org.encryption_certificate, org.encryption_key = f"pki/{stem}.pem", f"pki/{stem}.key"
    topology.save()
    _print({
        "organisation": public_id(topology, org.id),
        "key_id": key_id(org.id, key),
        "encryption_certificate": org.encryption_certificate,
        "encryption_key": org.encryption_key,
        "retired_encryption_keys": org.retired_encryption_keys,
        "taken_up": "no restart needed: intermediate servers read the certificate again within a minute "
        "(until then they seal to the old key, which still opens); the organisation's own service reads its "
        "keys again when an answer is sealed to the new one",
    })  # fmt: skip
    return 0


def cmd_records(args: argparse.Namespace) -> int:
    """The operator's view: the querier's, the provider's and the network's record of each exchange."""
    from kojinbango import linkage_audit

    topology = _topology(args.data_dir)
    result = linkage_audit.three_records(topology, args.id)
    _print(result)
    return 0 if result["agree"] else 1


def cmd_status(args: argparse.Namespace) -> int:
    from kojinbango import linkage_audit

    _print(linkage_audit.network_status(_topology(args.data_dir)))
    return 0


def cmd_verify_log(args: argparse.Namespace) -> int:
    from kojinbango import linkage_audit

    topology = _topology(args.data_dir)
    result = linkage_audit.verify_network_log(topology)
    _print(result)
    return 0 if result["ok"] else 1


def portal_login(topology: Any, urls: dict[str, str], card: Path, pin: str) -> tuple[str, str]:
    """Log in to the portal with the card's 利用者証明用 key; returns (session token, name)."""
    import base64

    from kojinbango.card.reader import CardError
    from kojinbango.card.relying import login_message
    from kojinbango.holder import Client, HolderError, _check_expiry, _reader

    client = Client(topology, urls)
    try:
        reader = _reader(card)
        _check_expiry(reader)
        try:
            cert = reader.auth_certificate()
            portal = client.portal()
            ch = client.post(portal, "/login/challenge")
            sig = reader.sign_auth(pin, login_message(ch["portal"], ch["challenge_id"], ch["challenge"]))
        except CardError as exc:
            raise HolderError(exc.reason, exc.message, exc.tries_left) from None
        login = client.post(
            portal,
            "/login",
            {
                "challenge_id": ch["challenge_id"],
                "certificate": base64.b64encode(cert).decode(),
                "signature": base64.b64encode(sig).decode(),
            },
        )
        return str(login["session"]), str(login.get("name", ""))
    finally:
        client.close()


def portal_records(topology: Any, urls: dict[str, str], card: Path, pin: str) -> dict[str, Any]:
    """Log in to the portal with the card, fetch やりとり履歴 and check every proof here as well."""
    from kojinbango.common.transparency import check_bundle

    token, name = portal_login(topology, urls, card, pin)
    portal = topology.of_kind("portal")[0].id
    r = httpx.get(
        urls[portal].rstrip("/") + "/records/api", headers={"authorization": f"Bearer {token}"}, timeout=120
    )
    if r.status_code != 200:
        raise ExchangeCliError(f"the portal refused: {r.json().get('detail', r.text)}", 1)
    shown = r.json()
    # The resident's own check, with nothing but the network's certificate from the topology.
    network = topology.of_kind("network")[0].id
    mine = check_bundle(shown["bundle"], topology.trust_store(), network)
    records = []
    for seen, checked in zip(shown["records"], mine["records"], strict=True):
        entry = {k: v for k, v in seen.items() if k not in ("proof_valid", "proof_error")}
        entry["proof_valid"] = bool(seen.get("proof_valid")) and bool(checked.get("proof_valid"))
        if not entry["proof_valid"]:
            entry["proof_error"] = checked.get("proof_error") or seen.get("proof_error")
        records.append(entry)
    proven = all(r["proof_valid"] for r in records)
    complete = bool(mine["complete"]) and shown.get("complete") is not False
    ok = bool(shown["all_proofs_valid"]) and proven and complete
    if not proven:  # the portal's words unless this command's own check failed
        message = "some records could not be proven: the network's log may have been altered"
    elif not mine["complete"] and shown.get("complete") is not False:  # a gap the portal did not report
        message = "a record about you is missing from this list: the network's index may have been altered"
    else:
        message = shown["message"]
    return {
        "name": name,
        "records": records,
        "all_proofs_valid": ok,
        "complete": complete,
        "message": message,
        "log": shown["log"],
    }


def cmd_portal_records(args: argparse.Namespace) -> int:
    from kojinbango.holder import HolderError

    try:
        with nation_urls(args.data_dir) as (topology, urls, _):
            out = portal_records(topology, urls, args.card, args.pin)
    except HolderError as exc:
        _print({"ok": False, **exc.as_dict()})
        return 1
    _print(out)
    if not out["all_proofs_valid"]:
        print(f"kojinbango: {out['message']}", file=sys.stderr)
        return 1
    return 0


def _wrap(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from kojinbango.common.errors import BusinessError
        from kojinbango.common.topology import TopologyError

        try:
            return int(func(args))
        except ExchangeCliError as exc:
            print(f"kojinbango: {exc}", file=sys.stderr)
            return exc.code
        except (BusinessError, TopologyError) as exc:
            print(f"kojinbango: {exc}", file=sys.stderr)
            return 2

    return run


def add_parsers(sub: Any) -> None:
    ex = sub.add_parser("exchange", help="3-3: information linkage over the network (情報連携)")
    esub = ex.add_subparsers(dest="exchange_command", required=True)

    def data_dir(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data-dir", type=Path, required=True)

    sp = esub.add_parser("table", help="the legal table (別表第二) as JSON rows")
    data_dir(sp)
    sp.set_defaults(func=_wrap(cmd_table))

    sp = esub.add_parser(
        "prepare", help="business data, 符号 and 副本 everywhere; writes linkage/scenarios.json"
    )
    data_dir(sp)
    sp.add_argument("--seed", type=int, default=1)
    sp.set_defaults(func=_wrap(cmd_prepare))

    sp = esub.add_parser(
        "query", help="ask another organisation for a person's information (as querier staff)"
    )
    data_dir(sp)
    sp.add_argument("--querier", required=True, help="地方公共団体コード or agency id (nenkin)")
    sp.add_argument("--provider", required=True, help="地方公共団体コード or agency id")
    sp.add_argument("--affair", required=True, help="row id of the legal table (exchange table)")
    sp.add_argument("--info", required=True, help="category, e.g. 地方税関係情報")
    sp.add_argument(
        "--my-number", required=True, help="the person's 個人番号 (it becomes a 符号 before leaving)"
    )
    sp.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the answer")
    sp.add_argument("--staff", default="職員（CLI）")
    sp.set_defaults(func=_wrap(cmd_query))

    sp = esub.add_parser("result", help="collect a pending answer by 処理通番 (結果取得要求)")
    data_dir(sp)
    sp.add_argument("--querier", required=True)
    sp.add_argument("--id", required=True, help="処理通番")
    sp.set_defaults(func=_wrap(cmd_result))

    sp = esub.add_parser(
        "waiting",
        help="the querier's queries still waiting for their answer, oldest first (exit 3 while any does)",
    )
    data_dir(sp)
    sp.add_argument("--querier", required=True)
    sp.add_argument(
        "--collect", action="store_true", help="ask for each one's answer again first (結果取得要求)"
    )
    sp.set_defaults(func=_wrap(cmd_waiting))

    sp = esub.add_parser(
        "rotate-key", help="replace a querier's encryption key (answers sealed to the old one still open)"
    )
    data_dir(sp)
    sp.add_argument("--org", required=True, help="地方公共団体コード or agency id (nenkin)")
    sp.set_defaults(func=_wrap(cmd_rotate_key))

    sp = esub.add_parser("records", help="the querier's, provider's and network's records side by side")
    data_dir(sp)
    sp.add_argument("--id", help="one 処理通番 (default: all)")
    sp.set_defaults(func=_wrap(cmd_records))

    sp = esub.add_parser("refresh", help="the nightly batch now: 符号 and every 副本")
    data_dir(sp)
    sp.add_argument("--municipality")
    sp.set_defaults(func=_wrap(cmd_refresh))

    sp = esub.add_parser(
        "status", help="the network operator's view: exchanges by status, what waits for which provider"
    )
    data_dir(sp)
    sp.set_defaults(func=_wrap(cmd_status))

    sp = esub.add_parser("verify-log", help="monitor: every entry and signed tree head of the network's log")
    data_dir(sp)
    sp.set_defaults(func=_wrap(cmd_verify_log))

    portal = sub.choices.get("portal")
    if portal is None:
        portal = sub.add_parser("portal", help="マイポータル")
        portal.add_subparsers(dest="portal_command", required=True)
    psub = next(a for a in portal._actions if isinstance(a, argparse._SubParsersAction))
    sp = psub.add_parser("records", help="やりとり履歴: your provision records, each with its proof checked")
    data_dir(sp)
    sp.add_argument("--card", type=Path, required=True)
    sp.add_argument("--pin", required=True)
    sp.set_defaults(func=_wrap(cmd_portal_records))

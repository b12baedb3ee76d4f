"""やりとり履歴: the resident sees every exchange about them with its inclusion proof checked; a record
altered or deleted in the network's database makes the proofs fail, and the portal says so."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import httpx
import pytest
from exchange_helpers import A, args_of, ask, scenarios
from sqlalchemy import select

from kojinbango import linkage_audit
from kojinbango.cli import main
from kojinbango.common.merkle import Tree
from kojinbango.domain.jst import jst_text
from kojinbango.exchangecli import portal_login, portal_records
from kojinbango.holder import Client, issue_card
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import running

PIN = "4321"


@pytest.fixture(scope="module")
def resident(linkage_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A copy of the nation where a resident of A holds a card and was asked about three times."""
    d = tmp_path_factory.mktemp("portal") / "nation"
    shutil.copytree(linkage_dir, d)
    asked = scenarios(d)[1]["command"]  # 日本年金機構 asks A for 地方税関係情報
    number = args_of(asked)["my-number"]
    with running(d) as nation:
        with nation.runtimes[A].db.transaction() as s:
            code = s.scalar(select(Resident.resident_code).where(Resident.my_number == number))
        client = Client(nation.topology, nation.urls)
        try:
            card = Path(issue_card(client, code, PIN, None)["card"])
        finally:
            client.close()
        ids = [ask(nation, asked)["exchange_id"]]
        ids.append(
            ask(nation, asked.replace("--info 地方税関係情報", "--info 住民票関係情報"))["exchange_id"]
        )
        ids.append(ask(nation, scenarios(d)[2]["command"])["exchange_id"])  # refused
    return d, card, ids


def records_cli(d: Path, card: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["portal", "records", "--data-dir", str(d), "--card", str(card), "--pin", PIN])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    return code, json.loads(out)


def test_the_resident_sees_every_exchange_with_a_valid_proof(
    resident: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    d, card, ids = resident
    code, shown = records_cli(d, card, capsys)
    assert code == 0, shown
    assert shown["all_proofs_valid"] is True
    mine = {r["exchange_id"]: r for r in shown["records"]}
    assert set(ids) <= set(mine)
    assert all(r["proof_valid"] for r in shown["records"])
    assert mine[ids[0]]["outcome"] == "provided" and mine[ids[0]]["querier"] == "nenkin"
    assert mine[ids[2]]["outcome"] == "refused"  # refusals are shown too
    assert "subject" not in mine[ids[0]] and "salt" not in mine[ids[0]]
    # a second visit: the log grew, and the portal checks it only grew (consistency proof)
    with running(d) as nation:
        ask(nation, scenarios(d)[1]["command"])  # asked once more: the log grows
        again = portal_records(nation.topology, nation.urls, card, PIN)
        token, _ = portal_login(nation.topology, nation.urls, card, PIN)
        page = httpx.get(nation.urls["portal"] + "/records", headers={"authorization": f"Bearer {token}"})
        english = httpx.get(
            nation.urls["portal"] + "/records",
            headers={"authorization": f"Bearer {token}"},
            cookies={"lang": "en"},
        )
        anonymous = httpx.get(nation.urls["portal"] + "/records")
    assert again["all_proofs_valid"] is True
    assert again["log"]["consistent_with_last_seen"] is True
    assert page.status_code == 200 and "やりとり履歴" in page.text and ids[0] in page.text
    assert "✗" not in page.text and "日本年金機構" in page.text
    # times as the resident reads them: Japan time, not the record's UTC text
    asked = mine[ids[0]]["requested_at"]
    assert jst_text(asked) in page.text and asked not in page.text
    # the verdict in the reader's language
    assert "すべての記録がネットワークのログにあることを確認しました" in page.text
    assert "every record is proven to be in the network" in english.text
    assert anonymous.status_code == 401


def test_a_record_altered_in_the_network_database_fails_its_proofs(
    resident: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, card, ids = resident
    d = tmp_path / "nation"
    shutil.copytree(src, d)
    with running(d) as nation:
        assert portal_records(nation.topology, nation.urls, card, PIN)["all_proofs_valid"]
        # while the network runs, someone rewrites who asked
        with sqlite3.connect(d / "network.db") as conn:
            changed = conn.execute(
                'UPDATE log_entries SET leaf = replace(leaf, \'"querier":"nenkin"\', \'"querier":"131041"\') '
                "WHERE leaf LIKE ?",
                (f"%{ids[0]}%",),
            ).rowcount
        assert changed == 1
        shown = portal_records(nation.topology, nation.urls, card, PIN)
    assert shown["all_proofs_valid"] is False
    assert "altered" in shown["message"]
    bad = [r for r in shown["records"] if not r["proof_valid"]]
    assert any(r["exchange_id"] == ids[0] for r in bad)
    # after a restart the network itself notices, refuses to sign over it, and the monitor says so
    code, again = records_cli(d, card, capsys)
    assert code == 1 and again["all_proofs_valid"] is False
    report = linkage_audit.verify_network_log(_topology(d))
    assert not report["ok"] and any("does not match" in p for p in report["problems"])


def test_a_record_deleted_from_the_network_database_fails_the_proofs(
    resident: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, card, ids = resident
    d = tmp_path / "nation"
    shutil.copytree(src, d)
    with sqlite3.connect(d / "network.db") as conn:
        assert conn.execute("DELETE FROM log_entries WHERE leaf LIKE ?", (f"%{ids[1]}%",)).rowcount == 1
    code, shown = records_cli(d, card, capsys)
    assert code == 1
    assert shown["all_proofs_valid"] is False
    assert ids[1] not in {r["exchange_id"] for r in shown["records"]}
    assert not any(r["proof_valid"] for r in shown["records"])
    assert main(["exchange", "verify-log", "--data-dir", str(d)]) == 1
    assert "missing" in capsys.readouterr().out


def test_a_record_moved_to_another_person_in_the_network_database_is_caught(
    resident: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each record commits to its person; changing the column that files it under a person is
    caught in the list it lands in (the portal says so) and by the monitor's full check."""
    src, card, ids = resident
    d = tmp_path / "nation"
    shutil.copytree(src, d)
    with running(d) as nation:
        ask(nation, scenarios(d)[0]["command"])  # B asks A about a family that moved: other people
    with sqlite3.connect(d / "network.db") as conn:
        (mine,) = conn.execute(
            "SELECT person_id FROM log_entries WHERE leaf LIKE ?", (f"%{ids[0]}%",)
        ).fetchone()
        other = conn.execute(
            "SELECT seq FROM log_entries WHERE person_id != ? AND leaf IS NOT NULL ORDER BY seq LIMIT 1",
            (mine,),
        ).fetchone()
        assert other is not None
        conn.execute("UPDATE log_entries SET person_id = ? WHERE seq = ?", (mine, other[0]))
    with running(d) as nation:
        shown = portal_records(nation.topology, nation.urls, card, PIN)
        token, _ = portal_login(nation.topology, nation.urls, card, PIN)
        page = httpx.get(nation.urls["portal"] + "/records", headers={"authorization": f"Bearer {token}"})
    assert shown["all_proofs_valid"] is False
    assert "another person" in shown["message"]
    moved = [r for r in shown["records"] if r["filed_correctly"] is False]
    assert [r["index"] for r in moved] == [other[0]] and moved[0]["proof_valid"] is True
    assert all(r["filed_correctly"] for r in shown["records"] if r["index"] != other[0])
    assert "この記録は別の人のものです" in page.text
    assert main(["exchange", "verify-log", "--data-dir", str(d)]) == 1
    assert f"entry {other[0]} is filed under a person its record does not name" in capsys.readouterr().out


def test_a_record_moved_out_of_the_residents_list_leaves_a_gap_they_see(
    resident: tuple[Path, Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each record names the person's previous record: a record taken out of a resident's list (here
    refiled under another person) breaks the chain at their next record — the resident's own check
    finds the gap, though every remaining record still has a valid inclusion proof."""
    src, card, ids = resident
    d = tmp_path / "nation"
    shutil.copytree(src, d)
    with running(d) as nation:
        before = portal_records(nation.topology, nation.urls, card, PIN)
        ask(nation, scenarios(d)[0]["command"])  # B asks A about a family that moved: other people
    assert before["all_proofs_valid"] is True and before["complete"] is True
    with sqlite3.connect(d / "network.db") as conn:
        seq, mine = conn.execute(
            "SELECT seq, person_id FROM log_entries WHERE leaf LIKE ?", (f"%{ids[0]}%",)
        ).fetchone()
        (other,) = conn.execute(
            "SELECT person_id FROM log_entries WHERE person_id != ? LIMIT 1", (mine,)
        ).fetchone()
        conn.execute("UPDATE log_entries SET person_id = ? WHERE seq = ?", (other, seq))
    with running(d) as nation:
        shown = portal_records(nation.topology, nation.urls, card, PIN)
        token, _ = portal_login(nation.topology, nation.urls, card, PIN)
        page = httpx.get(nation.urls["portal"] + "/records", headers={"authorization": f"Bearer {token}"})
    assert ids[0] not in {r.get("exchange_id") for r in shown["records"]}
    assert all(r["proof_valid"] and r["filed_correctly"] for r in shown["records"])  # what is left proves
    assert shown["complete"] is False and shown["all_proofs_valid"] is False
    assert "missing from this list" in shown["message"]
    gap = [r for r in shown["records"] if r["chain_valid"] is False]
    assert [r["exchange_id"] for r in gap] == [ids[1]]  # the record that followed the one taken out
    assert "この記録の前にあるはずの記録が一覧にありません" in page.text
    assert "あなたに関する記録がこの一覧から欠けています" in page.text
    assert main(["exchange", "verify-log", "--data-dir", str(d)]) == 1
    assert "does not follow its person's previous record" in capsys.readouterr().out


def test_the_newest_record_taken_out_after_the_resident_saw_it_is_missed(
    resident: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    """No later record shows the gap when the newest one is taken out; the portal remembers the
    newest record each user was shown and checks it is still there."""
    src, card, _ids = resident
    d = tmp_path / "nation"
    shutil.copytree(src, d)
    with running(d) as nation:
        ask(nation, scenarios(d)[0]["command"])  # records of other people (the family B asks about)
        seen = portal_records(nation.topology, nation.urls, card, PIN)
    assert seen["all_proofs_valid"] is True
    newest = seen["records"][-1]
    with sqlite3.connect(d / "network.db") as conn:
        (mine,) = conn.execute(
            "SELECT person_id FROM log_entries WHERE seq = ?", (newest["index"],)
        ).fetchone()
        (other,) = conn.execute(
            "SELECT person_id FROM log_entries WHERE person_id != ? LIMIT 1", (mine,)
        ).fetchone()
        conn.execute("UPDATE log_entries SET person_id = ? WHERE seq = ?", (other, newest["index"]))
    with running(d) as nation:
        shown = portal_records(nation.topology, nation.urls, card, PIN)
    assert newest["index"] not in {r["index"] for r in shown["records"]}
    assert all(r["proof_valid"] and r["chain_valid"] is not False for r in shown["records"])  # no gap left
    assert shown["complete"] is False and shown["all_proofs_valid"] is False
    assert "missing from this list" in shown["message"]


def _refile(d: Path, exchange_id: str, to_another_person: bool) -> None:
    """Move a record out of its person's list in the network's database (to another person, or none)."""
    with sqlite3.connect(d / "network.db") as conn:
        seq, mine = conn.execute(
            "SELECT seq, person_id FROM log_entries WHERE leaf LIKE ?", (f"%{exchange_id}%",)
        ).fetchone()
        (other,) = conn.execute(
            "SELECT person_id FROM log_entries WHERE person_id != ? LIMIT 1", (mine,)
        ).fetchone()
        conn.execute(
            "UPDATE log_entries SET person_id = ? WHERE seq = ?", (other if to_another_person else None, seq)
        )


@pytest.mark.parametrize(
    ("network", "refile"),
    [("running", "another person"), ("stopped", "another person"), ("stopped", "nobody")],
)
def test_the_newest_record_taken_out_before_the_resident_looked_is_missed_at_first_look(
    resident: tuple[Path, Path, list[str]], tmp_path: Path, network: str, refile: str
) -> None:
    """The network says which record of the person is the newest — from its own memory of the log,
    rebuilt at start from whom the records commit to, not from the person column — so the list must
    end with it even when the resident never looked, whether the record was taken out while the
    network ran or while it was stopped."""
    src, card, ids = resident
    d = tmp_path / "nation"
    shutil.copytree(src, d)
    with running(d) as nation:
        ask(nation, scenarios(d)[0]["command"])  # records of other people (the family B asks about)
        newest = ask(nation, scenarios(d)[1]["command"])["exchange_id"]  # the resident's newest record
        if network == "running":
            _refile(d, newest, refile == "another person")
            shown = portal_records(nation.topology, nation.urls, card, PIN)
    if network == "stopped":
        _refile(d, newest, refile == "another person")
        with running(d) as nation:
            shown = portal_records(nation.topology, nation.urls, card, PIN)
    listed = {r.get("exchange_id") for r in shown["records"]}
    assert newest not in listed and ids[0] in listed
    assert all(r["proof_valid"] and r["chain_valid"] is not False for r in shown["records"])
    assert shown["complete"] is False and shown["all_proofs_valid"] is False
    assert "missing from this list" in shown["message"]


def test_a_record_erased_after_its_retention_still_proves_and_keeps_the_chain(
    resident: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    """Past its retention period a record's text is erased and only its hash stays: the resident sees
    it as erased, its inclusion is still proven from that hash, and the chain runs through it."""
    src, card, ids = resident
    d = tmp_path / "nation"
    shutil.copytree(src, d)
    with sqlite3.connect(d / "network.db") as conn:
        changed = conn.execute(
            "UPDATE log_entries SET retain_until = '2000-01-01 00:00:00.000000' WHERE leaf LIKE ?",
            (f"%{ids[0]}%",),
        ).rowcount
    assert changed == 1
    with running(d) as nation:
        nation.runtime("network").services["log"].purge()  # (the IF's worker may have purged it first)
        with sqlite3.connect(d / "network.db") as conn:
            assert conn.execute("SELECT count(*) FROM log_entries WHERE leaf IS NULL").fetchone() == (1,)
        shown = portal_records(nation.topology, nation.urls, card, PIN)
    erased = [r for r in shown["records"] if r["erased"]]
    assert len(erased) == 1 and erased[0]["proof_valid"] is True and "exchange_id" not in erased[0]
    assert ids[0] not in {r.get("exchange_id") for r in shown["records"]}
    assert shown["all_proofs_valid"] is True and shown["complete"] is True
    assert next(r for r in shown["records"] if r.get("exchange_id") == ids[1])["chain_valid"] is True


def test_the_networks_kept_tree_gives_the_proofs_of_a_full_recomputation(
    resident: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    """Proofs come from the tree the network keeps and grows in memory; they must be exactly those
    of rebuilding the tree from the entries in the database, for every size, before and after the
    log grows while running."""
    src, _card, _ids = resident
    d = tmp_path / "nation"
    shutil.copytree(src, d)
    with running(d) as nation:
        log = nation.runtime("network").services["log"]
        ask(nation, scenarios(d)[1]["command"])  # appended while running
        size = log.size
        assert size >= 4
        kept, problems = log.tree(size)
        full = Tree(log.leaf_state(size).hashes)
        assert problems == [] and kept.root() == full.root() == log.frontier.root()
        for n in range(1, size + 1):
            assert kept.root_at(n) == full.root_at(n)
            for i in range(n):
                assert kept.inclusion_proof(i, n) == full.inclusion_proof(i, n)
            for old in range(1, n + 1):
                assert kept.consistency_proof(old, n) == full.consistency_proof(old, n)


def _topology(d: Path):  # type: ignore[no-untyped-def]
    from kojinbango.common.topology import Topology

    return Topology.load(d / "topology.json")

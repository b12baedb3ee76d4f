"""`kojinbango link import|run|export` and `audit links` as a municipal engineer runs them.

The CSV here is written by the test itself from the register, with its own dirt (not the project's
generator): hiragana and half-width furigana, 和暦 dates, hyphenated addresses without prefecture,
plus malformed rows and people nobody knows.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

from kojinbango.domain.wareki import to_wareki

CLI = [sys.executable, "-m", "kojinbango.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=600)


def _hira(s: str) -> str:
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in s)


def test_link_import_run_export_audit(small_nation_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    r = run("export", "residents", "--data-dir", str(d), "--municipality", "131016")
    assert r.returncode == 0, r.stderr
    residents = list(csv.DictReader(r.stdout.splitlines()))
    rows, truth = [], {}
    for i, p in enumerate(residents):
        lid = f"Z{i:05d}"
        kana = p["kana"]
        if i % 3 == 0:
            kana = _hira(kana)
        elif i % 3 == 1:
            kana = unicodedata.normalize("NFKC", kana).replace("\u3000", " ")
            kana = kana.translate(
                str.maketrans(
                    "アイウエオカキクケコサシスセソタチツテトナニヌネノ", "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉ"
                )
            )
        import datetime as dt

        birth = dt.date.fromisoformat(p["birth_date"])
        btext = to_wareki(birth) if i % 2 else p["birth_date"]
        addr = p["address"].replace("東京都", "").split("\u3000")[0]
        addr = (
            addr.replace("番地", "-").replace("番", "-").replace("号", "").rstrip("-") if i % 4 == 0 else addr
        )
        rows.append(
            [lid, p["name"].replace("\u3000", "") if i % 5 == 0 else p["name"], kana, btext, p["sex"], addr]
        )
        truth[lid] = p["my_number"]
    rows.append(["NOBODY1", "存在　しない", "", "1950-01-01", "1", "大阪府大阪市北区梅田1-1-1"])
    truth["NOBODY1"] = ""
    path = tmp_path / "tax.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["legacy_id", "name", "kana", "birth_date", "sex", "address"])
        w.writerows(rows[:5])
        w.writerow(["BAD1", "山田　太郎", "", "昭和99年1月1日", "1", "千代田区丸の内1-1-1"])  # line 7
        w.writerow(["BAD2", "山田　太郎", "", "1980-01-01", "9", "千代田区丸の内1-1-1"])  # line 8
        w.writerow(["BAD3", "only", "three"])  # line 9
        w.writerow([rows[0][0], *rows[0][1:]])  # line 10: repeats a legacy_id
        w.writerows(rows[5:])
    r = run(
        "link",
        "import",
        "--data-dir",
        str(d),
        "--municipality",
        "131016",
        "--system",
        "tax",
        "--csv",
        str(path),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["imported"] == len(rows) and out["rejected"] == 4
    assert [e["line"] for e in out["errors"]] == [7, 8, 9, 10]
    assert "line 7" in r.stderr and "昭和" in out["errors"][0]["error"]
    again = json.loads(
        run(
            "link",
            "import",
            "--data-dir",
            str(d),
            "--municipality",
            "131016",
            "--system",
            "tax",
            "--csv",
            str(path),
        ).stdout
    )
    assert again["imported"] == 0 and again["unchanged"] == len(rows)

    r = run("link", "run", "--data-dir", str(d), "--municipality", "131016", "--system", "tax")
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout)
    assert counts["processed"] == len(rows)
    assert sum(counts[k] for k in ("linked", "review", "unmatched", "non_resident_linked")) == len(rows)

    r = run("link", "export", "--data-dir", str(d), "--municipality", "131016", "--system", "tax")
    assert r.returncode == 0, r.stderr
    exported = list(csv.DictReader(r.stdout.splitlines()))
    assert list(exported[0]) == ["legacy_id", "status", "my_number"]
    assert len(exported) == len(rows)
    wrong = [
        e
        for e in exported
        if e["status"] in ("linked", "non_resident_linked") and e["my_number"] != truth[e["legacy_id"]]
    ]
    assert wrong == []
    linked = sum(1 for e in exported if e["status"] == "linked")
    assert linked >= 0.9 * len(residents)
    assert {e["status"] for e in exported if e["legacy_id"] == "NOBODY1"} == {"unmatched"}

    r = run("audit", "links", "--data-dir", str(d), "--municipality", "131016")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)["131016"]
    assert report["links_checked"] == linked and report["counts"].get("disagrees", 0) == 0


def test_link_import_reports_bad_files(small_nation_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    bad = tmp_path / "sjis.csv"
    bad.write_bytes(
        "legacy_id,name,kana,birth_date,sex,address\n1,山田,,1980-01-01,1,丸の内\n".encode("shift_jis")
    )
    r = run(
        "link",
        "import",
        "--data-dir",
        str(d),
        "--municipality",
        "131016",
        "--system",
        "tax",
        "--csv",
        str(bad),
    )
    assert r.returncode == 2 and "UTF-8" in r.stderr
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("id,name\n1,x\n", encoding="utf-8")
    r = run(
        "link",
        "import",
        "--data-dir",
        str(d),
        "--municipality",
        "131016",
        "--system",
        "tax",
        "--csv",
        str(nohead),
    )
    assert r.returncode == 2 and "legacy_id" in r.stderr
    strict = tmp_path / "strict.csv"
    strict.write_text(
        "legacy_id,name,kana,birth_date,sex,address\nA1,山田 一郎,,S55.4.1,1,丸の内1-1-1\nA2,,,,,\n",
        encoding="utf-8",
    )
    r = run(
        "link",
        "import",
        "--data-dir",
        str(d),
        "--municipality",
        "131016",
        "--system",
        "w",
        "--csv",
        str(strict),
        "--strict",
    )
    assert r.returncode == 1 and json.loads(r.stdout)["imported"] == 0 and "line 3" in r.stderr

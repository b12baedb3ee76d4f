"""Print-run speed of 個人番号通知書 PDFs: prints one JSON object.

Usage: ``.venv/bin/python bench/notices.py [--repeats N] [--runs R] [--workers W] [--out-dir DIR]``

Each run renders a synthetic print run (names with 髙, 﨑, 𠮷, 邉, 齋, an IVS variant, long addresses
with 方書, 2 % reprints) into one PDF with ``render_notices``.  Reported per run: wall-clock and
CPU-time pages/s (best of ``--repeats``; the machine may be shared), bytes per page, and the time
spent building the embedded font subsets (IPAmj明朝 is 46 MB; each 256-glyph subset is one
embedded font program).  ``font_load_s`` is the once-per-process registration of the fonts and
``one_page_document_s`` the fixed cost of a document (static form, subsets, file handling).

``pages_per_s`` is one process rendering a 1,000-page run; ``parallel`` renders ``--runs`` runs of
1,000 pages (default 20, as in flow 1-1's introduction of numbers) with ``render_notice_runs`` on
``--workers`` processes (default: all cores) and reports wall-clock pages/s for the whole batch.
``qr_encode_per_1000_s`` is the batch QR encoding alone (numpy, whole run at once).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

try:
    import kojinbango  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reportlab.pdfbase import pdfmetrics  # noqa: E402

from kojinbango.documents import qr  # noqa: E402
from kojinbango.documents.fonts import FONT_NAME, register_fonts, register_label_font  # noqa: E402
from kojinbango.documents.notice import NoticeData, render_notice_runs, render_notices  # noqa: E402
from kojinbango.domain.identifiers import my_number_check_digit  # noqa: E402

SURNAMES = [
    "髙橋",
    "山﨑",
    "𠮷田",
    "渡邉",
    "齋藤",
    "佐藤",
    "鈴木",
    "田中",
    "伊藤",
    "渡辺",
    "中村",
    "小林",
    "加藤",
    "吉田",
    "山田",
    "佐々木",
    "山口",
    "松本",
    "井上",
    "木村",
    "林",
    "斎藤",
    "清水",
    "山崎",
    "森",
    "池田",
    "橋本",
    "阿部",
    "石川",
    "山下",
    "中島",
    "石井",
    "小川",
    "前田",
    "岡田",
    "長谷川",
    "藤田",
    "後藤",
    "近藤",
    "村上",
    "遠藤",
    "青木",
    "坂本",
    "斉藤",
    "福田",
    "太田",
    "西村",
    "藤井",
    "金子",
    "岡本",
    "藤原",
    "中野",
    "三浦",
    "原田",
    "中川",
    "松田",
    "竹内",
    "小野",
    "田村",
    "中山",
    "和田",
    "石田",
    "森田",
    "上田",
    "原",
    "内田",
    "柴田",
    "酒井",
    "工藤",
    "横山",
    "宮崎",
    "宮本",
    "谷口",
    "大野",
    "高木",
    "丸山",
    "今井",
    "河野",
    "藤本",
    "村田",
    "武田",
    "上野",
    "杉山",
    "増田",
    "小山",
    "大塚",
    "平野",
    "菅原",
    "久保",
    "松井",
    "千葉",
    "岩崎",
    "桜井",
    "木下",
    "野口",
    "松尾",
    "菊地",
    "野村",
    "新井",
    "葛󠄂西",
]
GIVEN = [
    "一郎",
    "花子",
    "翔太",
    "陽菜",
    "蓮",
    "結衣",
    "大翔",
    "美咲",
    "悠真",
    "葵",
    "湊",
    "凛",
    "樹",
    "結菜",
    "颯",
    "芽依",
    "健太",
    "真央",
    "拓海",
    "愛",
    "陽翔",
    "紬",
    "蒼",
    "澪",
    "律",
    "咲良",
    "朝陽",
    "杏",
    "悠人",
    "莉子",
    "碧",
    "心春",
    "伊織",
    "結愛",
    "大和",
    "美桜",
    "奏太",
    "琴音",
    "颯真",
    "彩葉",
    "誠",
    "恵子",
    "浩",
    "幸子",
    "茂",
    "和子",
    "勝",
    "節子",
    "清",
    "洋子",
    "實",
    "榮子",
    "齊",
    "邊",
    "秀樹",
    "裕子",
    "隆",
    "直美",
    "博",
    "久美子",
    "稔",
    "弘子",
    "亮",
    "聡子",
    "學",
    "國男",
    "龍之介",
    "櫻",
]
TOWNS = (
    "千代田区千代田",
    "千代田区丸の内一丁目",
    "千代田区霞が関二丁目",
    "千代田区神田神保町三丁目",
    "千代田区麹町四丁目",
    "千代田区九段北一丁目",
    "千代田区大手町二丁目",
    "千代田区有楽町一丁目",
    "千代田区内幸町二丁目",
    "千代田区外神田四丁目",
    "千代田区猿楽町二丁目",
    "千代田区一番町",
)
BUILDINGS = (
    "",
    "",
    "",
    "　千代田ハイツ",
    "　グランドメゾン九段",
    "　麹町パークサイドレジデンス",
    "　神保町荘",
)
KANA = ("ヤマダ　タロウ", "タカハシ　イチロウ", "ヤマザキ　ヨシコ", "ワタナベ　サイ", "サイトウ　ヒトシ")


def synthetic_notices(count: int, seed: int = 1) -> list[NoticeData]:
    rng = random.Random(seed)
    notices = []
    for i in range(count):
        base = f"{rng.randrange(10**11):011d}"
        application_id = f"{rng.randrange(10**23):023d}"
        building = rng.choice(BUILDINGS)
        room = f"{rng.randint(1, 12)}0{rng.randint(1, 9)}号室" if building else ""
        address = f"東京都{rng.choice(TOWNS)}{rng.randint(1, 30)}番{rng.randint(1, 20)}号{building}{room}"
        notices.append(
            NoticeData(
                notice_id=f"R8-{i:08d}",
                municipality_name="東京都千代田区",
                mayor_title="千代田区長",
                issued_on=datetime.date(2026, 11, 26),
                postal_code=f"100{rng.randrange(10**4):04d}",
                address=address,
                name=f"{rng.choice(SURNAMES)}　{rng.choice(GIVEN)}",
                kana=rng.choice(KANA),
                birth_date=datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randrange(34000)),
                sex=rng.choice("男女"),
                my_number=base + str(my_number_check_digit(base)),
                application_id=application_id,
                qr_payload=f"https://kojinbango.example/apply?id={application_id}",
                reprint=rng.random() < 0.02,
            )
        )
    return notices


class SubsetTimer:
    """Times reportlab's font subsetting (``makeSubset``) on the registered faces."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.subsets = 0
        for name in {FONT_NAME, register_label_font()}:
            face = pdfmetrics.getFont(name).face
            face.makeSubset = self._wrap(face.makeSubset)

    def _wrap(self, make: Callable[[list[int]], bytes]) -> Callable[[list[int]], bytes]:
        def timed(subset: list[int]) -> bytes:
            start = time.perf_counter()
            try:
                return make(subset)
            finally:
                self.seconds += time.perf_counter() - start
                self.subsets += 1

        return timed

    def reset(self) -> None:
        self.seconds, self.subsets = 0.0, 0


def run(notices: list[NoticeData], out: Path, repeats: int, timer: SubsetTimer) -> dict[str, float | int]:
    best: dict[str, float | int] = {}
    for _ in range(repeats):
        timer.reset()
        wall, cpu = time.perf_counter(), time.process_time()
        pages = render_notices(notices, out)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if not best or wall < best["seconds"]:
            best = {
                "pages": pages,
                "seconds": round(wall, 4),
                "pages_per_s": round(pages / wall, 1),
                "cpu_pages_per_s": round(pages / cpu, 1),
                "bytes_per_page": out.stat().st_size // pages,
                "font_subsets": timer.subsets,
                "subset_s": round(timer.seconds, 4),
            }
    return best


def run_parallel(
    notices: list[NoticeData], directory: Path, runs: int, workers: int, repeats: int
) -> dict[str, float | int]:
    """``runs`` print runs of ``len(notices)`` pages each (different 申請書ID per run) on ``workers``."""
    batches = [
        ([replace_application_id(n, r) for n in notices] if r else notices, directory / f"run-{r:03d}.pdf")
        for r in range(runs)
    ]
    best: dict[str, float | int] = {}
    for _ in range(repeats):
        wall = time.perf_counter()
        pages = sum(render_notice_runs(batches, workers=workers))
        wall = time.perf_counter() - wall
        if not best or wall < best["seconds"]:
            best = {
                "runs": runs,
                "pages": pages,
                "workers": workers,
                "seconds": round(wall, 3),
                "pages_per_s": round(pages / wall, 1),
            }
    return best


def replace_application_id(notice: NoticeData, salt: int) -> NoticeData:
    application_id = f"{(int(notice.application_id) + salt * 7919) % 10**23:023d}"
    return dataclasses.replace(
        notice,
        application_id=application_id,
        qr_payload=f"https://kojinbango.example/apply?id={application_id}",
    )


def qr_encode_seconds(notices: list[NoticeData], repeats: int) -> float:
    payloads = [n.qr_payload for n in notices]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        qr.encode(payloads)
        best = min(best, time.perf_counter() - start)
    return round(best, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--runs", type=int, default=20, help="print runs of 1,000 pages for the parallel figure"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    register_fonts()
    register_label_font()
    font_load_s = time.perf_counter() - start
    timer = SubsetTimer()
    notices = synthetic_notices(1000)

    with tempfile.TemporaryDirectory(dir=args.out_dir) as tmp:
        out = Path(tmp) / "print-run.pdf"
        one = run(notices[:1], out, args.repeats, timer)
        small = run(notices[:200], out, args.repeats, timer)
        large = run(notices, out, args.repeats, timer)
        parallel = run_parallel(notices, Path(tmp), args.runs, args.workers, max(1, args.repeats - 1))

    print(
        json.dumps(
            {
                "pages_per_s": large["pages_per_s"],
                "parallel": parallel,
                "runs": {"200": small, "1000": large},
                "qr_encode_per_1000_s": qr_encode_seconds(notices, args.repeats),
                "cpu_count": os.cpu_count(),
                "font_load_s": round(font_load_s, 4),
                "one_page_document_s": one["seconds"],
                "one_page_subset_s": one["subset_s"],
                "repeats": args.repeats,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()

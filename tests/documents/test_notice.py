"""個人番号通知書 PDF: pages, embedded MJ font, exact characters, QR, 再発行 marking, atomic output."""

from __future__ import annotations

import dataclasses
import datetime
import random
import re
import shutil
import string
import subprocess
from pathlib import Path

import numpy as np
import pypdf
import pytest
import segno

from kojinbango.documents import qr
from kojinbango.documents.fonts import (
    FONT_ENV,
    cjk_font_path,
    encode_text,
    missing_glyphs,
    register_fonts,
)
from kojinbango.documents.notice import (
    NoticeData,
    format_application_id,
    format_my_number,
    qr_matrix,
    qr_operators,
    qr_rectangles,
    render_notice_runs,
    render_notices,
)

APPLY_URL = "https://kojinbango.example/apply?id="

# 葛󠄂 = 葛 + IVS U+E0102: an MJ variant only reachable through the font's cmap format 14.
KATSURA_IVS = "葛\U000e0102"


def _notice(i: int, name: str, kana: str, address: str, **changes: object) -> NoticeData:
    application_id = f"{i:02d}" + "3" * 21
    base = NoticeData(
        notice_id=f"T-{i:06d}",
        municipality_name="東京都千代田区",
        mayor_title="千代田区長",
        issued_on=datetime.date(2026, 11, 26),
        postal_code="1000001",
        address=address,
        name=name,
        kana=kana,
        birth_date=datetime.date(1985, 4, 1),
        sex="男",
        my_number=["123456789018", "000000000019", "876543210989"][i % 3],
        application_id=application_id,
        qr_payload=APPLY_URL + application_id,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


NOTICES = [
    _notice(0, "髙橋　一郎", "タカハシ　イチロウ", "東京都千代田区千代田１番１号　千代田ハイツ１０１号室"),
    _notice(
        1,
        "山﨑　𠮷子",
        "ヤマザキ　ヨシコ",
        "東京都千代田区丸の内一丁目９番２号グラントウキョウサウスタワー３５階コーポレートオフィス",
        sex="女",
        birth_date=datetime.date(2019, 5, 1),
    ),
    _notice(
        2, f"渡邉　{KATSURA_IVS}齋", "ワタナベ　カツサイ", "東京都千代田区霞が関二丁目１番２号", reprint=True
    ),
]


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("notices") / "notices.pdf"
    assert render_notices(NOTICES, out) == 3
    return out


@pytest.fixture(scope="module")
def reader(pdf: Path) -> pypdf.PdfReader:
    return pypdf.PdfReader(pdf)


def test_one_page_per_notice(reader: pypdf.PdfReader) -> None:
    assert len(reader.pages) == 3
    for page in reader.pages:
        assert [round(float(v)) for v in page.mediabox] == [0, 0, 595, 842]  # A4 portrait


def _fonts_of(reader: pypdf.PdfReader) -> dict[str, pypdf.generic.DictionaryObject]:
    fonts: dict[str, pypdf.generic.DictionaryObject] = {}
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            fonts[str(font["/BaseFont"])] = font
    return fonts


def test_font_is_embedded_ipamj(reader: pypdf.PdfReader) -> None:
    fonts = _fonts_of(reader)
    mj = [f for name, f in fonts.items() if "IPAmj" in name]
    assert mj, sorted(fonts)
    for font in fonts.values():
        descriptor = font["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor, font["/BaseFont"]  # embedded TrueType
        assert len(descriptor["/FontFile2"].get_object().get_data()) > 1000
    # Nothing left to the viewer: no base-14 font (reportlab's default Helvetica) is referenced.
    assert not [name for name in fonts if "Helvetica" in name]


def test_text_has_exact_register_characters(reader: pypdf.PdfReader) -> None:
    texts = [page.extract_text() for page in reader.pages]
    for notice, text in zip(NOTICES, texts, strict=True):
        assert notice.name in text  # 髙 U+9AD9, 﨑 U+FA11, 𠮷 U+20BB7, 邉, 葛 + IVS
        assert notice.kana in text
        assert format_my_number(notice.my_number) in text
        assert format_application_id(notice.application_id) in text
        assert "〒100-0001" in text
        assert "令和8年11月26日" in text
    assert "\U00020bb7" in texts[1] and "\u9ad9" in texts[0] and "\ufa11" in texts[1]
    assert "令和元年5月1日" in texts[1]
    assert KATSURA_IVS in texts[2]


def test_reprint_marked_only_on_reprint_page(reader: pypdf.PdfReader) -> None:
    marked = ["再発行" in page.extract_text() for page in reader.pages]
    assert marked == [n.reprint for n in NOTICES] == [False, False, True]


def test_static_parts_drawn_once_as_form_xobject(reader: pypdf.PdfReader) -> None:
    forms = set()
    for page in reader.pages:
        for ref in page["/Resources"]["/XObject"].values():
            assert ref.get_object()["/Subtype"] == "/Form"
            forms.add(ref.idnum)
    assert len(forms) == 1
    (form_id,) = forms
    form_ops = reader.get_object(form_id).get_data().decode("latin-1")
    assert len(re.findall(r"\bl\b", form_ops)) >= 10 and re.search(r"\] \d+ d\b", form_ops)  # rules, dashes
    for page in reader.pages:
        ops = page.get_contents().get_data().decode("latin-1")
        ops = re.sub(r"/KojinbangoQR BMC.*?EMC", "", ops, flags=re.S)
        assert ops.count(" Do") == 1
        assert not re.search(r"\bl\b", ops)  # no rule is drawn per page
        assert len(re.findall(r"\bBT\b", ops)) <= 2  # the person's values: one text object (+ stamp)


def _drawn_qr(page: pypdf.PageObject) -> tuple[np.ndarray, float]:
    """Rasterise the QR block of the page's content stream back into modules."""
    content = page.get_contents().get_data().decode("latin-1")
    block = re.search(r"/KojinbangoQR BMC(.*?)EMC", content, re.S)
    assert block, "QR block missing"
    ops = block.group(1)
    cm = re.search(r"([\d.]+) 0 0 ([\d.]+) [\d.]+ [\d.]+ cm", ops)
    assert cm
    rects = [tuple(map(int, m)) for m in re.findall(r"(\d+) (\d+) (\d+) (\d+) re", ops)]
    n = max(x + w for x, _, w, _ in rects)
    assert n == max(y + h for _, y, _, h in rects)
    grid = np.zeros((n, n), dtype=int)
    for x, y, w, h in rects:
        grid[n - y - h : n - y, x : x + w] += 1
    assert grid.max() == 1, "rectangles overlap"
    assert len(re.findall(r"^f\b", ops, re.M)) == 1, "one fill for the whole symbol"
    return grid.astype(bool), float(cm.group(1))


def test_qr_drawn_equals_segno_symbol(reader: pypdf.PdfReader) -> None:
    for notice, page in zip(NOTICES, reader.pages, strict=True):
        drawn, module_pt = _drawn_qr(page)
        assert module_pt / 72 * 25.4 >= 0.5  # modules at least 0.5 mm for phone cameras
        matches = [
            mask
            for mask in range(8)
            if np.array_equal(
                drawn, np.array(segno.make(notice.qr_payload, error="m", mask=mask).matrix, bool)
            )
        ]
        assert len(matches) == 1, "drawn symbol is not a segno QR of the payload"


def test_qr_drawn_is_the_batch_symbol(reader: pypdf.PdfReader) -> None:
    symbols = qr.encode([notice.qr_payload for notice in NOTICES])
    for symbol, page in zip(symbols, reader.pages, strict=True):
        assert np.array_equal(_drawn_qr(page)[0], symbol)
    single = qr_matrix(NOTICES[1].qr_payload)  # the single-notice path gives the same symbol
    assert np.array_equal(single, symbols[1])


def test_qr_operators_single_payload() -> None:
    ops = qr_operators(NOTICES[0].qr_payload, 10.0, 20.0, 85.0)
    assert ops.startswith("/KojinbangoQR BMC q 0 g ") and ops.endswith("f Q EMC")
    rects = [tuple(map(int, m)) for m in re.findall(r"^(\d+) (\d+) (\d+) (\d+) re$", ops, re.M)]
    assert len(rects) == len(qr_rectangles(qr_matrix(NOTICES[0].qr_payload)))


def test_qr_masks_match_segno() -> None:
    rng = random.Random(7)
    for length in (5, 40, 90, 160, 300):  # versions 1 to 10, with and without version information
        payload = "".join(rng.choice(string.ascii_letters + string.digits + "/:?=") for _ in range(length))
        for mask in range(8):
            expected = np.array(segno.make(payload, error="m", micro=False, mask=mask).matrix, dtype=bool)
            assert np.array_equal(qr_matrix(payload, mask=mask), expected), (length, mask)


def test_qr_rectangles_cover_exactly_the_dark_modules() -> None:
    matrix = qr_matrix(APPLY_URL + "1" * 23)
    grid = np.zeros(matrix.shape, dtype=int)
    rects = qr_rectangles(matrix)
    for x, top, w, h in rects:
        grid[top : top + h, x : x + w] += 1
    assert np.array_equal(grid, matrix.astype(int))
    assert len(rects) < int(matrix.sum()) // 2  # merged, not one per module


@pytest.mark.skipif(
    not (shutil.which("pdftoppm") and shutil.which("zbarimg")), reason="poppler-utils / zbar-tools"
)
def test_qr_decodes_to_payload(pdf: Path, tmp_path: Path) -> None:
    for page, notice in enumerate(NOTICES, start=1):
        png = tmp_path / f"page-{page}"
        subprocess.run(
            ["pdftoppm", "-r", "150", "-png", "-f", str(page), "-l", str(page), "-singlefile", pdf, png],
            check=True,
        )
        result = subprocess.run(
            ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", f"{png}.png"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == notice.qr_payload


def test_failure_midway_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "run.pdf"
    bad = _notice(
        5, "外字\ue000太郎", "ガイジ　タロウ", "東京都千代田区千代田１番１号"
    )  # municipal 外字 (PUA)
    with pytest.raises(ValueError, match="U\\+E000") as excinfo:
        render_notices([*NOTICES, bad], out)
    assert bad.my_number not in str(excinfo.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_failure_keeps_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "run.pdf"
    out.write_bytes(b"previous run")
    bad = _notice(6, "山田　太郎", "ヤマダ　タロウ", "東京都千代田区\ue001")
    with pytest.raises(ValueError):
        render_notices([NOTICES[0], bad], out)
    assert out.read_bytes() == b"previous run"
    assert [p.name for p in tmp_path.iterdir()] == ["run.pdf"]


def test_output_replaces_atomically(tmp_path: Path) -> None:
    out = tmp_path / "run.pdf"
    out.write_bytes(b"previous run")
    assert render_notices(NOTICES[:1], out) == 1
    assert out.read_bytes().startswith(b"%PDF-")
    assert out.stat().st_mode & 0o077 == 0  # 特定個人情報: owner-only
    assert [p.name for p in tmp_path.iterdir()] == ["run.pdf"]


def test_invalid_data_is_refused_without_echoing_identifiers() -> None:
    with pytest.raises(ValueError, match="check digit") as excinfo:
        dataclasses.replace(NOTICES[0], my_number="123456789012")
    assert "123456789012" not in str(excinfo.value)
    with pytest.raises(ValueError, match="application_id"):
        dataclasses.replace(NOTICES[0], application_id="123")
    with pytest.raises(ValueError, match="no notices"):
        render_notices([], Path("/nonexistent/never.pdf"))


def test_font_coverage_and_ivs() -> None:
    register_fonts()
    assert missing_glyphs("髙﨑𠮷邉齋" + KATSURA_IVS + "タカハシ") == []
    assert missing_glyphs("a\ue000b") == ["\ue000"]
    assert missing_glyphs("葛\U000e01ef") == ["葛\U000e01ef"]  # a selector the font does not know
    encoded = encode_text("渡" + KATSURA_IVS)
    assert len(encoded) == 2 and encoded[0] == "渡" and ord(encoded[1]) >= 0xF0000
    assert encode_text("髙橋") == "髙橋"


def test_font_path_errors_name_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(FONT_ENV, str(tmp_path / "missing.ttf"))
    with pytest.raises(RuntimeError, match=FONT_ENV):
        cjk_font_path()
    monkeypatch.delenv(FONT_ENV)
    monkeypatch.setattr("kojinbango.documents.fonts._MINCHO_PATHS", (tmp_path / "none.ttf",))
    with pytest.raises(RuntimeError, match="fonts-ipamj-mincho"):
        cjk_font_path()


def test_issuer_per_page_when_the_run_does_not_share_it(tmp_path: Path) -> None:
    out = tmp_path / "mixed.pdf"
    other = dataclasses.replace(
        NOTICES[1], municipality_name="東京都港区", mayor_title="港区長", issued_on=datetime.date(2026, 12, 1)
    )
    assert render_notices([NOTICES[0], other], out) == 2
    reader = pypdf.PdfReader(out)
    first, second = (page.extract_text() for page in reader.pages)
    assert "千代田区長" in first and "令和8年11月26日" in first and "港区長" not in first
    assert "港区長" in second and "令和8年12月1日" in second and "千代田区長" not in second
    for page in reader.pages:
        ops = page.get_contents().get_data().decode("latin-1")
        assert len(re.findall(r"\bBT\b", ops)) <= 2


def _run(first: int, count: int) -> list[NoticeData]:
    return [
        _notice(first + i, "髙橋　一郎", "タカハシ　イチロウ", f"東京都千代田区千代田{i + 1}番1号")
        for i in range(count)
    ]


def test_render_notice_runs_in_workers(tmp_path: Path) -> None:
    runs = [(_run(10 * r, r + 1), tmp_path / f"run-{r}.pdf") for r in range(4)]
    assert render_notice_runs(runs, workers=2) == [1, 2, 3, 4]
    for notices, path in runs:
        reader = pypdf.PdfReader(path)
        assert len(reader.pages) == len(notices)
        assert notices[-1].name in reader.pages[-1].extract_text()
        drawn, _ = _drawn_qr(reader.pages[-1])
        assert np.array_equal(drawn, qr_matrix(notices[-1].qr_payload))
        assert path.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"run-{r}.pdf" for r in range(4)]
    assert render_notice_runs(runs[:2], workers=1) == [1, 2]  # in-process
    assert render_notice_runs([]) == []


def test_render_notice_runs_error_propagates(tmp_path: Path) -> None:
    bad = _notice(99, "外字\ue000太郎", "ガイジ　タロウ", "東京都千代田区千代田１番１号")
    failing = tmp_path / "run-1.pdf"
    failing.write_bytes(b"previous run")
    runs = [
        (_run(0, 2), tmp_path / "run-0.pdf"),
        ([*_run(20, 2), bad], failing),
        (_run(40, 2), tmp_path / "run-2.pdf"),
    ]
    with pytest.raises(ValueError, match="U\\+E000") as excinfo:
        render_notice_runs(runs, workers=2)
    assert bad.my_number not in str(excinfo.value)
    assert failing.read_bytes() == b"previous run"  # never a partial file under the final name
    names = {p.name for p in tmp_path.iterdir()}
    assert not [name for name in names if name.endswith(".part")]
    for name in names - {"run-1.pdf"}:
        assert len(pypdf.PdfReader(tmp_path / name).pages) == 2  # runs that finished are complete
    with pytest.raises(ValueError, match="workers"):
        render_notice_runs(runs, workers=0)
    with pytest.raises(ValueError, match="no notices"):
        render_notice_runs([([], tmp_path / "empty.pdf"), *runs], workers=2)

"""個人番号通知書 (individual number notice) with its 個人番号カード交付申請書, as print-ready PDF.

One A4 portrait page per person.  The upper part is the notice: the addressee block for a window
envelope (長3, A4 三つ折り), the person's 4情報 and 個人番号 in a ruled table, the issue date and the
mayor, and the statement that the notice does not prove the number (it is not a 通知カード).  The
lower part, below a perforation, is the card application form pre-printed with the person's
氏名・住所・生年月日・性別, the 申請書ID and its QR code, a photo box and a signature box.

Speed (flow 1-1 prints one page per resident, in runs of 1,000): a print run draws the static
parts of the page (frames, labels, instructions, and the issue date and issuer when the whole run
shares them) once per document as a Form XObject.  Per page there is one text object with the
person's values, assembled from reportlab's own subsetting (``splitString``) without its per-call
string-width and number formatting, and the QR code as a single filled path of merged rectangles
(vector, no raster image).  The QR codes of a run are encoded together with numpy (``qr``: batch
Reed–Solomon, placement by index map, mask penalties of all symbols at once) and their paths
formatted with numpy.  Fonts are loaded and registered once per process; subsetting the 46 MB
IPAmj明朝 costs about a millisecond per 256-glyph subset (see ``fonts``).  Streams are
Flate-compressed without reportlab's ASCII85 layer.  :func:`render_notice_runs` renders several
runs in worker processes (forked, so the fonts loaded in the parent are shared).

The output file is written next to ``out_path`` under a temporary name, fsync'ed and renamed into
place only when complete; it is created with mode 0600 (it holds 特定個人情報).
"""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import multiprocessing.context
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.rl_accel import escapePDF
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from kojinbango.documents import qr
from kojinbango.documents.fonts import encode_text, missing_glyphs, register_fonts, register_label_font
from kojinbango.domain.identifiers import is_valid_my_number
from kojinbango.domain.wareki import to_wareki

PAGE_W, PAGE_H = A4
STATIC_FORM = "KojinbangoNoticeStatic"

_BLACK = (0, 0, 0)
_GREY = (0.35, 0.35, 0.35)
_RED = (0.78, 0.08, 0.1)
_LABEL_FILL = (0.92, 0.92, 0.92)


@dataclass(frozen=True)
class NoticeData:
    """One person's 個人番号通知書 (and the enclosed 交付申請書)."""

    notice_id: str  # internal id, printed small as a control number
    municipality_name: str  # e.g. "東京都千代田区"
    mayor_title: str  # e.g. "千代田区長"
    issued_on: datetime.date  # printed in 和暦 ("令和8年11月26日")
    postal_code: str  # 7 digits, printed 〒100-0001
    address: str  # as on the register, may contain 方書 appended
    name: str  # 氏名, e.g. "髙橋　一郎"
    kana: str  # フリガナ
    birth_date: datetime.date  # 和暦
    sex: str  # "男" / "女"
    my_number: str  # 12 digits, printed in 4-4-4 groups
    application_id: str  # 申請書ID, 23 digits
    qr_payload: str  # what the QR encodes (application URL with the 申請書ID)
    reprint: bool = False  # a reprint is clearly marked 「再発行」 on the page

    def __post_init__(self) -> None:
        # Messages name the field, never the value: identifiers stay out of logs in clear.
        for field, value, length in (
            ("my_number", self.my_number, 12),
            ("application_id", self.application_id, 23),
            ("postal_code", self.postal_code, 7),
        ):
            if len(value) != length or not value.isascii() or not value.isdigit():
                raise ValueError(f"notice {self.notice_id!r}: {field} must be {length} ASCII digits")
        if not is_valid_my_number(self.my_number):
            raise ValueError(f"notice {self.notice_id!r}: my_number fails its check digit")
        for field in ("name", "address", "municipality_name", "mayor_title", "sex", "qr_payload"):
            if not getattr(self, field).strip():
                raise ValueError(f"notice {self.notice_id!r}: {field} is empty")


def format_my_number(number: str) -> str:
    """個人番号 in 4-4-4 groups: ``"1234 5678 9012"``."""
    return f"{number[0:4]} {number[4:8]} {number[8:12]}"


def format_application_id(application_id: str) -> str:
    """申請書ID (23 digits) in groups of four: ``"1234 5678 9012 3456 7890 123"``."""
    return " ".join(application_id[i : i + 4] for i in range(0, len(application_id), 4))


def format_postal_code(postal_code: str) -> str:
    return f"〒{postal_code[:3]}-{postal_code[3:]}"


def render_notices(notices: Sequence[NoticeData], out_path: Path) -> int:
    """Render one A4 page per notice into ``out_path`` atomically; return the number of pages."""
    if not notices:
        raise ValueError("no notices to render")
    out_path = Path(out_path)
    directory = out_path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            pages = _render(notices, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)
    return pages


def render_notice_runs(
    runs: Sequence[tuple[Sequence[NoticeData], Path]], workers: int | None = None
) -> list[int]:
    """Render several print runs, each with :func:`render_notices` (atomic), in worker processes.

    Returns the pages of each run, in order.  ``workers`` defaults to ``os.cpu_count()``; with one
    worker (or one run) everything happens in this process.  Workers are forked where the
    platform allows it, so the fonts registered here once are shared; otherwise each worker
    registers them once.  The first failing run's exception is raised here after the runs already
    being rendered have finished and the runs not yet started have been cancelled: a failed run
    leaves no file (a previous file under its name is kept), a finished one is complete.
    """
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1")
    jobs = [(list(notices), Path(path)) for notices, path in runs]
    for notices, _path in jobs:
        if not notices:
            raise ValueError("no notices to render")
    count = min(workers or os.cpu_count() or 1, len(jobs))
    if count <= 1:
        return [render_notices(notices, path) for notices, path in jobs]
    register_fonts()
    register_label_font()
    pool = ProcessPoolExecutor(max_workers=count, mp_context=_worker_context(), initializer=_init_worker)
    try:
        futures = [pool.submit(render_notices, notices, path) for notices, path in jobs]
        pages = [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return pages


def _worker_context() -> multiprocessing.context.BaseContext | None:
    """'fork' on Linux (workers inherit the registered fonts); the platform default elsewhere."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


def _init_worker() -> None:
    register_fonts()  # no-op in a forked worker: already registered in the parent
    register_label_font()


def _fsync_directory(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------------------------
# Layout.  Distances are in mm from the page's left edge (x) and top edge (t).


def _y(t: float) -> float:
    return PAGE_H - t * mm


LEFT = 20.0
CONTROL_X = 150.0
ID_T = 194.5
RIGHT = 190.0
LABEL_W = 28.0
PERFORATION_T = 181.0

# Upper part: the notice table.
N_TABLE_T = 77.0
N_ROWS = (("フリガナ", 7.0), ("氏　　名", 12.0), ("生年月日", 9.0), ("住　　所", 15.0), ("個人番号", 15.0))
N_SEX_X = 125.0  # the 性別 cell sits to the right of 生年月日
N_SEX_LABEL_W = 18.0

# Lower part: the application form.
F_TABLE_T = 205.0
F_TABLE_R = 143.0
F_ROWS = (("フリガナ", 6.0), ("氏　　名", 11.0), ("住　　所", 14.0), ("生年月日", 8.0))
F_SEX_X = 102.0
PHOTO_X, PHOTO_T, PHOTO_W, PHOTO_H = 152.0, 197.0, 35.0, 45.0
QR_X, QR_T, QR_SIZE = 154.5, 245.0, 30.0  # the square includes the 4-module quiet zone
SIGN_T, SIGN_H = 258.0, 19.0

NOTES = (
    "この通知書は、あなたの個人番号（マイナンバー）をお知らせするものです。個人番号を証明する書類や"
    "本人確認書類としては使用できません（通知カードではありません）。",
    "個人番号の証明が必要なときは、個人番号カード又は個人番号が記載された住民票の写し等をご利用ください。",
    "個人番号カードの交付を申請するときは、下の交付申請書に顔写真を貼り、署名して同封の封筒で郵送するか、"
    "QRコードを読み取ってスマートフォン等から申請してください。手数料はかかりません。",
    "個人番号は、社会保障・税・災害対策の手続で法令に定められた場合を除き、他人に提供しないでください。"
    "記載内容の誤りや紛失は、住所地の市区町村の窓口にお問い合わせください。",
)

FORM_NOTES = (
    "太枠内の記載内容を確認し、顔写真を貼り、申請者氏名欄に署名してください。",
    "記載内容に変更がある場合は、この申請書は使用できません。市区町村の窓口で新しい申請書の交付を受けてください。",
)

PHOTO_NOTES = (
    "写真貼付欄",
    "縦4.5cm×横3.5cm",
    "・最近6か月以内に撮影",
    "・正面、無帽、無背景",
    "・裏面に氏名を記入",
)


class _Fonts:
    def __init__(self) -> None:
        self.text = register_fonts()  # IPAmj明朝: everything from the register
        self.label = register_label_font()  # IPAexゴシック (or the same face)
        font = pdfmetrics.getFont(self.text)
        self.widths: dict[int, float] = font.face.charWidths
        self.default_width: float = font.face.defaultWidth

        self._em: dict[str, float] = {}  # text -> width in 1/1000 em, for this document

    def width(self, text: str, size: float) -> float:
        em = self._em.get(text)
        if em is None:
            widths, default = self.widths, self.default_width
            em = self._em[text] = sum(widths.get(ord(ch), default) for ch in text)
        return em * size / 1000.0

    def trimmed_width(self, text: str, size: float) -> float:
        return self.width(text.rstrip(_SPACES), size)

    def label_width(self, text: str, size: float) -> float:
        return float(pdfmetrics.stringWidth(text, self.label, size))


def _render(notices: Sequence[NoticeData], fh: object) -> int:
    # Binary (Flate-only) streams: ASCII85 costs CPU and a quarter more bytes for nothing here.
    previous_a85 = rl_config.useA85
    rl_config.useA85 = 0
    try:
        return _render_pages(notices, fh)
    finally:
        rl_config.useA85 = previous_a85


def _render_pages(notices: Sequence[NoticeData], fh: object) -> int:
    fonts = _Fonts()
    first = notices[0]
    canvas = Canvas(
        fh,
        pagesize=A4,
        pageCompression=1,
        initialFontName=fonts.text,
        initialFontSize=10,
    )
    canvas.setTitle("個人番号通知書")
    canvas.setAuthor(first.municipality_name)
    canvas.setSubject("個人番号通知書・個人番号カード交付申請書")
    canvas.setCreator("kojinbango")
    # The issue date and the issuer are printed once, in the static form, when the run shares them.
    issuer_in_form = all(
        n.issued_on == first.issued_on
        and n.municipality_name == first.municipality_name
        and n.mayor_title == first.mayor_title
        for n in notices
    )
    if issuer_in_form:
        _check_glyphs(fonts, first, _ISSUER_FIELDS)
    _draw_static_form(canvas, fonts, _issuer_lines(fonts, first) if issuer_in_form else [])
    encoder = _TextEncoder(canvas)
    pages = 0
    for start in range(0, len(notices), _QR_CHUNK):
        chunk = notices[start : start + _QR_CHUNK]
        for notice, qr_block in zip(chunk, _qr_blocks(chunk), strict=True):
            _draw_page(canvas, fonts, encoder, notice, qr_block, issuer_in_form)
            canvas.showPage()
            pages += 1
    canvas.save()
    return pages


def _text(canvas: Canvas, font: str, size: float, x: float, t: float, text: str, anchor: str = "l") -> None:
    """Draw static ``text`` at (x mm, t mm from top), anchored l/c/r (once per document)."""
    missing = missing_glyphs(text, font)
    if missing:
        raise RuntimeError(f"font {font} cannot print {missing!r} of the form's fixed text")
    canvas.setFont(font, size)
    if anchor == "c":
        canvas.drawCentredString(x * mm, _y(t), text)
    elif anchor == "r":
        canvas.drawRightString(x * mm, _y(t), text)
    else:
        canvas.drawString(x * mm, _y(t), text)


def _wrap_label(fonts: _Fonts, text: str, size: float, width_mm: float) -> list[str]:
    lines: list[str] = []
    line = ""
    for ch in text:
        if line and fonts.label_width(line + ch, size) > width_mm * mm and ch not in "、。）」":
            lines.append(line)
            line = ""
        line += ch
    if line:
        lines.append(line)
    return lines


def _grid(canvas: Canvas, top: float, rows: Sequence[tuple[str, float]], right: float) -> list[float]:
    """Label column and row rules of a ruled table; returns each row's top."""
    tops = []
    t = top
    for _label, height in rows:
        tops.append(t)
        t += height
    bottom = t
    canvas.setFillColorRGB(*_LABEL_FILL)
    canvas.rect(LEFT * mm, _y(bottom), LABEL_W * mm, (bottom - top) * mm, stroke=0, fill=1)
    canvas.setFillColorRGB(*_BLACK)
    canvas.setLineWidth(0.4)
    for row_top in tops[1:]:
        canvas.line(LEFT * mm, _y(row_top), right * mm, _y(row_top))
    canvas.line((LEFT + LABEL_W) * mm, _y(top), (LEFT + LABEL_W) * mm, _y(bottom))
    canvas.setLineWidth(1.2)
    canvas.rect(LEFT * mm, _y(bottom), (right - LEFT) * mm, (bottom - top) * mm, stroke=1, fill=0)
    return tops


def _draw_static_form(
    canvas: Canvas, fonts: _Fonts, shared: Sequence[tuple[str, float, float, float, str]]
) -> None:
    """Everything that is the same on every page, drawn once per document as a Form XObject.

    ``shared``: values that happen to be the same on every page of the run (font, size, x pt,
    y pt, text already through ``encode_text``).
    """
    canvas.beginForm(STATIC_FORM)
    label = fonts.label
    canvas.setStrokeColorRGB(*_BLACK)
    canvas.setFillColorRGB(*_BLACK)
    for font, size, x, y, text in shared:
        canvas.setFont(font, size)
        canvas.drawString(x, y, text)

    # Fold marks for A4 三つ折り into a 長3 window envelope.
    canvas.setLineWidth(0.3)
    for t in (99.0, 198.0):
        canvas.line(4 * mm, _y(t), 8 * mm, _y(t))
        canvas.line(PAGE_W - 8 * mm, _y(t), PAGE_W - 4 * mm, _y(t))

    # Header.
    _text(canvas, label, 6.5, CONTROL_X, 12, "管理番号")
    _text(canvas, label, 20, 105, 64, "個人番号通知書", "c")
    canvas.setLineWidth(0.6)
    canvas.line(75 * mm, _y(66.5), 135 * mm, _y(66.5))
    _text(canvas, fonts.text, 9.5, LEFT, 73.5, "あなたの個人番号（マイナンバー）を下記のとおり通知します。")

    # Notice table.
    tops = _grid(canvas, N_TABLE_T, N_ROWS, RIGHT)
    for (row_label, height), top in zip(N_ROWS, tops, strict=True):
        size = 7.5 if row_label == "フリガナ" else 9.5
        _text(canvas, label, size, LEFT + LABEL_W / 2, top + height / 2 + size * 0.35 / mm, row_label, "c")
    birth_top, birth_h = tops[2], N_ROWS[2][1]
    canvas.setLineWidth(0.4)
    canvas.setFillColorRGB(*_LABEL_FILL)
    canvas.rect(N_SEX_X * mm, _y(birth_top + birth_h), N_SEX_LABEL_W * mm, birth_h * mm, stroke=1, fill=1)
    canvas.setFillColorRGB(*_BLACK)
    _text(canvas, label, 9.5, N_SEX_X + N_SEX_LABEL_W / 2, birth_top + birth_h / 2 + 1.2, "性　別", "c")
    canvas.setLineWidth(0.3)
    canvas.setDash(1, 2)
    canvas.line((LEFT + LABEL_W) * mm, _y(tops[1]), RIGHT * mm, _y(tops[1]))  # フリガナ / 氏名
    canvas.setDash()

    # Notes.
    t = N_TABLE_T + sum(h for _, h in N_ROWS) + 6.5
    _text(canvas, label, 9, LEFT, t, "ご注意")
    t += 4.6
    for note in NOTES:
        lines = _wrap_label(fonts, note, 7.6, RIGHT - LEFT - 5)
        _text(canvas, label, 7.6, LEFT + 1, t, "・")
        for line in lines:
            _text(canvas, label, 7.6, LEFT + 4, t, line)
            t += 3.5
        t += 0.6

    # Perforation.
    canvas.setLineWidth(0.5)
    canvas.setDash(3, 2)
    canvas.line(0, _y(PERFORATION_T), PAGE_W, _y(PERFORATION_T))
    canvas.setDash()
    canvas.setFillColorRGB(1, 1, 1)
    canvas.rect(92 * mm, _y(PERFORATION_T) - 1.7 * mm, 26 * mm, 3.4 * mm, stroke=0, fill=1)
    canvas.setFillColorRGB(*_GREY)
    _text(canvas, label, 7, 105, PERFORATION_T + 1.0, "きりとり線", "c")
    canvas.setFillColorRGB(*_BLACK)

    # Application form header.
    _text(canvas, label, 14, LEFT, 190.5, "個人番号カード交付申請書")
    _text(canvas, label, 7.5, LEFT + 73, 190.5, "（兼 電子証明書発行申請書）")
    canvas.setLineWidth(0.8)
    canvas.rect(LEFT * mm, _y(ID_T + 7), 18 * mm, 7 * mm, stroke=1, fill=0)
    _text(canvas, label, 8.5, LEFT + 9, ID_T + 4.7, "申請書ID", "c")
    canvas.rect((LEFT + 18) * mm, _y(ID_T + 7), (F_TABLE_R - LEFT - 18) * mm, 7 * mm, stroke=1, fill=0)

    # Application form table.
    tops = _grid(canvas, F_TABLE_T, F_ROWS, F_TABLE_R)
    for (row_label, height), top in zip(F_ROWS, tops, strict=True):
        size = 7 if row_label == "フリガナ" else 9
        _text(canvas, label, size, LEFT + LABEL_W / 2, top + height / 2 + size * 0.35 / mm, row_label, "c")
    birth_top, birth_h = tops[3], F_ROWS[3][1]
    canvas.setLineWidth(0.4)
    canvas.setFillColorRGB(*_LABEL_FILL)
    canvas.rect(F_SEX_X * mm, _y(birth_top + birth_h), 16 * mm, birth_h * mm, stroke=1, fill=1)
    canvas.setFillColorRGB(*_BLACK)
    _text(canvas, label, 9, F_SEX_X + 8, birth_top + birth_h / 2 + 1.1, "性　別", "c")
    canvas.setLineWidth(0.3)
    canvas.setDash(1, 2)
    canvas.line((LEFT + LABEL_W) * mm, _y(tops[1]), F_TABLE_R * mm, _y(tops[1]))
    canvas.setDash()

    # Certificate choices.
    t = F_TABLE_T + sum(h for _, h in F_ROWS) + 4.5
    for choice in ("署名用電子証明書の発行を希望しません", "利用者証明用電子証明書の発行を希望しません"):
        canvas.setLineWidth(0.5)
        canvas.rect((LEFT + 1) * mm, _y(t + 0.6), 3 * mm, 3 * mm, stroke=1, fill=0)
        _text(canvas, label, 7.5, LEFT + 5.5, t, choice)
        t += 4.6

    # Signature box.
    canvas.setLineWidth(1.2)
    canvas.rect(LEFT * mm, _y(SIGN_T + SIGN_H), (F_TABLE_R - LEFT) * mm, SIGN_H * mm, stroke=1, fill=0)
    _text(canvas, label, 7.5, LEFT + 2, SIGN_T + 3.8, "申請者氏名（自署）")
    _text(canvas, label, 7.5, F_TABLE_R - 2, SIGN_T + 3.8, "申請日　令和　　年　　月　　日", "r")

    # Form notes.
    t = SIGN_T + SIGN_H + 4.2
    for note in FORM_NOTES:
        for i, line in enumerate(_wrap_label(fonts, note, 6.8, RIGHT - LEFT - 5)):
            _text(canvas, label, 6.8, LEFT + 1, t, ("※" if i == 0 else "　") + line)
            t += 3.1

    # Photo box.
    canvas.setLineWidth(0.8)
    canvas.rect(PHOTO_X * mm, _y(PHOTO_T + PHOTO_H), PHOTO_W * mm, PHOTO_H * mm, stroke=1, fill=0)
    canvas.setFillColorRGB(*_GREY)
    t = PHOTO_T + 12
    for i, line in enumerate(PHOTO_NOTES):
        _text(canvas, label, 8.5 if i == 0 else 6.5, PHOTO_X + PHOTO_W / 2, t, line, "c")
        t += 5.5 if i == 0 else 3.6
    canvas.setFillColorRGB(*_BLACK)
    _text(canvas, label, 6, QR_X + QR_SIZE / 2, QR_T + QR_SIZE + 1.8, "スマートフォン等からの申請用", "c")

    canvas.endForm()


def _fit(fonts: _Fonts, text: str, size: float, width_mm: float, min_size: float) -> float:
    width = fonts.width(text, size)
    limit = width_mm * mm
    if width <= limit:
        return size
    return max(min_size, size * limit / width)


_WORDS = re.compile(r"[^ \u3000]+[ \u3000]*")
_UNITS = re.compile(r"[0-9０-９]+|[A-Za-zＡ-Ｚａ-ｚ]+|.", re.S)
_SPACES = " \u3000"


def _lines(fonts: _Fonts, text: str, size: float, width_mm: float, max_lines: int) -> tuple[float, list[str]]:
    """Break ``text`` into at most ``max_lines`` lines of ``width_mm``, shrinking the size if needed.

    Breaks preferably at spaces (a 方書 is usually set off by one), never inside a run of digits
    or Latin letters unless the run alone is wider than a line.
    """
    limit = width_mm * mm
    while True:
        words = _WORDS.findall(text)
        lines: list[str] | None = None
        if len(words) > 1 and all(fonts.trimmed_width(word, size) <= limit for word in words):
            lines = _greedy(words, fonts, size, limit)
            if len(lines) > max_lines:
                lines = None
        if lines is None:
            units: list[str] = []
            for unit in _UNITS.findall(text):
                units.extend(unit if fonts.width(unit, size) > limit else (unit,))
            lines = _greedy(units, fonts, size, limit)
        if len(lines) <= max_lines:
            return size, lines
        if size <= 6.0:
            # At the minimum size never drop text: the last line carries the rest (it may run long).
            return size, [*lines[: max_lines - 1], "".join(lines[max_lines - 1 :])]
        size -= 0.5


def _greedy(units: Sequence[str], fonts: _Fonts, size: float, limit: float) -> list[str]:
    lines: list[str] = []
    line = ""
    used = 0.0  # width of ``line`` including trailing spaces
    for unit in units:
        full = fonts.width(unit, size)
        trimmed = fonts.trimmed_width(unit, size) if unit[-1] in _SPACES else full
        if line and used + trimmed > limit:
            lines.append(line.rstrip(_SPACES))
            line, used = "", 0.0
            if unit in _SPACES:
                continue
        line += unit
        used += full
    if line.rstrip(_SPACES):
        lines.append(line.rstrip(_SPACES))
    return lines


def _escaped(code: int) -> str:
    escaped = escapePDF(bytes([code]))
    return escaped.decode("latin-1") if isinstance(escaped, bytes) else str(escaped)


_ESCAPED = tuple(_escaped(code) for code in range(256))  # reportlab's escaping of each subset code


class _TextEncoder:
    """Text for hand-assembled text objects, encoded by reportlab's own subsetting.

    ``splitString`` is reportlab's subsetting itself: it gives each character its code in one of
    the document's 256-glyph subsets (once; a code never changes afterwards), and
    ``getSubsetInternalName`` registers the subset as a font resource of the document — the usage
    ``reportlab.pdfbase.ttfonts`` documents for dynamic fonts.  Strings are escaped with
    reportlab's ``escapePDF`` table.  The result per (font, text) is kept for the document, as
    many values repeat from page to page.
    """

    def __init__(self, canvas: Canvas) -> None:
        self.doc = canvas._doc
        self.cache: dict[tuple[str, str], list[tuple[str, str]]] = {}

    def shows(self, font_name: str, text: str) -> list[tuple[str, str]]:
        """(subset font resource name, ``(…) Tj``) for each run of ``text`` within one subset."""
        key = (font_name, text)
        shown = self.cache.get(key)
        if shown is None:
            font = pdfmetrics.getFont(font_name)
            doc = self.doc
            shown = [
                (
                    font.getSubsetInternalName(subset, doc),
                    "(" + "".join([_ESCAPED[c] for c in chunk]) + ") Tj",
                )
                for subset, chunk in font.splitString(text, doc)
            ]
            self.cache[key] = shown
        return shown


_SIZE_TEXT: dict[float, str] = {}  # font size -> its text in a Tf operator


class _PageText:
    """One text object per page with the person's values: positioned runs, a font change only
    where the subset or the size changes."""

    def __init__(self, encoder: _TextEncoder) -> None:
        self.encoder = encoder
        self.ops = ["BT"]
        self.font = ""
        self.size = ""

    def put(self, font: str, size: float, x: float, y: float, text: str) -> None:
        """``text`` (already through ``encode_text``) at (x, y) in points."""
        ops = self.ops
        ops.append(f"1 0 0 1 {x:.3f} {y:.3f} Tm")
        size_text = _SIZE_TEXT.get(size)
        if size_text is None:
            size_text = f"{size:.3f}".rstrip("0").rstrip(".")
            if len(_SIZE_TEXT) < 4096:
                _SIZE_TEXT[size] = size_text
        for name, shown in self.encoder.shows(font, text):
            if name != self.font or size_text != self.size:
                ops.append(f"{name} {size_text} Tf")
                self.font, self.size = name, size_text
            ops.append(shown)

    def char_space(self, space: float) -> None:
        self.ops.append(f"{space:g} Tc")

    def code(self) -> str:
        self.ops.append("ET")
        return "\n".join(self.ops)


def _check_glyphs(fonts: _Fonts, notice: NoticeData, fields: Sequence[str]) -> None:
    for field in fields:
        missing = missing_glyphs(getattr(notice, field), fonts.text)
        if missing:
            codes = ", ".join(" ".join(f"U+{ord(c):04X}" for c in seq) for seq in missing)
            raise ValueError(
                f"notice {notice.notice_id!r}: {field} has characters the font cannot print: {codes}"
            )


_PERSON_FIELDS = ("name", "kana", "address", "sex", "notice_id")
_ISSUER_FIELDS = ("municipality_name", "mayor_title")


def _issuer_lines(fonts: _Fonts, notice: NoticeData) -> list[tuple[str, float, float, float, str]]:
    """Issue date, issuer and 「公印省略」 at the top right: (font, size, x pt, y pt, text)."""
    issued = to_wareki(notice.issued_on)
    municipality = encode_text(notice.municipality_name)
    mayor = encode_text(notice.mayor_title)
    width = fonts.width
    text_font = fonts.text
    seal = "（公印省略）"
    return [
        (text_font, 10, RIGHT * mm - width(issued, 10), _y(24), issued),
        (text_font, 10, RIGHT * mm - width(municipality, 10), _y(31), municipality),
        (text_font, 12, RIGHT * mm - width(mayor, 12), _y(38), mayor),
        (fonts.label, 6.5, RIGHT * mm - fonts.label_width(seal, 6.5), _y(42.5), seal),
    ]


def _tops(top: float, rows: Sequence[tuple[str, float]]) -> list[float]:
    tops = [top]
    for _label, height in rows[:-1]:
        tops.append(tops[-1] + height)
    return tops


_N_TOPS = _tops(N_TABLE_T, N_ROWS)
_F_TOPS = _tops(F_TABLE_T, F_ROWS)
_VALUE_X = (LEFT + LABEL_W + 3) * mm
_N_VALUE_W = RIGHT - LEFT - LABEL_W - 6
_F_VALUE_W = F_TABLE_R - LEFT - LABEL_W - 6


def _draw_page(
    canvas: Canvas,
    fonts: _Fonts,
    encoder: _TextEncoder,
    notice: NoticeData,
    qr_block: str,
    issuer_in_form: bool,
) -> None:
    _check_glyphs(fonts, notice, _PERSON_FIELDS if issuer_in_form else _PERSON_FIELDS + _ISSUER_FIELDS)
    name = encode_text(notice.name)
    kana = encode_text(notice.kana)
    address = encode_text(notice.address)
    sex = encode_text(notice.sex)
    born = to_wareki(notice.birth_date)
    text_font = fonts.text

    canvas.doForm(STATIC_FORM)
    page = _PageText(encoder)
    put = page.put

    # Header: control number; issue date and issuer unless the whole run shares them (static form).
    put(text_font, 6.5, (CONTROL_X + 11) * mm, _y(12), notice.notice_id)
    if not issuer_in_form:
        for issuer_line in _issuer_lines(fonts, notice):
            put(*issuer_line)

    # Addressee block (window of a 長3 envelope: about 90 × 40 mm at 20 mm / 15 mm).
    put(text_font, 10.5, 24 * mm, _y(22), format_postal_code(notice.postal_code))
    size, lines = _lines(fonts, address, 10.5, 84, 3)
    t = 28.0
    for line in lines:
        put(text_font, size, 24 * mm, _y(t), line)
        t += size * 1.35 / mm
    addressee = name + "　様"
    size = _fit(fonts, addressee, 14, 84, 9)
    put(text_font, size, 24 * mm, _y(max(t + 5, 48)), addressee)

    # Notice table.
    value_x, tops = _VALUE_X, _N_TOPS
    put(text_font, _fit(fonts, kana, 9, _N_VALUE_W, 6), value_x, _y(tops[0] + 5), kana)
    put(text_font, _fit(fonts, name, 16, _N_VALUE_W, 9), value_x, _y(tops[1] + 8.2), name)
    put(text_font, 11, value_x, _y(tops[2] + 6), born)
    put(text_font, 11, (N_SEX_X + N_SEX_LABEL_W + 4) * mm, _y(tops[2] + 6), sex)
    size, lines = _lines(fonts, address, 10.5, _N_VALUE_W, 2)
    t = tops[3] + (6.0 if len(lines) > 1 else 9.0)
    for line in lines:
        put(text_font, size, value_x, _y(t), line)
        t += size * 1.4 / mm
    page.char_space(2.5)
    put(text_font, 20, value_x, _y(tops[4] + 10.4), format_my_number(notice.my_number))
    page.char_space(0)

    # Application form.
    tops = _F_TOPS
    put(text_font, 12, (LEFT + 22) * mm, _y(ID_T + 5.1), format_application_id(notice.application_id))
    put(text_font, _fit(fonts, kana, 8, _F_VALUE_W, 5.5), value_x, _y(tops[0] + 4.3), kana)
    put(text_font, _fit(fonts, name, 14, _F_VALUE_W, 8), value_x, _y(tops[1] + 7.5), name)
    size, lines = _lines(fonts, address, 9.5, _F_VALUE_W, 2)
    t = tops[2] + (5.6 if len(lines) > 1 else 8.3)
    for line in lines:
        put(text_font, size, value_x, _y(t), line)
        t += size * 1.4 / mm
    put(text_font, 10, value_x, _y(tops[3] + 5.5), born)
    put(text_font, 10, (F_SEX_X + 20) * mm, _y(tops[3] + 5.5), sex)
    put(text_font, 6, LEFT * mm, _y(293.5), f"{notice.notice_id}　{encode_text(notice.municipality_name)}")
    canvas.addLiteral(page.code())

    if notice.reprint:
        _draw_reprint_stamp(canvas, fonts)
    canvas.addLiteral(qr_block)


def _draw_reprint_stamp(canvas: Canvas, fonts: _Fonts) -> None:
    """「再発行」: a red double-framed stamp beside the title."""
    canvas.saveState()
    canvas.setStrokeColorRGB(*_RED)
    canvas.setFillColorRGB(*_RED)
    x, t, w, h = 143.0, 54.5, 30.0, 13.0
    canvas.setLineWidth(1.6)
    canvas.rect(x * mm, _y(t + h), w * mm, h * mm, stroke=1, fill=0)
    canvas.setLineWidth(0.5)
    canvas.rect((x + 1.2) * mm, _y(t + h - 1.2), (w - 2.4) * mm, (h - 2.4) * mm, stroke=1, fill=0)
    canvas.setFont(fonts.label, 20)
    canvas.drawCentredString((x + w / 2) * mm, _y(t + h / 2 + 2.6), "再発行")
    canvas.restoreState()


# --------------------------------------------------------------------------------------------
# QR code (see ``qr``): a print run's symbols are encoded together, in chunks of pages.

_QR_ERROR = "M"
_QR_CHUNK = 64  # pages whose QR codes are encoded and cut into rectangles at once


def qr_matrix(payload: str, mask: int | None = None) -> np.ndarray:
    """The QR code of ``payload`` (error level M or higher) as an (n, n) bool array, True = dark.

    ``mask=None`` picks the data mask with the lowest penalty score; 0–7 forces one.
    """
    return qr.encode_one(payload, _QR_ERROR, mask)


def qr_rectangles(matrix: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Cover the dark modules with rectangles (x, y-from-top, w, h): row runs merged down columns."""
    return [(x, top, w, h) for x, top, w, h in qr.rectangles(matrix[None])[0].tolist()]


def qr_operators(payload: str, x: float, y: float, size: float) -> str:
    """PDF operators drawing the QR code (with quiet zone) into the square at (x, y) of ``size`` pt.

    One marked-content block, one transformation to module units, one path of rectangles, one fill.
    """
    return _qr_operators(np.stack([qr_matrix(payload)]), x, y, size)[0]


def _qr_operators(symbols: np.ndarray, x: float, y: float, size: float) -> list[str]:
    """:func:`qr_operators` for each symbol of a (N, n, n) array (the paths formatted with numpy)."""
    count, n, _ = symbols.shape
    module = size / (n + 8)
    if module < 0.25 * mm:
        raise ValueError("QR payload too long for the printed QR area")
    ox, oy = x + 4 * module, y + 4 * module
    head = f"/KojinbangoQR BMC q 0 g {module:.4f} 0 0 {module:.4f} {ox:.3f} {oy:.3f} cm\n"
    rects, bounds = qr.rectangle_runs(symbols)
    rects[:, 1] = n - rects[:, 1] - rects[:, 3]  # PDF y grows upwards
    text, ends = _format_rects(rects)
    offsets = np.concatenate([[0], ends])[bounds].tolist()
    return [head + text[offsets[i] : offsets[i + 1]] + "f Q EMC" for i in range(count)]


def _number_tokens() -> tuple[np.ndarray, np.ndarray]:
    """For 0–255: the text ``"<digits> "`` NUL-padded to 4 bytes as a little-endian uint32, and its length."""
    tokens = [f"{v} ".encode("ascii").ljust(4, b"\0") for v in range(256)]
    return np.frombuffer(b"".join(tokens), dtype="<u4"), np.array([len(f"{v} ") for v in range(256)])


_NUMBER_TOKENS, _NUMBER_TOKEN_LENGTHS = _number_tokens()
_RE_TOKEN = np.frombuffer(b"re\n\0", dtype="<u4")[0]


def _format_rects(rects: np.ndarray) -> tuple[str, np.ndarray]:
    """``"x y w h re\\n"`` for each row of a (R, 4) array of integers 0–255, concatenated, and the
    end offset of each rectangle's line in the text."""
    values = rects.astype(np.intp)
    records = np.empty((len(rects), 5), dtype="<u4")
    records[:, :4] = _NUMBER_TOKENS[values]
    records[:, 4] = _RE_TOKEN
    text = records.view(np.uint8).ravel()
    ends = np.cumsum(_NUMBER_TOKEN_LENGTHS[values].sum(axis=1) + 3)
    return text[text != 0].tobytes().decode("ascii"), ends


def _qr_blocks(notices: Sequence[NoticeData]) -> list[str]:
    """The QR operators of each notice's page, encoded together."""
    symbols = qr.encode([notice.qr_payload for notice in notices], _QR_ERROR)
    x, y, size = QR_X * mm, _y(QR_T + QR_SIZE), QR_SIZE * mm
    blocks: list[str] = [""] * len(symbols)
    by_size: dict[int, list[int]] = {}
    for i, symbol in enumerate(symbols):
        by_size.setdefault(symbol.shape[0], []).append(i)
    for members in by_size.values():
        ops = _qr_operators(np.stack([symbols[i] for i in members]), x, y, size)
        for i, block in zip(members, ops, strict=True):
            blocks[i] = block
    return blocks

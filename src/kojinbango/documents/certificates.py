"""Municipal forms (帳票) as PDF with embedded fonts: 住民票の写し, 住民票記載事項証明書,
個人番号カード交付通知書 and notice letters (お知らせの通知文).

Register text is drawn with IPAmj明朝 through :mod:`kojinbango.documents.fonts` so that 髙, 﨑, 𠮷 and
IVS sequences print as held; fixed labels use IPAexゴシック when installed.  The functions return
PDF bytes (one document per call — nothing is shared between calls, so concurrent requests can
never exchange pages); signing is :mod:`kojinbango.documents.pades`.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from kojinbango.documents.fonts import encode_text, missing_glyphs, register_fonts, register_label_font
from kojinbango.domain.wareki import to_wareki

PAGE_W, PAGE_H = A4
LEFT, RIGHT = 18 * mm, PAGE_W - 18 * mm


@dataclass(frozen=True)
class PersonEntry:
    """One person as a certificate prints them (values exactly as the register holds them)."""

    name: str
    kana: str
    birth_date: dt.date
    sex: str
    relationship: str
    resident_since: dt.date
    address_since: dt.date
    previous_address: str = ""
    my_number: str | None = None  # printed only when requested and entitled
    status: str = ""  # e.g. 転出 (令和8年4月1日) for a 除票


@dataclass(frozen=True)
class ResidentCertificate:
    """住民票の写し (kind="copy") or 住民票記載事項証明書 (kind="items")."""

    kind: str
    municipality: str
    mayor: str
    address: str
    household_head: str
    people: Sequence[PersonEntry]
    issued_on: dt.date
    document_number: str
    purpose: str = ""
    items: Sequence[str] = ()  # 記載事項証明書: the items certified
    with_relationship: bool = True
    with_my_number: bool = False
    channel: str = "窓口"  # 窓口 | コンビニ交付


@dataclass(frozen=True)
class Letter:
    """A notice letter (通知文) or 交付通知書: addressee, title, paragraphs, an optional table."""

    municipality: str
    sender: str
    postal_code: str
    address: str
    addressee: str
    title: str
    paragraphs: Sequence[str]
    issued_on: dt.date
    document_number: str
    table: Sequence[tuple[str, str]] = field(default_factory=tuple)


ITEM_LABELS = {
    "name": "氏名",
    "kana": "フリガナ",
    "birth_date": "生年月日",
    "sex": "性別",
    "address": "住所",
    "relationship": "世帯主との続柄",
    "resident_since": "住民となった年月日",
    "address_since": "住所を定めた年月日",
}


class _Pen:
    def __init__(self, canvas: Canvas):
        self.c = canvas
        self.text = register_fonts()
        self.label = register_label_font()

    def put(
        self, x: float, y: float, text: str, size: float = 10.5, label: bool = False, anchor: str = "l"
    ) -> None:
        font = self.label if label and not missing_glyphs(text, self.label) else self.text
        missing = missing_glyphs(text, font)
        if missing:
            raise ValueError(f"the form font cannot print {len(missing)} character(s) of this text")
        self.c.setFont(font, size)
        encoded = encode_text(text)
        if anchor == "c":
            self.c.drawCentredString(x, y, encoded)
        elif anchor == "r":
            self.c.drawRightString(x, y, encoded)
        else:
            self.c.drawString(x, y, encoded)

    def width(self, text: str, size: float) -> float:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        return float(stringWidth(encode_text(text), self.text, size))

    def wrap(self, text: str, size: float, width: float) -> list[str]:
        lines, line = [], ""
        for ch in text:
            if self.width(line + ch, size) > width and line:
                lines.append(line)
                line = ""
            line += ch
        if line:
            lines.append(line)
        return lines or [""]


def _new(title: str, author: str) -> tuple[io.BytesIO, Canvas, _Pen]:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4, pageCompression=1, initialFontName=register_fonts(), initialFontSize=10)
    c.setTitle(title)
    c.setAuthor(author)
    c.setCreator("kojinbango")
    return buf, c, _Pen(c)


def _number_block(number: str) -> str:
    return f"{number[:4]} {number[4:8]} {number[8:]}"


def render_certificate(doc: ResidentCertificate) -> bytes:
    """住民票の写し / 住民票記載事項証明書 as PDF bytes (one page per up to four people)."""
    if doc.kind not in ("copy", "items"):
        raise ValueError("kind must be 'copy' (住民票の写し) or 'items' (住民票記載事項証明書)")
    if not doc.people:
        raise ValueError("a certificate needs at least one person")
    title = "住民票の写し" if doc.kind == "copy" else "住民票記載事項証明書"
    buf, c, pen = _new(title, doc.municipality)
    per_page = 4
    pages = [doc.people[i : i + per_page] for i in range(0, len(doc.people), per_page)]
    for page_no, people in enumerate(pages, 1):
        y = PAGE_H - 22 * mm
        pen.put(PAGE_W / 2, y, title, 18, label=True, anchor="c")
        pen.put(RIGHT, y + 8 * mm, f"交付番号 {doc.document_number}", 8, label=True, anchor="r")
        y -= 12 * mm
        pen.put(LEFT, y, "住所", 9, label=True)
        pen.put(LEFT + 22 * mm, y, doc.address, 11)
        y -= 7 * mm
        if doc.kind == "copy" or "relationship" in doc.items:
            pen.put(LEFT, y, "世帯主", 9, label=True)
            pen.put(LEFT + 22 * mm, y, doc.household_head, 11)
            y -= 6 * mm
        for person in people:
            y = _person_block(c, pen, doc, person, y)
        # footer on every page
        fy = 62 * mm
        if doc.kind == "copy":
            statement = "この写しは、住民票の原本と相違ないことを証明する。"
        else:
            labels = "・".join(ITEM_LABELS[i] for i in doc.items if i in ITEM_LABELS)
            statement = f"上記の事項（{labels}）は、住民票に記載されている事項と相違ないことを証明する。"
        for line in pen.wrap(statement, 10.5, RIGHT - LEFT):
            pen.put(LEFT, fy, line, 10.5, label=True)
            fy -= 6 * mm
        pen.put(LEFT, fy - 2 * mm, to_wareki(doc.issued_on), 10.5)
        pen.put(RIGHT, fy - 12 * mm, doc.mayor, 13, anchor="r")
        pen.put(RIGHT, fy - 19 * mm, "（電子署名により証明）", 8, label=True, anchor="r")
        notes = [
            f"交付方法: {doc.channel}" + (f"　使用目的: {doc.purpose}" if doc.purpose else ""),
            "個人番号の記載: " + ("あり（本人又は同一世帯員の請求による）" if doc.with_my_number else "省略"),
            "この文書には発行した市区町村の電子署名があります。改ざんされていないことをPDFの署名で確認できます。",
        ]
        ny = 24 * mm
        for note in notes:
            pen.put(LEFT, ny, note, 7.5, label=True)
            ny -= 4.2 * mm
        pen.put(RIGHT, 10 * mm, f"{page_no} / {len(pages)}", 8, label=True, anchor="r")
        c.showPage()
    c.save()
    return buf.getvalue()


def _row(c: Canvas, pen: _Pen, y: float, label: str, value: str, size: float = 10.5) -> float:
    h = 6.2 * mm
    c.setLineWidth(0.5)
    c.rect(LEFT, y - h, RIGHT - LEFT, h)
    c.line(LEFT + 36 * mm, y, LEFT + 36 * mm, y - h)
    pen.put(LEFT + 2 * mm, y - h + 1.8 * mm, label, 8.5, label=True)
    pen.put(LEFT + 38 * mm, y - h + 1.7 * mm, value, size)
    return y - h


def _person_block(c: Canvas, pen: _Pen, doc: ResidentCertificate, p: PersonEntry, y: float) -> float:
    y -= 3 * mm
    show = set(ITEM_LABELS) if doc.kind == "copy" else set(doc.items) | {"name"}
    if "kana" in show:
        y = _row(c, pen, y, "フリガナ", p.kana, 9)
    y = _row(c, pen, y, "氏名", p.name, 13)
    if "birth_date" in show or "sex" in show:
        parts = []
        if "birth_date" in show:
            parts.append(to_wareki(p.birth_date))
        if "sex" in show:
            parts.append(f"性別 {p.sex}")
        y = _row(c, pen, y, "生年月日・性別", "　　".join(parts))
    if "relationship" in show and doc.with_relationship:
        y = _row(c, pen, y, "世帯主との続柄", p.relationship)
    if "resident_since" in show:
        y = _row(c, pen, y, "住民となった年月日", to_wareki(p.resident_since))
    if "address_since" in show:
        y = _row(c, pen, y, "住所を定めた年月日", to_wareki(p.address_since))
    if doc.kind == "copy" and p.previous_address:
        y = _row(c, pen, y, "前住所", p.previous_address, 9)
    if doc.kind == "copy":
        value = _number_block(p.my_number) if (doc.with_my_number and p.my_number) else "（省略）"
        y = _row(c, pen, y, "個人番号", value)
    if p.status:
        y = _row(c, pen, y, "備考", p.status, 9)
    return y


def render_letter(letter: Letter) -> bytes:
    """A one-page letter (お知らせの通知文, 交付通知書) as PDF bytes."""
    return render_letters([letter])


def render_letters(letters: Sequence[Letter]) -> bytes:
    """Letters, one page each, in one PDF (a print run of notice letters)."""
    if not letters:
        raise ValueError("no letters to print")
    buf, c, pen = _new(letters[0].title, letters[0].municipality)
    for letter in letters:
        _draw_letter(c, pen, letter)
        c.showPage()
    c.save()
    return buf.getvalue()


def _draw_letter(c: Canvas, pen: _Pen, letter: Letter) -> None:
    y = PAGE_H - 25 * mm
    pen.put(LEFT, y, f"〒{letter.postal_code[:3]}-{letter.postal_code[3:]}", 10.5)
    for line in pen.wrap(letter.address, 10.5, 95 * mm):
        y -= 6 * mm
        pen.put(LEFT, y, line, 10.5)
    y -= 9 * mm
    pen.put(LEFT, y, f"{letter.addressee}　様", 14)
    pen.put(RIGHT, PAGE_H - 25 * mm, f"文書番号 {letter.document_number}", 8, label=True, anchor="r")
    pen.put(RIGHT, PAGE_H - 31 * mm, to_wareki(letter.issued_on), 10.5, anchor="r")
    pen.put(RIGHT, PAGE_H - 38 * mm, letter.sender, 10.5, anchor="r")
    y -= 18 * mm
    pen.put(PAGE_W / 2, y, letter.title, 15, label=True, anchor="c")
    y -= 12 * mm
    for para in letter.paragraphs:
        for line in pen.wrap("　" + para, 10.5, RIGHT - LEFT):
            pen.put(LEFT, y, line, 10.5)
            y -= 6.2 * mm
        y -= 2 * mm
    if letter.table:
        y -= 2 * mm
        for label, value in letter.table:
            y = _row(c, pen, y, label, value)

"""The card face as a PNG image (券面): front with 氏名・住所・生年月日・性別・有効期限 and the photo,
back with the 個人番号.  Text is set in IPAmj明朝 (the register's own characters, 異体字 included)
and the labels in IPAexゴシック, the same embedded fonts as the printed notices."""

from __future__ import annotations

import base64
import datetime as dt
import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from kojinbango.documents.fonts import cjk_font_path, label_font_path
from kojinbango.domain.wareki import to_wareki

WIDTH, HEIGHT = 1012, 638  # ID-1 (85.60 × 53.98 mm) at 300 dpi
SEXES = {"1": "男", "2": "女", "3": "その他"}
INK = (20, 20, 30)
LABEL = (90, 90, 110)


def _fonts(size: int) -> tuple[ImageFont.FreeTypeFont, ImageFont.FreeTypeFont]:
    text = ImageFont.truetype(str(cjk_font_path()), size)
    label_path = label_font_path()
    label = ImageFont.truetype(str(label_path), int(size * 0.7)) if label_path else text
    return text, label


def face_lines(face: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs of the front, in order — what a test or a screen reader can check."""
    birth = dt.date.fromisoformat(str(face["birth_date"]))
    expires = dt.date.fromisoformat(str(face["expires_on"]))
    return [
        ("氏名", str(face["name"])),
        ("住所", str(face["address"])),
        ("生年月日", f"{to_wareki(birth)}生"),
        ("性別", SEXES.get(str(face["sex"]), "")),
        ("有効期限", f"{expires.year}年{expires.month:02d}月{expires.day:02d}日まで有効"),
    ]


def _fit(
    draw: ImageDraw.ImageDraw, text: str, font_path: str, size: int, width: int
) -> ImageFont.FreeTypeFont:
    while size > 14:
        font = ImageFont.truetype(font_path, size)
        if draw.textlength(text, font=font) <= width:
            return font
        size -= 2
    return ImageFont.truetype(font_path, size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Break at the 方書 (full-width space) first, then wherever the line is full."""
    lines: list[str] = []
    for part in text.split("\u3000"):
        line = ""
        for ch in part:
            if draw.textlength(line + ch, font=font) > width and line:
                lines.append(line)
                line = ""
            line += ch
        lines.append(line)
    return lines


def render_face(face: dict[str, Any], back: bool = False, my_number: str | None = None) -> bytes:
    img = Image.new("RGB", (WIDTH, HEIGHT), (246, 244, 238))
    draw = ImageDraw.Draw(img)
    text_font, label_font = _fonts(40)
    font_path = str(cjk_font_path())
    draw.rounded_rectangle((4, 4, WIDTH - 5, HEIGHT - 5), radius=36, outline=(200, 200, 210), width=3)
    if back:
        draw.text((40, 30), "個人番号", font=label_font, fill=LABEL)
        number = my_number or ""
        spaced = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
        draw.text((40, 80), spaced, font=ImageFont.truetype(font_path, 64), fill=INK)
        draw.text((40, 200), "氏名", font=label_font, fill=LABEL)
        draw.text((40, 240), str(face["name"]), font=text_font, fill=INK)
        birth = dt.date.fromisoformat(str(face["birth_date"]))
        draw.text((40, 320), "生年月日", font=label_font, fill=LABEL)
        draw.text((40, 360), f"{to_wareki(birth)}生", font=text_font, fill=INK)
    else:
        draw.text((40, 24), "個人番号カード", font=ImageFont.truetype(font_path, 34), fill=(40, 70, 140))
        photo_box = (WIDTH - 300, 120, WIDTH - 40, 445)
        if face.get("photo"):
            with Image.open(io.BytesIO(base64.b64decode(face["photo"]))) as ph:
                picture = ph.convert("RGB")
                picture.thumbnail((photo_box[2] - photo_box[0], photo_box[3] - photo_box[1]))
                img.paste(picture, (photo_box[0], photo_box[1]))
        else:
            draw.rectangle(photo_box, outline=LABEL, width=2)
        y = 90
        for label, value in face_lines(face):
            draw.text((40, y + 10), label, font=label_font, fill=LABEL)
            width = WIDTH - 320 - 170
            if label == "住所":
                font = ImageFont.truetype(font_path, 28)
                for i, line in enumerate(_wrap(draw, value, font, width)[:3]):
                    draw.text((170, y - 10 + i * 34), line, font=font, fill=INK)
            else:
                draw.text((170, y), value, font=_fit(draw, value, font_path, 40, width), fill=INK)
            y += 100 if label in ("氏名", "住所") else 80
        municipality = str(face.get("municipality_name") or face.get("municipality") or "")
        draw.text((WIDTH - 300, 470), f"{municipality}長", font=label_font, fill=INK)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()

"""Matching keys for addresses.

In practice the same address is written 「2丁目1番地2号」, 「二丁目1-2」, 「２－１－２」, 「2ー1-2」
(DOMAIN.md §11). ``address_key`` folds these to one key; the raw address is stored and shown as
entered. Like every key, equality means "look here", never "same household".
"""

from __future__ import annotations

import re
from typing import Final

from kojinbango.domain.text import KANJI_NUMERALS, fold_kanji, kanji_number_value, nfkc

__all__ = ["PREFECTURES", "address_key", "split_prefecture"]

PREFECTURES: Final[tuple[str, ...]] = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県",
    "茨城県", "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県",
    "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県",
    "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県",
    "鳥取県", "島根県", "岡山県", "広島県", "山口県",
    "徳島県", "香川県", "愛媛県", "高知県",
    "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
)  # fmt: skip


def split_prefecture(s: str) -> tuple[str, str]:
    """("東京都", "千代田区…") for an address that starts with a prefecture, else ("", s).

    Leading whitespace is ignored and full-width input accepted; the rest is returned as given.
    """
    stripped = s.lstrip()
    head = nfkc(stripped[:4])
    for pref in PREFECTURES:
        if head.startswith(pref):
            return pref, stripped[len(pref) :]
    return "", s


_DIGITISH: Final = f"0-9{KANJI_NUMERALS}"
# A kanji-numeral run is an address number (and converted) only where one is expected: before a
# counter (丁目, 番地, 番 — but not 番町, a place-name word —, 号, 条, 線, 地割), a dash, a digit, or
# の/ノ/ー + number; or after a dash, 丁目/番地/番, 第, or number + の/ノ/ー. Elsewhere it is part of
# a place name (千代田, 八王子, 三鷹, 一ノ瀬) and stays as written.
_FOLLOWS_NUMBER_RE: Final = re.compile(rf"丁目|番地|番(?!町)|号|条|線|地割|-|[0-9]|[のノーｰ][{_DIGITISH}]")
_PRECEDES_NUMBER_RE: Final = re.compile(rf"(?:-|丁目|番地|番|第|[{_DIGITISH}][のノーｰ])$")

# Dash look-alikes: NFKC maps － to "-" but leaves ‐ (U+2010), – — ― − alone. ー (長音) counts as a
# dash only after a digit (2ー1-2): inside katakana building names (コーポ) it is a long vowel.
_DASHES_RE: Final = re.compile(r"[‐‑‒–—―−﹣]")
_NUMERAL_RUN_RE: Final = re.compile(f"[{KANJI_NUMERALS}]+")
_LONG_MARK_AS_DASH_RE: Final = re.compile(r"(?<=[0-9])[ーｰ](?=[0-9])")
_KANJI: Final = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f々"


def _convert_numerals(s: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _NUMERAL_RUN_RE.finditer(s):
        start, end = m.span()
        if _FOLLOWS_NUMBER_RE.match(s, end) or _PRECEDES_NUMBER_RE.search(s, 0, start):
            out.append(s[pos:start])
            out.append(str(kanji_number_value(m.group())))
            pos = end
    out.append(s[pos:])
    return "".join(out)


_SPACE_BETWEEN_NUMBERS_RE: Final = re.compile(rf"(?<=[{_DIGITISH}])\s+(?=[{_DIGITISH}])")
_SPACE_RE: Final = re.compile(r"\s+")
_OAZA_RE: Final = re.compile(rf"大?字(?![{_DIGITISH}-])")
_ROOM_RE: Final = re.compile(r"(?<=[0-9])号室")
_UNIT_RE: Final = re.compile(r"(?<=[0-9])-*(?:丁目|番地|番(?!町)|号)")
_NO_RE: Final = re.compile(r"(?<=[0-9-])[のノ](?=[0-9])")
_DASH_RUN_RE: Final = re.compile(r"-{2,}")
_STRAY_DASH_RE: Final = re.compile(r"-(?![0-9])")
_KE_RE: Final = re.compile(rf"(?<=[{_KANJI}])[ヶケヵがガ](?=[{_KANJI}])")
_NO_BETWEEN_KANJI_RE: Final = re.compile(rf"(?<=[{_KANJI}])ノ(?=[{_KANJI}])")
_MAX_PASSES: Final = 6


def _key_pass(s: str) -> str:
    s = _DASHES_RE.sub("-", s)
    s = _SPACE_BETWEEN_NUMBERS_RE.sub("-", s)
    s = _SPACE_RE.sub("", s)
    s = _OAZA_RE.sub("", s)
    s = _convert_numerals(s)
    s = _LONG_MARK_AS_DASH_RE.sub("-", s)
    s = _ROOM_RE.sub("", s)
    s = _UNIT_RE.sub("-", s)
    s = _NO_RE.sub("-", s)
    s = _DASH_RUN_RE.sub("-", s)
    s = _STRAY_DASH_RE.sub("", s)
    s = _KE_RE.sub("ケ", s)
    return _NO_BETWEEN_KANJI_RE.sub("の", s)


def address_key(s: str) -> str:
    """Matching key for an address.

    1. NFKC (full-width digits and ASCII, half-width kana); 異体字/旧字体 folded (``fold_kanji``).
    2. Dashes: every dash variant → "-"; whitespace between two numbers → "-" (「2-1-2 101」 is a
       room number, not 2-1-2101); all other whitespace removed.
    3. 大字 and 字 are dropped where they precede a place name (not before a number). Heuristic: 字
       inside a real place name is rare and, as both sides fold alike, the only risk is merging two
       names that differ by that 字 alone.
    4. Kanji numerals → arabic where they are address numbers (二丁目 → 2丁目, 二十三番 → 23番);
       place names keep theirs (千代田, 八王子; see ``_FOLLOWS_NUMBER_RE``). ー between digits → "-".
    5. 「N号室」 → N; after a digit, 丁目 / 番地 / 番 / 号 / の / ノ → "-"; runs of "-" collapse and a
       "-" not followed by a digit goes, so 2丁目1番地2号, 二丁目1-2, 1番地の2 → 2-1-2, 1-2 and
       the building part (方書) follows the numbers directly: 2-1-2ABCビル101.
    6. Between two kanji, ヶ ケ ヵ が ガ → ケ (霞が関 / 霞ヶ関) and ノ → の (一ノ瀬 / 一の瀬).

    Steps can expose new matches for earlier ones (removing a stray "-" puts 号 after a digit), so
    the passes repeat until nothing changes; real addresses settle in one pass plus a check. This
    makes the key idempotent.
    """
    s = fold_kanji(nfkc(s))
    for _ in range(_MAX_PASSES):
        t = nfkc(_key_pass(s))  # removals can leave a combining mark to recompose
        if t == s:
            break
        s = t
    return s

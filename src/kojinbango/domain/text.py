"""Matching keys for names and kana.

These functions only derive keys for search and record linkage; the raw value as entered is always
stored elsewhere and is what gets displayed and sent on. A key says "these two strings may be the
same name", never "these are the same person" — equal keys are a reason to look, not to link.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import jaconv
import joyokanji

from kojinbango.domain import itaiji

__all__ = [
    "KANJI_NUMERALS",
    "fold_kanji",
    "fold_spaces",
    "kana_search_key",
    "kanji_number_value",
    "kanji_numerals_to_arabic",
    "name_key",
    "nfkc",
    "to_katakana",
]


def nfkc(s: str) -> str:
    """Unicode NFKC: full-width ASCII → ASCII, half-width katakana → full-width, U+3000 → space."""
    return unicodedata.normalize("NFKC", s)


_WHITESPACE_RE: Final = re.compile(r"\s+")


def fold_spaces(s: str) -> str:
    """Remove every whitespace character (ASCII space, U+3000, tabs, newlines…)."""
    return _WHITESPACE_RE.sub("", s)


def to_katakana(s: str) -> str:
    """Hiragana → katakana and half-width katakana → full-width; nothing else changes."""
    return jaconv.hira2kata(jaconv.h2z(s, kana=True, ascii=False, digit=False))


_ASCII_UPPER: Final = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


# ---------------------------------------------------------------------------------------------
# Kana search key — 住民記録システム標準仕様書 第1.0版 2.1.2 検索文字入力 (DOMAIN.md §11,
# AkihiraYOSHIMOTO/jyuki-stnd:doc/j330.txt). Rule references below are to that section.

# 2.1.2 「長音の有無を無視」 and 入力ゆらぎ: ー(全角長音) ―(全角ダッシュ) －(全角マイナス) ‐(全角ハイフン)
# ｰ(半角長音) -(半角ハイフン) are equal — so all are dropped. Also dropped: the other dash look-alikes
# (‑ – — −) and the 中黒 (・/･). The 中黒 is our extension: katakana renderings of foreign names are
# written both with and without it.
_IGNORED_IN_KANA: Final = frozenset("ー―－‐ｰ-‑–—−・･")
_COMBINING_VOICING: Final = frozenset("\u3099\u309a\u309b\u309c")


def _build_kana_fold() -> dict[str, str]:
    table: dict[str, str] = {}
    # 2.1.2 「清音、濁音、半濁音による違いを無視」: drop the (han)dakuten — ガ→カ, パ→ハ, ジ→シ …
    for cp in range(0x30A1, 0x30FB):
        ch = chr(cp)
        decomposed = unicodedata.normalize("NFD", ch)
        if len(decomposed) == 2 and decomposed[1] in "\u3099\u309a":
            table[ch] = decomposed[0]
    # 2.1.2 examples 「ヂ」と「ジ」, 「ズ」と「ヅ」: the 四つ仮名 meet on the サ行 side.
    table["ヂ"] = "シ"
    table["ヅ"] = "ス"
    # 2.1.2 「拗音、促音の小文字と大文字による違いを無視」 (ッ/ツ, ャ/ヤ, ュ/ユ, ョ/ヨ), applied to every
    # small kana, including ヵ/ヶ and the Ainu small katakana ㇰ–ㇿ.
    small = "ァアィイゥウェエォオッツャヤュユョヨヮワヵカヶケ"
    small_to_large = dict(zip(small[0::2], small[1::2], strict=True))
    small_to_large.update(
        zip("ㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ", "クシストヌハヒフヘホムラリルレロ", strict=True)
    )
    # Obsolete kana: 2.1.2 lists 「オ」と「ヲ」; ヰ/ヱ fold the same way. 2.1.2 also lists 「ワ」と「ハ」
    # (evidently the particle は, read wa), so ワ and ヮ fold onto ハ.
    obsolete = {"ヲ": "オ", "ヰ": "イ", "ヱ": "エ", "ワ": "ハ"}

    def settle(ch: str) -> str:
        ch = small_to_large.get(ch, ch)
        return obsolete.get(ch, ch)

    for ch in list(table):
        table[ch] = settle(table[ch])
    for ch in list(small_to_large) + list(obsolete):
        table.setdefault(ch, settle(ch))
    return table


_KANA_FOLD: Final = _build_kana_fold()
# 2.1.2 examples 「ヴァ」と「バ」, 「ヴィ」と「ビ」, 「ヴ」と「ブ」: ヴ belongs with the バ行, so
# ヴ + vowel → バ行 syllable (then unvoiced like every other voiced kana) and a bare ヴ → ブ → フ.
_VU_WITH_VOWEL: Final = dict(zip("ァアィイェエォオ", "ハハヒヒヘヘホホ", strict=True))
_O_ROW: Final = frozenset("オコソトノホモヨロ")  # オ段 after folding (ゴ→コ, ョ→ヨ, ヲ→オ …)
_ITERATION_MARKS: Final = frozenset("ヽヾ")


def kana_search_key(s: str) -> str:
    """Search key for kana (フリガナ) implementing the standard spec's fuzzy search, 2.1.2.

    Steps (spec rule in brackets):
    1. NFKC: half-width kana → full-width, full-width ASCII → ASCII [入力ゆらぎ, 全角/半角].
    2. Hiragana → katakana [フリガナはカタカナで入力及び検索].
    3. Remove all whitespace [氏と名との間のスペースを無視; 全角スペースと半角スペース].
    4. Remove 長音 and every dash variant [長音の有無を無視; ー ― － ‐ ｰ - を区別しない].
    5. ヴ+vowel → ハ/ヒ/ヘ/ホ, ヴ → フ [「ヴァ」と「バ」, 「ヴィ」と「ビ」, 「ヴ」と「ブ」].
    6. Drop dakuten/handakuten; ヂ→シ, ヅ→ス [清音、濁音、半濁音による違いを無視; 「ヂ」と「ジ」…].
    7. Small kana → large [拗音、促音の小文字と大文字による違いを無視].
    8. ヲ→オ, ヰ→イ, ヱ→エ, ワ→ハ [「オ」と「ヲ」, 「ワ」と「ハ」].
    9. From the 2nd character, ウ after an オ段 character is read as オ [２文字目以降が「ウ」…「オ段」
       の場合、「ウ」を「オ」に変換], and that long オ is then dropped like a 長音 mark. The drop is our
       addition: without it rules 4 and 9 disagree (トーキョー → トキヨ but トウキョウ → トオキヨオ),
       with it トウキョウ, トオキョオ, トーキョー and トキョウ share a key. Price: オオノ (大野) and オノ
       (小野) share a key too — acceptable for a search key, which is why keys never decide a link.

    Also: iteration marks ヽ/ヾ repeat the previous (folded) character, ASCII letters are
    upper-cased, and non-kana characters otherwise pass through. The key is idempotent.
    """
    s = jaconv.hira2kata(nfkc(s))
    out: list[str] = []
    chars = [c for c in s if not c.isspace() and c not in _IGNORED_IN_KANA]
    i = 0
    while i < len(chars):
        ch = chars[i]
        i += 1
        if ch == "ヴ":
            nxt = chars[i] if i < len(chars) else ""
            if nxt in _VU_WITH_VOWEL:
                ch = _VU_WITH_VOWEL[nxt]
                i += 1
            else:
                ch = "フ"
        elif ch in _ITERATION_MARKS:
            if not out:
                continue
            ch = out[-1]  # still subject to rule 9 below (オヽ = オオ → オ)
        elif ch in _COMBINING_VOICING:
            # NFKC turns a spacing ゛/゜ (or a half-width ﾞ that could not compose) into a combining
            # mark; rule 6 ignores voicing, so the mark goes.
            continue
        else:
            ch = _KANA_FOLD.get(ch, ch)
        if out and ch in "ウオ" and out[-1] in _O_ROW:
            continue  # rule 9: a long オ after an オ段 character
        out.append(ch)
    # Removing spaces and dashes can leave a combining mark next to a new base character; the final
    # NFKC recomposes it so that the key is idempotent.
    return nfkc("".join(out).translate(_ASCII_UPPER))


# ---------------------------------------------------------------------------------------------
# Kanji name key

_VARIATION_SELECTORS_RE: Final = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_NAME_IGNORED_RE: Final = re.compile(r"[\s・]+")
_KANJI_ITERATION: Final = frozenset("々〻")


def fold_kanji(s: str) -> str:
    """Old forms → new (``joyokanji``, 旧字体→新字体 and its variant list), then the 異体字 table.

    The 異体字 table's canonical forms are joyokanji's outputs, so the composition is idempotent.
    """
    return itaiji.fold(joyokanji.convert(s, variants=True))


def name_key(s: str) -> str:
    """Matching key for names written in kanji (and kana, and the alphabet for foreign residents).

    NFKC (also folds the CJK compatibility ideographs that have a decomposition, e.g. 神 U+FA19),
    removes whitespace and 中黒, strips ideographic variation selectors (IVS — the same base
    character in a different glyph), folds hiragana/half-width kana to katakana, upper-cases ASCII,
    folds old forms and 異体字 (``fold_kanji``) and spells out 々 (佐々木 = 佐佐木). Kana are not
    otherwise folded: use ``kana_search_key`` on フリガナ for fuzzy kana search.
    """
    s = nfkc(s)
    s = _VARIATION_SELECTORS_RE.sub("", s)
    s = _NAME_IGNORED_RE.sub("", s)
    # NFKC again: removing spaces can leave a combining mark next to a new base character.
    s = nfkc(fold_kanji(to_katakana(s)).translate(_ASCII_UPPER))
    if not any(c in _KANJI_ITERATION for c in s):
        return s
    out: list[str] = []
    for c in s:
        out.append(out[-1] if c in _KANJI_ITERATION and out else c)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Kanji numerals (used by wareki and address keys)

KANJI_NUMERALS: Final = "〇一二三四五六七八九十百千"
_KANJI_DIGIT: Final = {c: i for i, c in enumerate("〇一二三四五六七八九")}
_KANJI_UNIT: Final = {"十": 10, "百": 100, "千": 1000}
_KANJI_RUN_RE: Final = re.compile(f"[{KANJI_NUMERALS}]+")


def kanji_number_value(run: str) -> int:
    """Value of a run of kanji numerals: positional (二十三 → 23, 千二百 → 1200) when it has a unit
    character, digit by digit otherwise (二〇五 → 205, as in 番地 written 一二三)."""
    if not run or any(c not in KANJI_NUMERALS for c in run):
        raise ValueError(f"not a kanji numeral: {run!r}")
    if not any(c in _KANJI_UNIT for c in run):
        return int("".join(str(_KANJI_DIGIT[c]) for c in run))
    total = 0
    current: int | None = None
    for c in run:
        if c in _KANJI_UNIT:
            total += (1 if current is None else current) * _KANJI_UNIT[c]
            current = None
        else:
            # Digits without a unit between them (二三十) are not a number; read them positionally.
            current = _KANJI_DIGIT[c] if current is None else current * 10 + _KANJI_DIGIT[c]
    return total + (current or 0)


def kanji_numerals_to_arabic(s: str) -> str:
    """Replace every run of kanji numerals by its arabic value (昭和五十五年 → 昭和55年)."""
    return _KANJI_RUN_RE.sub(lambda m: str(kanji_number_value(m.group())), s)

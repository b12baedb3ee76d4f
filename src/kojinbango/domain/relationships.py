"""世帯主との続柄 — the standard vocabulary.

住民記録システム標準仕様書 第1.0版 1.1.11 (AkihiraYOSHIMOTO/jyuki-stnd:doc/j110.txt; DOMAIN.md §7.2):

① 世帯主
② 夫、妻、夫（未届）、妻（未届）、子、子（子の夫）、子（子の妻）、父、母、兄、姉、弟及び妹
③ ② joined with 「の」 up to four generations, e.g. 子の子の子の子 — a 世代 is the number of elements
   joined with の, counted mechanically
④ 縁故者 — also for anything needing five or more generations
⑤ 同居人

Not managed (「実装しない機能」): 祖父, 祖母, おじ, おば, 甥, 姪, 孫, 家事使用人, 準世帯主.

The spec writes the children's spouses as 子（子の夫） and 子（子の妻）; both that literal form and the
plain chain 子の夫 / 子の妻 (③ applied to 子 and 夫/妻) are accepted, each returned as written. Where a
relationship can be written in several ways the spec wants the highest-ranked one in the 世帯員 order
(5.2) — a semantic rule about the household that this vocabulary check does not attempt.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = [
    "BASE_TERMS",
    "HOUSEHOLD_HEAD",
    "MAX_GENERATIONS",
    "STANDALONE_TERMS",
    "generations",
    "is_standard_relationship",
    "validate_relationship",
]

HOUSEHOLD_HEAD: Final = "世帯主"
BASE_TERMS: Final[tuple[str, ...]] = (
    "夫", "妻", "夫（未届）", "妻（未届）", "子", "子（子の夫）", "子（子の妻）",
    "父", "母", "兄", "姉", "弟", "妹",
)  # fmt: skip
STANDALONE_TERMS: Final[tuple[str, ...]] = (HOUSEHOLD_HEAD, "縁故者", "同居人")
MAX_GENERATIONS: Final = 4

_BASE: Final = frozenset(BASE_TERMS)

# Words people (and older systems) use, with the standard way to write them.
_SUGGESTIONS: Final[dict[str, str]] = {
    "祖父": "父の父 or 母の父",
    "祖母": "父の母 or 母の母",
    "孫": "子の子",
    "曾孫": "子の子の子",
    "曽孫": "子の子の子",
    "ひ孫": "子の子の子",
    "玄孫": "子の子の子の子",
    "甥": "兄の子, 姉の子, 弟の子 or 妹の子",
    "姪": "兄の子, 姉の子, 弟の子 or 妹の子",
    "おじ": "父の兄, 父の弟, 母の兄 or 母の弟 (or the husband of an aunt, e.g. 父の姉の夫)",
    "伯父": "父の兄 or 母の兄 (or e.g. 父の姉の夫)",
    "叔父": "父の弟 or 母の弟 (or e.g. 父の妹の夫)",
    "おば": "父の姉, 父の妹, 母の姉 or 母の妹 (or the wife of an uncle, e.g. 父の兄の妻)",
    "伯母": "父の姉 or 母の姉 (or e.g. 父の兄の妻)",
    "叔母": "父の妹 or 母の妹 (or e.g. 父の弟の妻)",
    "いとこ": "e.g. 父の兄の子",
    "従兄弟": "e.g. 父の兄の子",
    "従姉妹": "e.g. 父の兄の子",
    "義父": "妻の父 or 夫の父",
    "義母": "妻の母 or 夫の母",
    "義兄": "妻の兄, 夫の兄 or 姉の夫",
    "義姉": "妻の姉, 夫の姉 or 兄の妻",
    "義弟": "妻の弟, 夫の弟 or 妹の夫",
    "義妹": "妻の妹, 夫の妹 or 弟の妻",
    "嫁": "子の妻",
    "婿": "子の夫",
    "娘婿": "子の夫",
    "長男": "子",
    "次男": "子",
    "二男": "子",
    "三男": "子",
    "長女": "子",
    "次女": "子",
    "二女": "子",
    "三女": "子",
    "養子": "子",
    "養女": "子",
    "息子": "子",
    "娘": "子",
    "配偶者": "夫 or 妻",
    "内縁の夫": "夫（未届）",
    "内縁の妻": "妻（未届）",
    "兄弟": "兄 or 弟",
    "姉妹": "姉 or 妹",
    "本人": "世帯主",
    "家事使用人": "同居人",
    "準世帯主": "the person's own 続柄 to the 世帯主",
}
_NOT_STANDARD: Final = "is not a standard 続柄 (住民記録システム標準仕様書 1.1.11)"


def _normalise(s: str) -> str:
    # NFKC folds （） to (); put the spec's full-width parentheses back.
    t = "".join(unicodedata.normalize("NFKC", s).split())
    return t.replace("(", "（").replace(")", "）")


def _split_chain(t: str) -> list[str] | None:
    """Split on の outside parentheses (子（子の夫）の子 → [子（子の夫）, 子]); None if unbalanced."""
    items: list[str] = []
    depth = 0
    current: list[str] = []
    for c in t:
        if c == "（":
            depth += 1
        elif c == "）":
            depth -= 1
            if depth < 0:
                return None
        if c == "の" and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(c)
    items.append("".join(current))
    return None if depth else items


def generations(s: str) -> int:
    """Number of 世代 in a ② / ③ relationship (子の子 → 2); 0 for 世帯主, 縁故者, 同居人."""
    t = validate_relationship(s)
    if t in STANDALONE_TERMS:
        return 0
    items = _split_chain(t)
    assert items is not None  # validated above
    return len(items)


def validate_relationship(s: str) -> str:
    """Return the 続柄 in its standard spelling (full-width parentheses, no spaces) or raise
    ValueError saying why it is not standard and, where there is one, what to write instead."""
    if not isinstance(s, str):
        raise TypeError(f"expected str, got {type(s).__name__}")
    t = _normalise(s)
    if not t:
        raise ValueError("続柄 is empty (続柄が入力されていません)")
    if t in STANDALONE_TERMS or t in _BASE:
        return t
    if t in _SUGGESTIONS:
        raise ValueError(f"{t} {_NOT_STANDARD}; use {_SUGGESTIONS[t]}")
    if t.startswith(HOUSEHOLD_HEAD + "の"):
        rest = t[len(HOUSEHOLD_HEAD) + 1 :]
        raise ValueError(f"{t}: 続柄 is already relative to the 世帯主; write {rest} instead")
    items = _split_chain(t)
    if items is None:
        raise ValueError(f"{t} {_NOT_STANDARD}: unbalanced parentheses")
    for item in items:
        if item in _BASE:
            continue
        if item in _SUGGESTIONS:
            raise ValueError(f"{t} {_NOT_STANDARD}: {item} is not used; write {_SUGGESTIONS[item]}")
        if item in STANDALONE_TERMS:
            raise ValueError(f"{t} {_NOT_STANDARD}: {item} cannot be part of a の chain")
        allowed = "、".join(BASE_TERMS)
        raise ValueError(f"{t} {_NOT_STANDARD}: {item or '(empty)'} is not one of {allowed}")
    if len(items) > MAX_GENERATIONS:
        raise ValueError(
            f"{t} chains {len(items)} generations; the standard allows at most {MAX_GENERATIONS} — "
            "record such a relative as 縁故者"
        )
    return t


def is_standard_relationship(s: str) -> bool:
    try:
        validate_relationship(s)
    except (ValueError, TypeError):
        return False
    return True

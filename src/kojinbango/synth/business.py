"""Dirty business data (既存業務) with the truth kept apart — what step 3-0 must link.

Given the people a municipality's register knows (with what its history knows of them) and people who
live elsewhere, ``generate_business_data`` writes the records two business systems hold — 個人住民税
課税台帳 (``tax``) with income by year and 児童手当 (``welfare``) recipients and children — each with its
own 宛名番号 (M11W2-7) and its own, older copy of the 4情報, dirty the way real ones are:

* stale addresses (most of them in the register's history, some not), maiden names (most in the
  history), typos in 氏名, フリガナ or 生年月日, small-kana written large (シヨウイチ), 濁点 lost,
  異体字 (髙/高, 﨑/崎 …), half-width or hiragana furigana, missing furigana, 和暦 dates in several
  notations, address notation variants (2丁目1番地2号 / 2-1-2 / 二丁目, full-width digits, without
  the prefecture or the city), wrong 性別, duplicates inside one system;
* people who moved out or died (still in the register, removed), non-residents (住登外者: taxpayers
  living elsewhere, known only to 住基ネット) and people nobody knows;
* forms carrying a family member's 個人番号 or two numbers, and one bank account on two people.

The truth (which person each record is about, and the dirt applied) is returned separately and never
written into the business data.  Deterministic in its arguments.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import jaconv

from kojinbango.domain import itaiji
from kojinbango.domain.address import split_prefecture
from kojinbango.domain.identifiers import make_atena_number
from kojinbango.domain.wareki import to_wareki

from ._seed import derive_rng

__all__ = [
    "BusinessData",
    "BusinessRow",
    "DirtRates",
    "SourcePerson",
    "TruthRow",
    "generate_business_data",
]


@dataclass(frozen=True, slots=True)
class SourcePerson:
    """A real person (the truth): as the register or 住基ネット knows them now, and their past."""

    key: str  # truth key (e.g. the 住民票コード); never written into business data
    family_name: str
    given_name: str
    family_kana: str
    given_kana: str
    birth_date: dt.date
    sex: int
    address: str  # current (or last) 住所
    address_extra: str
    household: str  # household key: who lives together
    relationship: str  # 続柄
    status: str  # active | moved_out | dead | non_resident
    known_former_addresses: tuple[str, ...] = ()  # in the register's history
    known_former_names: tuple[tuple[str, str], ...] = ()  # (氏, 氏カナ) in the register's history


@dataclass(frozen=True, slots=True)
class BusinessRow:
    """One record of a business system, as its CSV would carry it."""

    system: str
    legacy_id: str
    name: str
    kana: str
    birth_date: str
    sex: int
    address: str


@dataclass(frozen=True, slots=True)
class TruthRow:
    system: str
    legacy_id: str
    person_key: str  # "" = a person neither the register nor 住基ネット knows
    expected: str  # linked | non_resident_linked | unmatched (who the record truly is)
    dirt: tuple[str, ...]


@dataclass
class BusinessData:
    rows: list[BusinessRow] = field(default_factory=list)
    truth: list[TruthRow] = field(default_factory=list)
    tax: list[tuple[str, int, int, int]] = field(default_factory=list)  # legacy_id, 年度, 所得, 税額
    allowances: list[tuple[str, str, dt.date, int]] = field(default_factory=list)  # recipient, child …
    accounts: list[tuple[str, str, str, int, str, str]] = field(default_factory=list)  # legacy_id, bank …
    form_numbers: list[tuple[str, str, str, str, dt.date]] = field(default_factory=list)
    # (system, legacy_id, person key whose number is written, form, received_on)


@dataclass(frozen=True)
class DirtRates:
    """Per-record probabilities of each kind of dirt."""

    stale_known: float = 0.10  # an older address the register's history has
    stale_unknown: float = 0.006  # an older address nobody recorded
    maiden_known: float = 0.6  # of women with a former 氏 in the history
    maiden_unknown: float = 0.003  # of married women: a former 氏 the register never saw
    itaiji: float = 0.05
    name_typo: float = 0.003
    kana_missing: float = 0.10
    kana_hiragana: float = 0.10
    kana_halfwidth: float = 0.10
    kana_small_large: float = 0.08
    kana_dakuten: float = 0.03
    kana_typo: float = 0.003
    wareki: float = 0.40
    birth_typo: float = 0.003
    sex_wrong: float = 0.002
    address_variant: float = 0.6
    duplicate: float = 0.01
    non_resident_share: float = 0.03  # of tax records
    unknown_share: float = 0.004  # of tax records
    wrong_form_number: float = 0.002
    two_form_numbers: float = 0.001
    shared_account: float = 0.003


_SMALL_TO_LARGE = str.maketrans("ァィゥェォッャュョヮ", "アイウエオツヤユヨワ")
_TYPO_KANJI = "一二三大太人入八木本未末土士日目白百千子了才朋明"
_TYPO_KANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノ"
_FW_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")
_KANJI_DIGITS = "〇一二三四五六七八九"


def _kanji_number(n: int) -> str:
    if n < 10:
        return _KANJI_DIGITS[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return ("" if tens == 1 else _KANJI_DIGITS[tens]) + "十" + (_KANJI_DIGITS[ones] if ones else "")
    return "".join(_KANJI_DIGITS[int(c)] for c in str(n))


def _kanji_date(d: dt.date) -> str:
    w = to_wareki(d)
    return re.sub(r"\d+", lambda m: _kanji_number(int(m.group())), w)


def birth_text(d: dt.date, rng: random.Random, wareki: float) -> tuple[str, str]:
    if d >= dt.date(1873, 1, 1) and rng.random() < wareki:
        r = rng.random()
        if r < 0.6:
            return to_wareki(d), "wareki"
        if r < 0.85:
            w = to_wareki(d)
            era = {"明治": "M", "大正": "T", "昭和": "S", "平成": "H", "令和": "R"}[w[:2]]
            y = w[2 : w.index("年")]
            return f"{era}{1 if y == '元' else y}.{d.month}.{d.day}", "wareki_letter"
        return _kanji_date(d), "wareki_kanji"
    if rng.random() < 0.3:
        return f"{d.year}/{d.month}/{d.day}", "slash_date"
    return d.isoformat(), ""


def _typo_date(d: dt.date, rng: random.Random) -> dt.date:
    for _ in range(10):
        s = list(d.strftime("%Y%m%d"))
        i = rng.choice((3, 5, 7))
        s[i] = str((int(s[i]) + rng.randint(1, 9)) % 10)
        try:
            t = dt.date(int("".join(s[:4])), int("".join(s[4:6])), int("".join(s[6:])))
        except ValueError:
            continue
        if t != d:
            return t
    return d + dt.timedelta(days=1)


def _itaiji(s: str, rng: random.Random) -> str:
    out = []
    for ch in s:
        vs = sorted(itaiji.variants_of(ch) - {ch})
        out.append(rng.choice(vs) if vs and rng.random() < 0.7 else ch)
    return "".join(out)


def _kana_variant(kana: str, rng: random.Random, rates: DirtRates, dirt: list[str]) -> str:
    if rng.random() < rates.kana_missing:
        dirt.append("kana_missing")
        return ""
    if rng.random() < rates.kana_typo and len(kana) > 2:
        i = rng.randrange(len(kana))
        if kana[i] != "\u3000":
            kana = kana[:i] + rng.choice(_TYPO_KANA) + kana[i + 1 :]
            dirt.append("kana_typo")
    if rng.random() < rates.kana_small_large and kana != kana.translate(_SMALL_TO_LARGE):
        kana = kana.translate(_SMALL_TO_LARGE)
        dirt.append("kana_small_large")
    if rng.random() < rates.kana_dakuten:
        stripped = unicodedata.normalize(
            "NFC", "".join(c for c in unicodedata.normalize("NFD", kana) if c not in "\u3099\u309a")
        )
        if stripped != kana:
            kana = stripped
            dirt.append("kana_dakuten")
    r = rng.random()
    if r < rates.kana_hiragana:
        kana = jaconv.kata2hira(kana)
        dirt.append("kana_hiragana")
    elif r < rates.kana_hiragana + rates.kana_halfwidth:
        kana = jaconv.z2h(kana, kana=True, ascii=False, digit=False)
        dirt.append("kana_halfwidth")
    return kana


_CHOME_RE = re.compile(r"([〇一二三四五六七八九十]+)丁目")


def address_variant(
    address: str, extra: str, rng: random.Random, p: float, keep_city: bool = False
) -> tuple[str, str]:
    """One notation of ``address`` (+ 方書): what a business system typed in.  ``keep_city``: the
    address is in another municipality, so the system keeps its prefecture and city."""
    if rng.random() >= p:
        return (f"{address}\u3000{extra}" if extra and rng.random() < 0.5 else address), ""
    pref, rest = split_prefecture(address)
    style = rng.random()
    if style < 0.35:  # 2-1-2
        rest = _CHOME_RE.sub(lambda m: str(_value(m.group(1))) + "-", rest)
        rest = re.sub(r"(?<=[0-9])(?:番地|番|号)", "-", rest).rstrip("-").replace("--", "-")
        tag = "address_hyphen"
    elif style < 0.6:  # 2丁目1番地2号
        rest = _CHOME_RE.sub(lambda m: str(_value(m.group(1))) + "丁目", rest)
        tag = "address_arabic_chome"
    elif style < 0.8:  # full-width digits
        rest = rest.translate(_FW_DIGITS)
        tag = "address_fullwidth"
    else:  # 番地の
        rest = re.sub(r"番地(\d)", r"番地の\1", rest)
        tag = "address_banchi_no"
    r = 1.0 if keep_city else rng.random()
    if r < 0.4:
        text = rest  # prefecture left out
    elif r < 0.5:
        text = re.sub(r"^[^0-9０-９]{1,4}?[区市]", "", rest)  # city left out too
    else:
        text = pref + rest
    if extra and rng.random() < 0.5:
        text += rng.choice(("\u3000", " ", "")) + extra
    return text, tag


def _value(kanji: str) -> int:
    from kojinbango.domain.text import kanji_number_value

    return kanji_number_value(kanji)


class _Writer:
    def __init__(
        self, rng: random.Random, rates: DirtRates, as_of: dt.date, municipality_addresses: list[str]
    ):
        self.rng = rng
        self.rates = rates
        self.as_of = as_of
        self.addresses = municipality_addresses
        self.data = BusinessData()
        self.serial: dict[str, int] = defaultdict(int)
        self.surnames: list[tuple[str, str]] = []

    def legacy_id(self, system: str) -> str:
        self.serial[system] += 1
        width = 9 if system == "tax" else 8
        return make_atena_number(self.serial[system] * 7 + 1000, width)

    def write(
        self, system: str, p: SourcePerson | None, expected: str, fake: SourcePerson | None = None
    ) -> str:
        rng, rates = self.rng, self.rates
        src = p or fake
        assert src is not None
        dirt: list[str] = []
        family, family_kana = src.family_name, src.family_kana
        given, given_kana = src.given_name, src.given_kana
        if src.known_former_names and rng.random() < rates.maiden_known:
            family, family_kana = rng.choice(src.known_former_names)
            dirt.append("maiden_known")
        elif src.relationship in ("妻", "子の妻") and self.surnames and rng.random() < rates.maiden_unknown:
            family, family_kana = rng.choice(self.surnames)
            dirt.append("maiden_unknown")
        if rng.random() < rates.itaiji:
            v = _itaiji(family, rng)
            if v != family:
                family = v
                dirt.append("itaiji")
        if rng.random() < rates.name_typo and len(given) >= 1:
            i = rng.randrange(len(given))
            given = given[:i] + rng.choice(_TYPO_KANJI) + given[i + 1 :]
            dirt.append("name_typo")
        sep = rng.choices(("\u3000", " ", ""), (5, 2, 3))[0]
        name = family + sep + given
        kana = _kana_variant(family_kana + rng.choice(("\u3000", " ", "")) + given_kana, rng, rates, dirt)
        birth = src.birth_date
        if rng.random() < rates.birth_typo:
            birth = _typo_date(birth, rng)
            dirt.append("birth_typo")
        btext, tag = birth_text(birth, rng, rates.wareki)
        if tag:
            dirt.append(tag)
        sex = src.sex
        if rng.random() < rates.sex_wrong:
            sex = 2 if sex == 1 else 1
            dirt.append("sex_wrong")
        address, extra = src.address, src.address_extra
        if src.known_former_addresses and rng.random() < rates.stale_known:
            address, extra = rng.choice(src.known_former_addresses), ""
            dirt.append("stale_known")
        elif self.addresses and src.status != "non_resident" and rng.random() < rates.stale_unknown:
            address, extra = rng.choice(self.addresses), ""
            dirt.append("stale_unknown")
        address, tag = address_variant(
            address, extra, rng, rates.address_variant, keep_city=src.status == "non_resident"
        )
        if tag:
            dirt.append(tag)
        legacy = self.legacy_id(system)
        self.data.rows.append(BusinessRow(system, legacy, name, kana, btext, sex, address))
        self.data.truth.append(TruthRow(system, legacy, p.key if p else "", expected, tuple(dirt)))
        return legacy


def _age(b: dt.date, on: dt.date) -> int:
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def generate_business_data(
    persons: Sequence[SourcePerson],
    outsiders: Sequence[SourcePerson],
    seed: int,
    as_of: dt.date,
    rates: DirtRates | None = None,
) -> BusinessData:
    """Tax and welfare records for ``persons`` (the register's people) and some ``outsiders``."""
    rates = rates or DirtRates()
    # not ``as_of``: the same people get the same records whatever the day (dates follow as_of)
    rng = derive_rng("business", seed, len(persons), len(outsiders))
    addresses = sorted({p.address for p in persons})
    w = _Writer(rng, rates, as_of, addresses)
    w.surnames = sorted({(p.family_name, p.family_kana) for p in persons})[:2000]
    expected_of = {
        "active": "linked",
        "moved_out": "linked",
        "dead": "linked",
        "non_resident": "non_resident_linked",
    }
    fiscal = as_of.year if as_of.month >= 6 else as_of.year - 1
    tax_ids: dict[str, list[str]] = defaultdict(list)

    def tax_record(p: SourcePerson | None, fake: SourcePerson | None = None) -> None:
        expected = expected_of[p.status] if p else "unmatched"
        legacy = w.write("tax", p, expected, fake)
        if p:
            tax_ids[p.key].append(legacy)
        base = int(math.exp(rng.gauss(15.0, 0.7)))  # ≈ 3.3 million yen median
        for year in (fiscal - 2, fiscal - 1, fiscal):
            income = max(0, int(base * rng.uniform(0.9, 1.1)) // 1000 * 1000)
            w.data.tax.append((legacy, year, income, max(0, (income - 430_000) // 10 // 100 * 100)))

    # 個人住民税: most adults; the removed ones too (taxed for the year they left or died)
    for p in persons:
        if _age(p.birth_date, as_of) >= 20 and rng.random() < 0.72:
            tax_record(p)
    n_tax = len(tax_ids)
    for p in rng.sample(list(outsiders), min(len(outsiders), int(n_tax * rates.non_resident_share))):
        tax_record(p)
    for _ in range(int(n_tax * rates.unknown_share)):
        fam, fam_kana = rng.choice(w.surnames) if w.surnames else ("山田", "ヤマダ")
        fake = SourcePerson(
            "", fam, rng.choice(("一郎", "花子", "誠", "恵子")), fam_kana, rng.choice(("イチロウ", "ハナコ", "マコト", "ケイコ")),
            dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(20000)), rng.choice((1, 2)),
            "大阪府大阪市北区梅田" + str(rng.randint(1, 3)) + "丁目" + str(rng.randint(1, 9)) + "番" + str(rng.randint(1, 20)) + "号",
            "", "", "", "non_resident",
        )  # fmt: skip
        tax_record(None, fake)
    # forms with numbers (給与支払報告書 / 申告書): mostly the person's own
    by_household: dict[str, list[SourcePerson]] = defaultdict(list)
    for p in persons:
        by_household[p.household].append(p)
    person_of = {p.key: p for p in persons}
    for key, legacies in tax_ids.items():
        if rng.random() >= 0.5:
            continue
        legacy = legacies[0]
        received = as_of - dt.timedelta(days=rng.randrange(400))
        family = (
            [m for m in by_household.get(person_of[key].household, []) if m.key != key]
            if key in person_of
            else []
        )
        r = rng.random()
        if family and r < rates.wrong_form_number:
            w.data.form_numbers.append(("tax", legacy, rng.choice(family).key, "給与支払報告書", received))
        elif family and r < rates.wrong_form_number + rates.two_form_numbers:
            w.data.form_numbers.append(("tax", legacy, key, "申告書", received))
            w.data.form_numbers.append(("tax", legacy, rng.choice(family).key, "申告書", received))
        else:
            w.data.form_numbers.append(("tax", legacy, key, "給与支払報告書", received))
    # 児童手当: a parent of children under 18 and each child
    recipients: list[str] = []
    for members in by_household.values():
        kids = [
            m
            for m in members
            if _age(m.birth_date, as_of) < 18 and m.relationship in ("子", "子の子") and m.status == "active"
        ]
        if not kids or rng.random() >= 0.95:
            continue
        parents = [
            m for m in members if m.relationship in ("世帯主", "妻", "夫") and _age(m.birth_date, as_of) >= 20
        ]
        if kids[0].relationship == "子の子":
            parents = [
                m
                for m in members
                if m.relationship in ("子", "子の妻", "子の夫") and _age(m.birth_date, as_of) >= 20
            ] or parents
        if not parents:
            continue
        recipient = parents[0]
        rid = w.write("welfare", recipient, expected_of[recipient.status])
        recipients.append(rid)
        for k in kids:
            cid = w.write("welfare", k, expected_of[k.status])
            amount = 15000 if _age(k.birth_date, as_of) < 3 else 10000
            w.data.allowances.append((rid, cid, max(k.birth_date, as_of - dt.timedelta(days=3650)), amount))
        holder = jaconv.z2h(
            recipient.family_kana + " " + recipient.given_kana, kana=True, ascii=False, digit=False
        )
        w.data.accounts.append(
            (
                rid,
                f"{rng.randint(1, 9999):04d}",
                f"{rng.randint(1, 999):03d}",
                1,
                f"{rng.randint(0, 9999999):07d}",
                holder,
            )
        )
    # one account registered for two unrelated people (a family member's or a mistaken account)
    accts = [a for a in w.data.accounts]
    for a in accts:
        if rng.random() < rates.shared_account:
            other = rng.choice(accts)
            if other[0] != a[0]:
                w.data.accounts.append((other[0], a[1], a[2], a[3], a[4], a[5]))
    # duplicates inside one system: the same person entered twice under two 宛名番号
    truth_by_id = {(t.system, t.legacy_id): t for t in w.data.truth}
    for row in list(w.data.rows):
        t = truth_by_id[(row.system, row.legacy_id)]
        if t.person_key and t.person_key in person_of and rng.random() < rates.duplicate:
            w.write(row.system, person_of[t.person_key], t.expected)
            last = w.data.truth[-1]
            w.data.truth[-1] = TruthRow(
                last.system, last.legacy_id, last.person_key, last.expected, (*last.dirt, "duplicate")
            )
    return w.data

"""The 届出 forms of the staff screens: which fields each 異動 asks for, and their validation.

Validation here is per field so the page can say, next to each input, what is wrong; the service
checks again (one transaction per event) and its refusal is shown above the form.  Dates are read
in 和暦 or 西暦 (domain.wareki.parse_date).  Pure: ``today`` is passed in.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kojinbango.domain.relationships import validate_relationship
from kojinbango.domain.text import to_katakana
from kojinbango.domain.wareki import GREGORIAN_ADOPTION, DateParseError, parse_date

ADVANCE_NOTICE = dt.timedelta(days=14)  # a 転出届 may be made up to about 14 days before leaving


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str = "text"  # text | date | select | textarea | members | file
    options: tuple[tuple[str, str], ...] = ()
    hint: str = ""
    required: bool = True


@dataclass
class Checked:
    """The outcome of validating one submitted form."""

    values: dict[str, Any] = field(default_factory=dict)  # cleaned values
    errors: dict[str, str] = field(default_factory=dict)  # field name → what is wrong

    @property
    def ok(self) -> bool:
        return not self.errors


SEX_OPTIONS = (("1", "男"), ("2", "女"), ("3", "その他"))
DATE_HINT = "和暦（令和5年4月1日・R5.4.1）または西暦（2023-04-01・2023/4/1）"


def _date(name: str, label: str, hint: str = DATE_HINT, required: bool = True) -> Field:
    return Field(name, label, "date", hint=hint, required=required)


PERSON = (
    Field("family_name", "氏"),
    Field("given_name", "名"),
    Field("family_kana", "氏（フリガナ）", hint="カタカナまたはひらがな"),
    Field("given_kana", "名（フリガナ）", hint="カタカナまたはひらがな"),
    _date("birth_date", "生年月日"),
    Field("sex", "性別", "select", SEX_OPTIONS),
)
ADDRESS = (
    Field("postal_code", "郵便番号", hint="7桁（100-0005 も可）"),
    Field("address", "住所", hint="都道府県から番地まで"),
    Field("address_extra", "方書", required=False, hint="建物名・部屋番号など"),
)
NOTIFIED = _date("notified_on", "届出日", "空欄なら本日", required=False)

FIELDS: dict[str, tuple[Field, ...]] = {
    "birth": (
        *PERSON,
        Field("relationship", "世帯主との続柄", hint="標準の記載で（例: 子、子の子、妻の子）"),
        NOTIFIED,
    ),
    "move": (*ADDRESS, _date("moved_on", "転居日"), NOTIFIED),
    "death": (_date("died_on", "死亡日"), NOTIFIED),
    "name": (*PERSON[:4], _date("changed_on", "変更日")),
    "move-out": (
        Field("destination_lg_code", "転出先の市区町村コード", hint="6桁（例 131041）"),
        Field("destination_address", "転出先の住所"),
        _date("moved_on", "転出（予定）日", "14日先まで。" + DATE_HINT),
    ),
    "abroad": (
        Field("members", "国外転出する人", "members"),
        Field("destination_country", "転出先の国"),
        _date("moved_on", "転出（予定）日", "14日先まで。" + DATE_HINT),
        NOTIFIED,
    ),
    "move-in": (
        Field("certificate_file", "転出証明書（ファイル）", "file", required=False),
        Field(
            "certificate",
            "転出証明書（JSON）",
            "textarea",
            hint="転出元が発行した署名付きの転出証明書。ファイルを選ぶか貼り付けてください",
            required=False,
        ),
        *ADDRESS,
        _date("moved_in_on", "転入日"),
    ),
    "move-in-abroad": (
        *PERSON,
        Field("from_country", "転入前の国"),
        *ADDRESS,
        _date("moved_in_on", "転入日"),
    ),
}
TITLES = {
    "birth": "出生届",
    "move": "転居届",
    "death": "死亡届",
    "name": "氏名変更",
    "move-out": "転出届（国内）",
    "abroad": "国外転出届",
    "move-in": "転入届（転出証明書による）",
    "move-in-abroad": "転入届（国外からの転入）",
}


def _text(raw: Mapping[str, str], name: str) -> str:
    return (raw.get(name) or "").strip()


def _kana(value: str) -> str | None:
    """The フリガナ in katakana, or None when it contains anything but kana."""
    kata = to_katakana(unicodedata.normalize("NFKC", value))
    body = kata.replace("\u3000", "").replace(" ", "")
    ok = body and all("\u30a1" <= ch <= "\u30fa" or ch in "・ーヽヾ" for ch in body)
    return kata if ok else None


def check(kind: str, raw: Mapping[str, Any], today: dt.date, context: Mapping[str, Any]) -> Checked:
    """Validate the submitted ``raw`` values of form ``kind``.

    ``context`` carries what the check compares with: ``birth_date`` and ``address`` of the person
    or household, ``names`` (their current 氏名・フリガナ), ``members`` (ids allowed), ``lg_code``."""
    c = Checked()
    for f in FIELDS[kind]:
        if f.kind in ("members", "file"):
            continue
        value = _text(raw, f.name)
        if not value:
            if f.required:
                c.errors[f.name] = f"{f.label}を入力してください"
            else:
                c.values[f.name] = None if f.kind == "date" else ""
            continue
        if f.kind == "date":
            try:
                c.values[f.name] = parse_date(value)
            except DateParseError as exc:
                c.errors[f.name] = f"{f.label}が読めません: {exc}"
            else:
                if c.values[f.name] < GREGORIAN_ADOPTION:  # the register shows dates in 和暦
                    c.errors[f.name] = f"{f.label}（{value}）が1873年（明治6年）より前です"
        elif f.kind == "select":
            if value not in dict(f.options):
                c.errors[f.name] = f"{f.label}は一覧から選んでください"
            else:
                c.values[f.name] = value
        else:
            c.values[f.name] = value
    for name in ("family_kana", "given_kana"):
        if name in c.values:
            kata = _kana(c.values[name])
            if kata is None:
                c.errors[name] = (
                    "フリガナはカタカナまたはひらがなで入力してください（漢字・英数字は使えません）"
                )
            else:
                c.values[name] = kata
    if "postal_code" in c.values:
        digits = unicodedata.normalize("NFKC", c.values["postal_code"]).replace("-", "").replace("〒", "")
        if len(digits) != 7 or not digits.isdigit():
            c.errors["postal_code"] = "郵便番号は7桁の数字で入力してください"
        else:
            c.values["postal_code"] = digits
    if any(f.name == "notified_on" for f in FIELDS[kind]) and c.values.get("notified_on", 0) is None:
        c.values["notified_on"] = today  # 届出日 left empty: the 届出 is made today
    _RULES[kind](c, raw, today, context)
    return c


def _not_future(
    c: Checked, name: str, label: str, today: dt.date, slack: dt.timedelta = dt.timedelta()
) -> None:
    d = c.values.get(name)
    if isinstance(d, dt.date) and d > today + slack:
        c.errors[name] = (
            f"{label}（{d.isoformat()}）が未来の日付です"
            if not slack
            else f"{label}（{d.isoformat()}）は本日から{slack.days}日先までにしてください"
        )


def _notified_after(c: Checked, event: str, today: dt.date) -> None:
    n, d = c.values.get("notified_on"), c.values.get(event)
    _not_future(c, "notified_on", "届出日", today)
    if (
        isinstance(n, dt.date)
        and isinstance(d, dt.date)
        and n < d
        and not {"notified_on", event} & set(c.errors)
    ):
        c.errors["notified_on"] = f"届出日（{n.isoformat()}）が異動日（{d.isoformat()}）より前です"


def _after_birth(c: Checked, name: str, label: str, born: Any) -> None:
    d = c.values.get(name)
    if isinstance(d, dt.date) and isinstance(born, dt.date) and d < born and name not in c.errors:
        c.errors[name] = f"{label}（{d.isoformat()}）が生年月日（{born.isoformat()}）より前です"


def _birth(c: Checked, raw: Mapping[str, Any], today: dt.date, ctx: Mapping[str, Any]) -> None:
    _not_future(c, "birth_date", "生年月日", today)
    if "relationship" in c.values:
        try:
            c.values["relationship"] = validate_relationship(c.values["relationship"])
        except ValueError as exc:
            c.errors["relationship"] = str(exc)
    _notified_after(c, "birth_date", today)
    if "sex" in c.values:
        c.values["sex"] = int(c.values["sex"])


def _move(c: Checked, raw: Mapping[str, Any], today: dt.date, ctx: Mapping[str, Any]) -> None:
    _not_future(c, "moved_on", "転居日", today)
    _after_birth(c, "moved_on", "転居日", ctx.get("birth_date"))
    if (
        c.values.get("address")
        and c.values["address"] == ctx.get("address")
        and (c.values.get("address_extra") or "") == (ctx.get("address_extra") or "")
    ):
        c.errors["address"] = "新しい住所が今の住所と同じです"
    _notified_after(c, "moved_on", today)


def _death(c: Checked, raw: Mapping[str, Any], today: dt.date, ctx: Mapping[str, Any]) -> None:
    _not_future(c, "died_on", "死亡日", today)
    _after_birth(c, "died_on", "死亡日", ctx.get("birth_date"))
    _notified_after(c, "died_on", today)


def _name(c: Checked, raw: Mapping[str, Any], today: dt.date, ctx: Mapping[str, Any]) -> None:
    _not_future(c, "changed_on", "変更日", today)
    _after_birth(c, "changed_on", "変更日", ctx.get("birth_date"))
    new = tuple(c.values.get(k) for k in ("family_name", "given_name", "family_kana", "given_kana"))
    if not c.errors and new == tuple(ctx.get("names") or ()):
        c.errors["family_name"] = "氏名・フリガナが今と同じです（変更がありません）"


def _move_out(c: Checked, raw: Mapping[str, Any], today: dt.date, ctx: Mapping[str, Any]) -> None:
    code = c.values.get("destination_lg_code")
    if code is not None:
        code = unicodedata.normalize("NFKC", code)
        if len(code) != 6 or not code.isdigit():
            c.errors["destination_lg_code"] = "市区町村コードは6桁の数字で入力してください"
        elif code == ctx.get("lg_code"):
            c.errors["destination_lg_code"] = (
                "転出先がこの市区町村です。市区町村内の移動は転居届で処理してください"
            )
        c.values["destination_lg_code"] = code
    _not_future(c, "moved_on", "転出（予定）日", today, ADVANCE_NOTICE)
    _after_birth(c, "moved_on", "転出（予定）日", ctx.get("birth_date"))


def _abroad(c: Checked, raw: Mapping[str, Any], today: dt.date, ctx: Mapping[str, Any]) -> None:
    chosen = raw.get("members") or []
    allowed = set(ctx.get("members") or ())
    try:
        ids = sorted({int(x) for x in chosen})
    except ValueError:
        ids = []
    if not ids:
        c.errors["members"] = "国外転出する人を1人以上選んでください"
    elif not set(ids) <= allowed:
        c.errors["members"] = "この世帯の住民だけを選んでください"
    c.values["members"] = ids
    _not_future(c, "moved_on", "転出（予定）日", today, ADVANCE_NOTICE)
    _after_birth(c, "moved_on", "転出（予定）日", ctx.get("birth_date"))
    _not_future(c, "notified_on", "届出日", today)


def _move_in(c: Checked, raw: Mapping[str, Any], today: dt.date, ctx: Mapping[str, Any]) -> None:
    text = (raw.get("certificate") or "").strip()
    if not text:
        c.errors["certificate"] = "転出証明書のファイルを選ぶか、JSONを貼り付けてください"
    else:
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            c.errors["certificate"] = f"転出証明書のJSONが読めません（{exc}）"
        else:
            c.values["certificate"] = doc
    _not_future(c, "moved_in_on", "転入日", today)


def _move_in_abroad(c: Checked, raw: Mapping[str, Any], today: dt.date, ctx: Mapping[str, Any]) -> None:
    _not_future(c, "birth_date", "生年月日", today)
    _not_future(c, "moved_in_on", "転入日", today)
    _after_birth(c, "moved_in_on", "転入日", c.values.get("birth_date"))
    if "sex" in c.values:
        c.values["sex"] = int(c.values["sex"])


_RULES: dict[str, Callable[[Checked, Mapping[str, Any], dt.date, Mapping[str, Any]], None]] = {
    "birth": _birth,
    "move": _move,
    "death": _death,
    "name": _name,
    "move-out": _move_out,
    "abroad": _abroad,
    "move-in": _move_in,
    "move-in-abroad": _move_in_abroad,
}

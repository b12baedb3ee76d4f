"""データ標準レイアウト: the information categories exchanged over the network, as versioned JSON Schemas.

Each category (特定個人情報の項目 of the legal table, e.g. 地方税関係情報) has one schema file per version
(``<file>-v<N>.json``) whose ``title`` is the category's name.  The provider's intermediate server
validates every 副本 against its category's schema when it is registered, and the querier validates
the data of every answer against the version the answer names (論点6).  A schema never has a field
for a 個人番号 or 住民票コード, and ``additionalProperties`` is false everywhere, so none can slip in.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker


class LayoutError(Exception):
    """Data that does not fit its category's layout, or a category or version that does not exist."""


_FILES = {  # category → file stem
    "地方税関係情報": "chihouzei",
    "住民票関係情報": "juminhyo",
    "児童手当関係情報": "jidouteate",
    "年金給付関係情報": "nenkin",
}
CATEGORIES = tuple(_FILES)


@dataclass(frozen=True)
class Layout:
    category: str
    version: int
    schema: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.category}/{self.version}"


@cache
def _versions(category: str) -> dict[int, Layout]:
    try:
        stem = _FILES[category]
    except KeyError:
        raise LayoutError(
            f"unknown information category {category!r} (known: {', '.join(CATEGORIES)})"
        ) from None
    out: dict[int, Layout] = {}
    for entry in resources.files(__package__).iterdir():
        name = entry.name
        if name.startswith(stem + "-v") and name.endswith(".json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            if schema.get("title") != category:
                raise LayoutError(f"layout file {name} is titled {schema.get('title')!r}, not {category!r}")
            Draft202012Validator.check_schema(schema)
            version = int(schema["x-version"])
            out[version] = Layout(category, version, schema)
    if not out:
        raise LayoutError(f"no layout file for {category}")
    return out


def layout(category: str, version: int | None = None) -> Layout:
    """The layout of ``category`` at ``version`` (the newest when None)."""
    versions = _versions(category)
    if version is None:
        return versions[max(versions)]
    try:
        return versions[version]
    except KeyError:
        raise LayoutError(f"{category} has no layout version {version}") from None


def validate(category: str, data: Any, version: int | None = None) -> Layout:
    """Check ``data`` against the layout; LayoutError lists where it does not fit (never the values)."""
    lay = layout(category, version)
    if _fast_validator(lay.category, lay.version).is_valid(data):
        return lay
    validator = _validator(lay.category, lay.version)
    problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if problems:
        where = "; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.validator} {_rule(e.validator_value)}"
            for e in problems[:10]
        )
        raise LayoutError(f"{lay.name}: {where}")
    return lay


@cache
def _validator(category: str, version: int) -> Draft202012Validator:
    return Draft202012Validator(layout(category, version).schema, format_checker=FormatChecker())


@cache
def _fast_validator(category: str, version: int) -> Any:
    """The same schema compiled by jsonschema-rs: the check every answer and 副本 goes through
    (about a hundred times faster).  Only data it refuses is looked at again by ``_validator``,
    whose errors name where the data does not fit; so both must refuse data for it to be refused."""
    schema = dict(layout(category, version).schema)
    # jsonschema-rs wants $id as a URI, in ASCII: the category name in it is percent-encoded
    schema["$id"] = urllib.parse.quote(str(schema.get("$id", "")), safe=":/")
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def _rule(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, dict) else "(schema)"
    return text if len(text) < 60 else text[:57] + "..."


def catalogue() -> list[dict[str, Any]]:
    """Every category with its versions, for the CLI and the docs."""
    return [
        {"category": c, "versions": sorted(_versions(c)), "schema_id": layout(c).schema.get("$id")}
        for c in CATEGORIES
    ]

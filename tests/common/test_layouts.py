"""The layouts' two validators agree: jsonschema-rs (the fast check on every answer and 副本) and
jsonschema (which explains a refusal).  Data is accepted only if the fast one accepts it, so it
must never accept what jsonschema refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kojinbango.common.layouts import LayoutError, _fast_validator, _validator, validate

# values near each rule's edges, of the right type and of the wrong ones
ints = st.one_of(st.integers(-5, 5), st.integers(1985, 2105), st.integers(), st.floats(allow_nan=False))
anything = st.one_of(st.none(), st.booleans(), ints, st.text(max_size=5), st.lists(st.integers(), max_size=2))
dates = st.one_of(
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["2024-02-30", "20240101", "2024-1-1", "2024-01-01T00:00:00", "令和6年1月1日", ""]),
)


def _maybe(d: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dictionaries with every key (values near the rules' edges), then mostly one change: a value
    of any type, a key left out, or a key the layout does not have."""
    full = st.fixed_dictionaries(d)
    change = st.sampled_from([None, "value", "drop", "extra"])
    key = st.sampled_from(sorted(d))

    def mutate(x: dict[str, Any], how: str | None, k: str, v: Any) -> dict[str, Any]:
        x = dict(x)
        if how == "value":
            x[k] = v
        elif how == "drop":
            x.pop(k)
        elif how == "extra":
            x["my_number"] = "123456789012"
        return x

    return st.builds(mutate, full, change, key, anything)


assessment = _maybe({"fiscal_year": ints, "taxable": st.booleans(), "total_income": ints, "tax_amount": ints})
tax = st.one_of(_maybe({"assessments": st.lists(assessment, max_size=3)}), anything)
member = _maybe(
    {
        "name": st.text(max_size=3),
        "birth_date": dates,
        "sex": st.sampled_from([1, 2, 3, 4, True, "1"]),
        "relationship": st.text(max_size=3),
    }  # fmt: skip
)
resident = _maybe(
    {
        "status": st.sampled_from(["current", "moved_out", "dead", "gone"]),
        "name": st.text(max_size=3),
        "kana": st.text(max_size=3),
        "birth_date": dates,
        "sex": st.sampled_from([1, 2, 3, 0, False]),
        "address": st.text(max_size=3),
        "removed_on": st.one_of(st.none(), dates),
        "household": _maybe({"members": st.lists(member, max_size=3)}),
    }  # fmt: skip
)


def _agree(category: str, data: Any) -> None:
    slow = _validator(category, 1).is_valid(data)
    fast = _fast_validator(category, 1).is_valid(data)
    assert fast == slow, (category, data)


@settings(max_examples=400)
@given(tax)
def test_both_validators_agree_on_tax_information(data: Any) -> None:
    _agree("地方税関係情報", data)


@settings(max_examples=400)
@given(resident)
def test_both_validators_agree_on_resident_information(data: Any) -> None:
    _agree("住民票関係情報", data)


def test_valid_data_passes_and_a_refusal_says_where() -> None:
    good = {"assessments": [{"fiscal_year": 2025, "taxable": True, "total_income": 1, "tax_amount": 0}]}
    assert validate("地方税関係情報", good).name == "地方税関係情報/1"
    bad = {"assessments": [{"fiscal_year": 1800, "taxable": True, "total_income": 1, "tax_amount": 0}]}
    with pytest.raises(LayoutError, match=r"assessments/0/fiscal_year: minimum 1990"):
        validate("地方税関係情報", bad)
    with pytest.raises(LayoutError, match="additionalProperties"):
        validate("地方税関係情報", {**good, "my_number": "123456789012"})

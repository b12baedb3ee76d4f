"""A municipality opens a sealed answer once per query: to check it (and keep it) — the view it
shows is made from what that check opened, not from a second opening."""

from __future__ import annotations

from typing import Any

import pytest
from exchange_helpers import args_of, querier_service, scenarios

from kojinbango.nation import Nation


def test_the_municipality_opens_each_answer_once(nation: Nation, monkeypatch: pytest.MonkeyPatch) -> None:
    command = next(
        s["command"] for s in scenarios(nation.topology.path.parent) if "child-allowance" in s["command"]
    )
    a = args_of(command)
    service = querier_service(nation, a["querier"])
    assert service.opener is not None
    opened: list[str] = []
    real = service.opener.open

    def counting(token: str, key_token: str | None = None) -> Any:
        opened.append(token)
        return real(token, key_token)

    monkeypatch.setattr(service.opener, "open", counting)
    answer = service.query(a["my-number"], a["provider"], a["affair"], a["info"])
    assert answer["status"] == "answered" and answer["signature_valid"] is True
    assert answer["data"] and len(opened) == 1
    # a stored answer shown later is opened again (only the querier's key reads it)
    shown = next(x for x in service.answers() if x["exchange_id"] == answer["exchange_id"])
    assert shown["data"] == answer["data"] and len(opened) == 2

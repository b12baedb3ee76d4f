"""The bodies of the staff linkage API (``/staff/linkage/api/…``) that every querier serves alike —
the municipalities and the agency: a query, one exchange by its 処理通番, the queries waiting."""

from __future__ import annotations

from pydantic import BaseModel, Field


class QueryForm(BaseModel):
    """情報照会 by staff of the querier, who hold the 個人番号 (it becomes a 符号 before it leaves)."""

    my_number: str = Field(min_length=1, max_length=20)
    provider: str = Field(min_length=1, max_length=40)
    affair: str = Field(min_length=1, max_length=40)
    info: str = Field(min_length=1, max_length=40)
    staff: str = Field(default="職員", max_length=100)
    wait_seconds: float = Field(default=10.0, ge=0, le=120)


class ExchangeForm(BaseModel):
    """One exchange, by its 処理通番."""

    exchange_id: str = Field(min_length=1, max_length=32)


class WaitingForm(BaseModel):
    """The queries still waiting for an answer (回答待ち)."""

    collect: bool = False  # ask for each waiting answer again first (結果取得要求)

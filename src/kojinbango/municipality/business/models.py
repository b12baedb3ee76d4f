"""既存業務 databases: each business system's own 宛名 records and the business data kept on them.

Every business system (個人住民税 課税台帳, 児童手当 …) predates the number and gave each person its
own 宛名番号 (here ``legacy_id``) with its own, older copy of the 4情報.  The raw values are kept
exactly as the system holds them; the ``*_key`` columns are derived matching keys only.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING

VERSION_TABLE = "alembic_version_business"
MIGRATIONS = "kojinbango.municipality.business:migrations"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class BusinessRecord(Base):
    """業務宛名: one person as one business system knows them (its 宛名番号 and its copy of 4情報)."""

    __tablename__ = "business_records"
    __table_args__ = (
        UniqueConstraint("system", "legacy_id"),
        Index("ix_business_records_system_id", "system", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(40), nullable=False)  # 業務システム (tax, welfare …)
    legacy_id: Mapped[str] = mapped_column(String(40), nullable=False)  # 業務宛名番号 (既存番号)
    name: Mapped[str] = mapped_column(String(200), nullable=False)  # 氏名 as held
    kana: Mapped[str] = mapped_column(String(200), nullable=False, default="")  # フリガナ ("" = none)
    birth_date_text: Mapped[str] = mapped_column(String(40), nullable=False)  # 生年月日 as held
    birth_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    sex: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # 1 男 2 女 3 その他
    address: Mapped[str] = mapped_column(String(400), nullable=False)  # 住所 as held
    name_key: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    kana_key: Mapped[str] = mapped_column(String(200), nullable=False)
    address_key: Mapped[str] = mapped_column(String(400), nullable=False)
    source: Mapped[str] = mapped_column(String(200), nullable=False, default="")  # e.g. the CSV file
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


class TaxAssessment(Base):
    """課税台帳 (個人住民税): one person's assessment for one 年度, with the income it rests on."""

    __tablename__ = "tax_assessments"
    __table_args__ = (UniqueConstraint("record_id", "fiscal_year"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("business_records.id"), nullable=False)
    fiscal_year: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # 年度
    income: Mapped[int] = mapped_column(BigInteger, nullable=False)  # 合計所得金額 (円)
    tax_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)  # 年税額 (円)


class ChildAllowance(Base):
    """児童手当: a recipient (受給者) and one child (児童) counted for the allowance."""

    __tablename__ = "child_allowances"
    __table_args__ = (UniqueConstraint("recipient_id", "child_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("business_records.id"), nullable=False, index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("business_records.id"), nullable=False, index=True)
    started_on: Mapped[dt.date] = mapped_column(Date, nullable=False)  # 支給開始
    monthly_amount: Mapped[int] = mapped_column(Integer, nullable=False)  # 月額 (円)


class BankAccount(Base):
    """振込口座: the account a business system pays to (e.g. 児童手当) or collects from."""

    __tablename__ = "bank_accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("business_records.id"), nullable=False, index=True)
    bank_code: Mapped[str] = mapped_column(String(4), nullable=False)  # 金融機関コード
    branch_code: Mapped[str] = mapped_column(String(3), nullable=False)  # 店番
    account_type: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # 1 普通 2 当座
    account_number: Mapped[str] = mapped_column(String(7), nullable=False)  # 口座番号
    holder_kana: Mapped[str] = mapped_column(String(100), nullable=False)  # 口座名義 (カナ)


class FormNumber(Base):
    """A 個人番号 written on a form the business system received (申告書, 認定請求書 …).

    Kept as written: a form can carry a family member's number, or several numbers (DOMAIN.md §9.5);
    the 総点検 (``audit links``) compares them with the person the record is linked to.
    """

    __tablename__ = "form_numbers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("business_records.id"), nullable=False, index=True)
    my_number: Mapped[str] = mapped_column(String(12), nullable=False, index=True)
    form: Mapped[str] = mapped_column(String(60), nullable=False)
    received_on: Mapped[dt.date] = mapped_column(Date, nullable=False)


class ChildAllowanceClaim(Base):
    """児童手当 認定請求: who received it, for which child, the declared income, by whom and why."""

    __tablename__ = "child_allowance_claims"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # 受付番号
    recipient_record_id: Mapped[int] = mapped_column(
        ForeignKey("business_records.id"), nullable=False, index=True
    )
    child_record_id: Mapped[int] = mapped_column(ForeignKey("business_records.id"), nullable=False)
    allowance_id: Mapped[int] = mapped_column(ForeignKey("child_allowances.id"), nullable=False)
    bank_account_id: Mapped[int] = mapped_column(ForeignKey("bank_accounts.id"), nullable=False)
    received_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    income_year: Mapped[int] = mapped_column(SmallInteger, nullable=False)  # 所得の年 (前年)
    declared_income: Mapped[int] = mapped_column(BigInteger, nullable=False)  # 所得額 (円), as declared
    staff: Mapped[str] = mapped_column(String(40), nullable=False)
    purpose: Mapped[str] = mapped_column(String(60), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)

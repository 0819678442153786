"""Tables of the indicators: a computation (``indicator_run``) and its values (``indicator_value``).

A run is written once and never updated: the values of a month as known on a date are those of the
newest run of that month computed by then (a stocktake pack for a past date shows what was known
then). ``dim``/``key`` name the breakdown: ``total``/``all``, ``district``/``<district id>``,
``tehsil``/``<tehsil id>``, ``program``/``<program code>``, ``pillar``/``<pillar>``,
``stage``/``<life-cycle stage>``, ``decile``/``1``..``10``, ``source``/``<source>``; ``district_id`` is
set whenever the cell belongs to one district (scoped reads filter on it).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Float, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from isps.db import Base, BigId


class IndicatorRun(Base):
    """One computation of every indicator for one month (as of the month's last day)."""

    __tablename__ = "indicator_run"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    month: Mapped[date] = mapped_column(Date, index=True)             # the first day of the month
    computed_at: Mapped[datetime] = mapped_column(DateTime)
    computed_by: Mapped[str] = mapped_column(String(80))
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


class IndicatorValue(Base):
    """One indicator's value for one breakdown cell of a run: the value and, for a rate, its numerator
    and denominator (so small cells can be suppressed and cells summed)."""

    __tablename__ = "indicator_value"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("indicator_run.id"))
    month: Mapped[date] = mapped_column(Date)
    code: Mapped[str] = mapped_column(String(60))
    dim: Mapped[str] = mapped_column(String(12))
    key: Mapped[str] = mapped_column(String(60))
    district_id: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    numerator: Mapped[float | None] = mapped_column(Float, nullable=True)
    denominator: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_indicator_value_run_code", "run_id", "code", "dim", "key"),
                      Index("ix_indicator_value_code_month", "code", "month", "dim"))


TABLES = ("indicator_run", "indicator_value")

"""The program catalogue: about a hundred social protection schemes run by Punjab's departments and
the federal agencies, each classified the way the Integrated Social Protection System reports them.

* ``pillar``: social assistance, social insurance, labour market or social care;
* ``life_stage``: early childhood, childhood, youth, working age, old age, all ages;
* ``benefit_type``: cash, in-kind or service, with an amount (PKR) and a frequency;
* ``kind``: what the benefit is for (unconditional cash transfer, education stipend, old-age
  pension ...). Two programs of the same kind pay for the same need, so one person in both is a
  duplicate benefit (see :mod:`isps.linkage.reports`);
* ``unit``: whether the benefit is per household or per individual.

The shipped catalogue lives in ``data/catalogue.json`` and is seeded by :func:`install_catalogue`
on every migrate; codes of BISP programs are the eligibility rules' program codes.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from sqlalchemy import Boolean, Float, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from isps.db import Base

PILLARS = ("social_assistance", "social_insurance", "labour_market", "social_care")
LIFE_STAGES = ("early_childhood", "childhood", "youth", "working_age", "old_age", "all_ages")
BENEFIT_TYPES = ("cash", "in_kind", "service")
PAYMENTS_PER_YEAR = {"daily": 250.0, "weekly": 52.0, "monthly": 12.0, "quarterly": 4.0, "half_yearly": 2.0,
                     "yearly": 1.0, "once": 1.0, "ongoing": 0.0}


class Program(Base):
    __tablename__ = "program"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    agency: Mapped[str] = mapped_column(String(120))
    level: Mapped[str] = mapped_column(String(10))  # federal | provincial
    pillar: Mapped[str] = mapped_column(String(20))
    life_stage: Mapped[str] = mapped_column(String(16))
    benefit_type: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(40))
    unit: Mapped[str] = mapped_column(String(10))  # household | individual
    amount_pkr: Mapped[float | None] = mapped_column(Float, nullable=True)
    frequency: Mapped[str] = mapped_column(String(12))
    payments_per_year: Mapped[float] = mapped_column(Float)
    funding_source: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def yearly_value(self) -> float:
        """What one beneficiary receives in a year (PKR); 0 where the benefit has no cash value."""
        return (self.amount_pkr or 0.0) * self.payments_per_year


@lru_cache(maxsize=1)
def shipped() -> tuple[dict, ...]:
    data = json.loads(resources.files("isps.programs").joinpath("data/catalogue.json").read_text(encoding="utf-8"))
    out = []
    for p in data["programs"]:
        assert p["pillar"] in PILLARS and p["life_stage"] in LIFE_STAGES and p["benefit_type"] in BENEFIT_TYPES, p
        out.append({**p, "payments_per_year": PAYMENTS_PER_YEAR[p["frequency"]], "version": data["version"]})
    return tuple(out)


def install_catalogue(session: Session) -> int:
    """Insert the shipped programs that are missing and refresh those changed in a newer shipped
    version. Returns how many rows were written."""
    have = {p.code: p for p in session.scalars(select(Program))}
    written = 0
    for spec in shipped():
        row = have.get(spec["code"])
        if row is None:
            session.add(Program(**spec, active=True))
            written += 1
        elif row.version < spec["version"]:
            for k, v in spec.items():
                setattr(row, k, v)
            written += 1
    session.flush()
    return written


def programs(session: Session, *, pillar: str | None = None, agency: str | None = None) -> list[Program]:
    stmt = select(Program).order_by(Program.level, Program.agency, Program.code)
    if pillar:
        stmt = stmt.where(Program.pillar == pillar)
    if agency:
        stmt = stmt.where(Program.agency == agency)
    return list(session.scalars(stmt))


def get(session: Session, code: str) -> Program | None:
    return session.get(Program, code)

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
on every migrate; codes of BISP programs are the eligibility rules' program codes. Each program also
carries its Urdu name and its agency's (``name_ur``, ``agency_ur``): these are display words, read
from the shipped file by :func:`display_name` and :func:`agency_name`, not stored in the table.

It also carries the rules of combination, as data (``program_rule``): the kinds a person may draw
only once (``exclusive_kind``), the pairs of programs or kinds that may not be combined
(``incompatible``, read both ways, with the reason) and the yearly value a household may receive from
all programs together (``household_ceiling``). :func:`conflicts` turns them into the list of programs
one program cannot be combined with; the enrolment filter (:mod:`isps.programs.enrolment`) and the
duplicate-benefit reports (:mod:`isps.linkage.reports`) read them from here.

The catalogue is reference data with no behaviour, so it sits at the bottom, beside the registry:
``linkage/`` (the beneficiary lines' foreign key) and ``programs/`` both import it downward.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from sqlalchemy import Boolean, Float, Integer, String, delete, select
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
def _shipped_file() -> dict:
    return json.loads(resources.files("isps.catalogue").joinpath("data/catalogue.json").read_text(encoding="utf-8"))


RULES = ("exclusive_kind", "incompatible", "household_ceiling")


class ProgramRule(Base):
    """One rule of combination. ``exclusive_kind``: ``a`` is a kind drawn once per person (per
    household where a program is per household). ``incompatible``: ``a`` and ``b`` (a program code,
    or ``kind:<kind>``) may not be combined, both ways, because ``why``. ``household_ceiling``:
    ``value`` PKR a year, all programs together."""

    __tablename__ = "program_rule"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(20))
    a: Mapped[str | None] = mapped_column(String(60), nullable=True)
    b: Mapped[str | None] = mapped_column(String(60), nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    why: Mapped[str | None] = mapped_column(String(200), nullable=True)
    why_ur: Mapped[str | None] = mapped_column(String(200), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


def shipped_rules() -> list[dict]:
    data = _shipped_file()
    dup = data.get("duplication", {})
    rows = [{"rule": "exclusive_kind", "a": k, "b": None, "value": None, "why": None, "why_ur": None}
            for k in dup.get("exclusive_kinds", [])]
    rows += [{"rule": "incompatible", "a": r["a"], "b": r["b"], "value": None, "why": r.get("why"),
              "why_ur": r.get("why_ur")}
             for r in dup.get("incompatible", [])]
    if dup.get("household_yearly_ceiling_pkr") is not None:
        rows.append({"rule": "household_ceiling", "a": None, "b": None,
                     "value": float(dup["household_yearly_ceiling_pkr"]), "why": None, "why_ur": None})
    return [{**r, "version": data["version"]} for r in rows]


URDU_FIELDS = ("name_ur", "agency_ur")


@lru_cache(maxsize=1)
def _names() -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Program code -> (English name, Urdu name), and agency (as the catalogue spells it in English)
    -> its Urdu name, from the shipped file."""
    programs = _shipped_file()["programs"]
    return ({p["code"]: (p["name"], p.get("name_ur") or p["name"]) for p in programs},
            {p["agency"]: p.get("agency_ur") or p["agency"] for p in programs})


def display_name(code: str, lang: str = "en") -> str:
    """A program's one display name in ``lang`` (``en`` or ``ur``), never its code unless the
    catalogue does not know it."""
    names = _names()[0].get(code)
    if names is None:
        return code
    return names[1] if lang == "ur" else names[0]


def agency_name(agency: str, lang: str = "en") -> str:
    """An agency's name in ``lang``: ``agency`` is its English name as the catalogue (and the
    ``program`` table) spells it; an agency the catalogue does not know stays as written."""
    return _names()[1].get(agency, agency) if lang == "ur" else agency


@lru_cache(maxsize=1)
def shipped() -> tuple[dict, ...]:
    data = _shipped_file()
    out = []
    for p in data["programs"]:
        assert p["pillar"] in PILLARS and p["life_stage"] in LIFE_STAGES and p["benefit_type"] in BENEFIT_TYPES, p
        stored = {k: v for k, v in p.items() if k not in URDU_FIELDS}
        out.append({**stored, "payments_per_year": PAYMENTS_PER_YEAR[p["frequency"]], "version": data["version"]})
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
    stored = session.scalar(select(ProgramRule.version).order_by(ProgramRule.version.desc()).limit(1))
    rules = shipped_rules()
    if rules and (stored is None or stored < rules[0]["version"]):
        session.execute(delete(ProgramRule))
        session.add_all(ProgramRule(**r) for r in rules)
        written += len(rules)
    session.flush()
    return written


@dataclass(frozen=True)
class Conflict:
    """Another program one cannot be combined with, and why: ``rule`` is ``same_kind`` (both pay
    for ``kind``) or ``incompatible`` (with the catalogue's reason ``why``)."""

    program: str
    rule: str
    why: str
    why_ur: str = ""


def conflicts(session: Session, code: str, extra: tuple[str, ...] = ()) -> list[Conflict]:
    """The programs ``code`` may not be combined with, from the catalogue's rules (read both ways)
    and ``extra`` (a program's own policy list): a small computation over the catalogue (about a
    hundred rows), done once per enrolment run, never per person."""
    progs = {p.code: p for p in session.scalars(select(Program))}
    me = progs.get(code)
    rules = list(session.scalars(select(ProgramRule)))
    out: dict[str, Conflict] = {}

    def members(ref: str) -> list[str]:
        if ref.startswith("kind:"):
            return [c for c, p in progs.items() if p.kind == ref[5:]]
        return [ref] if ref in progs else []

    def mine(ref: str) -> bool:
        return ref == code or (me is not None and ref == f"kind:{me.kind}")

    for r in rules:
        if r.rule != "incompatible" or not r.a or not r.b:
            continue
        for side, other in ((r.a, r.b), (r.b, r.a)):
            if mine(side):
                for c in members(other):
                    if c != code:
                        out.setdefault(c, Conflict(c, "incompatible", r.why or "", r.why_ur or ""))
    if me is not None and any(r.rule == "exclusive_kind" and r.a == me.kind for r in rules):
        for c, p in progs.items():
            if p.kind == me.kind and c != code:
                out.setdefault(c, Conflict(c, "same_kind", me.kind))
    for c in extra:
        if c != code:
            out.setdefault(c, Conflict(c, "incompatible", "the program's policy does not allow both",
                                         "پروگرام کی پالیسی دونوں کی اجازت نہیں دیتی"))
    return sorted(out.values(), key=lambda x: x.program)


def household_ceiling(session: Session) -> float | None:
    """The most a household may receive in a year from all programs together (PKR), or None."""
    return session.scalar(select(ProgramRule.value).where(ProgramRule.rule == "household_ceiling").limit(1))


def programs(session: Session, *, pillar: str | None = None, agency: str | None = None) -> list[Program]:
    stmt = select(Program).order_by(Program.level, Program.agency, Program.code)
    if pillar:
        stmt = stmt.where(Program.pillar == pillar)
    if agency:
        stmt = stmt.where(Program.agency == agency)
    return list(session.scalars(stmt))


def get(session: Session, code: str) -> Program | None:
    return session.get(Program, code)

"""Find a citizen at the One Window counter: one search box that takes a CNIC, a B-form number, a
mobile number or a name (with the father's or husband's name if the counter has it).

* A 13-digit number (dashes or not) is a CNIC or a B-form: NADRA prints both alike and the registry
  keeps both in ``individual.cnic`` (``id_document`` says which); found through its index.
* A mobile number in any common form (``0300-1234567``, ``+92 300 1234567``, ``923001234567``,
  ``3001234567``) is written ``03001234567`` and looked up, with the forms partners file it in,
  through ``ix_individual_phone`` (migration ``0016_onewindow``).
* Anything else with letters is a name, matched spelling-blind: each part of the typed name, without
  titles and "Muhammad" (:mod:`isps.linkage.names`), must be a whole part of the person's name once
  both are reduced to a consonant skeleton (:func:`skeleton`: the transliteration pairs kh/k, gh/g,
  q/k, z/s, w/v, sh/s, ph/f folded, vowels, ``h`` and ``y`` dropped, doubled letters once), so
  ``Usman`` finds ``Osman`` and ``Usmaan``, ``Ayesha`` finds ``Aisha``, ``Mohammad Rehman`` finds
  ``Muhammad Rahman``. The skeleton of the stored names is computed by the database with the same
  steps (:func:`skeleton_sql`), as the registry search reads names: a scan of the district's people
  (a scoped user's district only), paged by keyset over the individual id.

Results are people (current members, and those who died or left, marked so), scoped to the user's
district; the caller audits each search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import and_, func, literal, or_, select
from sqlalchemy.orm import Session

from isps.linkage import names
from isps.registry import cnic as cnic_rules
from isps.registry.models import Household, Individual

PAGE_MAX = 200
QUERY_MAX = 100
# the steps of the skeleton, in order (the same in Python and in SQL)
_FOLDS = (("-", " "), (".", " "), ("kh", "k"), ("gh", "g"), ("sh", "s"), ("ph", "f"), ("th", "t"), ("dh", "d"),
          ("bh", "b"), ("ck", "k"), ("q", "k"), ("x", "ks"), ("z", "s"), ("w", "v"),
          *((v, "") for v in "aeiouhy"))
_DOUBLES = tuple((c + c, c) for c in "bcdfgjklmnprstv")
_PHONE = re.compile(r"^(?:\+?92|0092|0)?(3\d{9})$")


class FindError(ValueError):
    """A search that cannot be run as typed; the message names the field."""


def skeleton(text: str) -> str:
    out = text.lower()
    for a, b in _FOLDS + _DOUBLES:
        out = out.replace(a, b)
    return " ".join(out.split())


def skeleton_sql(session: Session, column):
    """The same skeleton, computed by the database: on PostgreSQL the same steps as nested REPLACE;
    SQLite's parser refuses an expression nested that deep, so there :func:`skeleton` itself is
    registered as the connection's function ``isps_skeleton``."""
    if session.get_bind().dialect.name == "sqlite":
        raw = session.connection().connection.driver_connection
        raw.create_function("isps_skeleton", 1, lambda v: None if v is None else skeleton(v), deterministic=True)
        return func.isps_skeleton(column)
    expr = func.lower(column)
    for a, b in _FOLDS + _DOUBLES:
        expr = func.replace(expr, a, b)
    return expr


def name_parts(text: str) -> list[str]:
    """The skeletons of the parts of a typed name that tell people apart (no titles, no "Muhammad")."""
    norm = names.normalise(text) or ""
    kept = [t for t in norm.split() if t not in names.HONORIFICS and t not in names.FILLER]
    return [s for s in (skeleton(t) for t in kept) if s]


def phone_forms(raw: str) -> list[str] | None:
    """The ways a mobile number is written in the registry, from any common form typed; None when
    the text is not a Pakistani mobile number."""
    digits = re.sub(r"[\s\-()]", "", raw.strip())
    m = _PHONE.match(digits)
    if not m:
        return None
    n = m.group(1)
    return [f"0{n}", f"+92{n}", f"92{n}", f"0{n[:3]}-{n[3:]}"]


@dataclass(frozen=True)
class Query:
    kind: str            # cnic | phone | name
    value: str           # the 13 digits, the phone as 03XXXXXXXXX, or the name as typed
    father: str = ""

    def shown(self) -> str:
        """What was asked, fit for the audit log: numbers masked."""
        if self.kind == "cnic":
            return f"CNIC/B-form {cnic_rules.mask(self.value)}"
        if self.kind == "phone":
            return f"mobile {cnic_rules.mask_raw(self.value)}"
        return f"name {self.value[:60]!r}" + (f", father/husband {self.father[:60]!r}" if self.father else "")


def parse(text: str, father: str = "") -> Query:
    """What the counter typed: a CNIC/B-form, a mobile number or a name."""
    text, father = (text or "").strip(), (father or "").strip()
    if not text:
        raise FindError("query: type a CNIC, B-form number, mobile number or name")
    if len(text) > QUERY_MAX or len(father) > QUERY_MAX:
        raise FindError(f"query: at most {QUERY_MAX} characters")
    if not re.search(r"[^\W\d_]", text):  # no letters: a number
        digits = re.sub(r"\D", "", text)
        if len(digits) == 13 and not text.strip().startswith("+"):
            return Query("cnic", cnic_rules.normalise(digits))
        forms = phone_forms(text)
        if forms:
            return Query("phone", forms[0])
        raise FindError(f"query: '{cnic_rules.mask_raw(text)}' is neither a CNIC or B-form (13 digits, "
                        "NNNNN-NNNNNNN-N) nor a mobile number (03XX-XXXXXXX)")
    if not name_parts(text):
        raise FindError("query: the name has no part to search by (titles and 'Muhammad' alone are not enough)")
    if father and not name_parts(father):
        raise FindError("father: the father's or husband's name has no part to search by")
    return Query("name", text, father)


def _where(session: Session, q: Query):
    if q.kind == "cnic":
        return Individual.cnic == q.value
    if q.kind == "phone":
        return Individual.phone.in_(phone_forms(q.value))
    conds = []
    for column, typed in ((Individual.full_name, q.value), (Individual.father_husband_name, q.father)):
        if not typed:
            continue
        padded = literal(" ") + skeleton_sql(session, column) + literal(" ")
        conds += [padded.like(f"% {part} %") for part in name_parts(typed)]
    return and_(*conds)


def _filtered(session: Session, q: Query, district_scope: int | None, after: int | None = None):
    stmt = (select(Individual.id, Individual.household_id, Individual.full_name, Individual.father_husband_name,
                   Individual.cnic, Individual.id_document, Individual.sex, Individual.date_of_birth,
                   Individual.relation_to_head, Individual.date_of_death, Individual.left_on,
                   Household.ref, Household.district_id, Household.tehsil_id)
            .join(Household, Household.id == Individual.household_id).where(_where(session, q)))
    if district_scope is not None:
        stmt = stmt.where(Individual.district_id == district_scope)
    if after is not None:
        stmt = stmt.where(Individual.id > after)
    return stmt


def count(session: Session, q: Query, district_scope: int | None = None) -> int:
    return session.scalar(select(func.count()).select_from(_filtered(session, q, district_scope).subquery())) or 0


@dataclass
class Page:
    rows: list[dict]
    next_after: int | None


def find(session: Session, q: Query, district_scope: int | None = None, *, after: int | None = None,
         limit: int = 25) -> Page:
    """People matching the query in id order, a page at a time (keyset: after the last id)."""
    if not 1 <= limit <= PAGE_MAX:
        raise FindError(f"limit must be from 1 to {PAGE_MAX}, not {limit}")
    rows = session.execute(_filtered(session, q, district_scope, after).order_by(Individual.id).limit(limit + 1)).all()
    out = []
    for r in rows[:limit]:
        d = dict(r._mapping)
        d["cnic_masked"] = cnic_rules.mask(d.pop("cnic"))
        d["status"] = "deceased" if d["date_of_death"] else "left" if d["left_on"] else "current"
        out.append(d)
    return Page(out, out[-1]["id"] if len(rows) > limit else None)


def outside_scope(session: Session, q: Query, district_scope: int) -> bool:
    """A CNIC, B-form or mobile number registered only outside the user's district (the page says so,
    and the refusal is audited); not asked of names, which are not identifiers."""
    if q.kind == "name":
        return False
    return session.scalar(select(func.count()).select_from(Individual).where(
        _where(session, q), Individual.district_id != district_scope)) > 0 and count(session, q, district_scope) == 0

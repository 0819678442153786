"""Registry search with the PMT score beside each household: the list a program officer or
district officer filters by place and score. It lives in targeting because it joins the
scores; the registry below knows nothing of them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isps import keyset
from isps.registry import cnic as cnic_rules
from isps.registry.models import Household, Individual
from isps.registry.service import OutOfScope
from isps.targeting.models import PmtScore


SORTS = {"id": Household.id, "pmt": PmtScore.score}
NAME_MAX = 100     # a name typed into a search box; a longer LIKE pattern is refused by SQLite as "too complex"
PAGE_MAX = 1_000


class SearchError(ValueError):
    """A search the registry cannot run as asked; the message names the parameter."""


def like_pattern(text: str) -> str:
    """``%text%`` with ``%``, ``_`` and the escape character itself taken literally (use with
    ``escape="\\"``): a name typed with a percent sign must not match every household."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filtered(*, district_id: int | None, tehsil_id: int | None, pmt_min: float | None, pmt_max: float | None,
              name: str | None, model_id: int | None, district_scope: int | None, counting: bool = False,
              after: int | None = None, score_by_district: bool = False):
    """The search's rows before paging: one query shared by the page and its count. The count
    joins the head and the score only when a filter needs them (one head per household and one
    score per household and model, so the outer joins never change how many rows there are)."""
    if name and len(name.strip()) > NAME_MAX:
        raise SearchError(f"name must be at most {NAME_MAX} characters, not {len(name.strip()):,}")
    if district_scope is not None:
        if district_id is not None and district_id != district_scope:
            raise OutOfScope("you can search only your own district")
        district_id = district_scope
    head = select(Individual.household_id, Individual.full_name, Individual.cnic).where(
        Individual.relation_to_head == "head")
    if after is not None:  # the planner does not carry the cursor into an outer join: without it, a merge
        head = head.where(Individual.household_id > after)  # join reads every head before the page
    head = head.subquery()
    score_join = (PmtScore.household_id == Household.id) & (PmtScore.model_id == (model_id or -1))
    if score_by_district and district_id is not None:  # the same score rows, said of the score's own district
        score_join &= PmtScore.district_id == district_id  # so the (model, district, score) index reads them in order
    if counting:
        stmt = select(Household.id)
        if pmt_min is not None or pmt_max is not None:
            stmt = stmt.outerjoin(PmtScore, score_join)
        if name:
            stmt = stmt.outerjoin(head, head.c.household_id == Household.id)
    else:
        stmt = (select(Household.id, Household.ref, Household.district_id, Household.tehsil_id, Household.urban,
                       Household.address, PmtScore.score, head.c.full_name, head.c.cnic)
                .outerjoin(PmtScore, score_join).outerjoin(head, head.c.household_id == Household.id))
    if district_id is not None:
        stmt = stmt.where(Household.district_id == district_id)
    if tehsil_id is not None:
        stmt = stmt.where(Household.tehsil_id == tehsil_id)
    if pmt_min is not None:
        stmt = stmt.where(PmtScore.score >= pmt_min)
    if pmt_max is not None:
        stmt = stmt.where(PmtScore.score <= pmt_max)
    if name:
        stmt = stmt.where(head.c.full_name.ilike(like_pattern(name.strip()), escape="\\"))
    return stmt


def count_households(session: Session, *, district_id: int | None = None, tehsil_id: int | None = None,
                     pmt_min: float | None = None, pmt_max: float | None = None, name: str | None = None,
                     model_id: int | None = None, district_scope: int | None = None) -> int:
    """How many households :func:`search_households` pages through with the same filters."""
    stmt = _filtered(district_id=district_id, tehsil_id=tehsil_id, pmt_min=pmt_min, pmt_max=pmt_max, name=name,
                     model_id=model_id, district_scope=district_scope, counting=True)
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


@dataclass
class SearchPage:
    rows: list[dict]
    next_after: int | None


def search_households(session: Session, *, district_id: int | None = None, tehsil_id: int | None = None,
                      pmt_min: float | None = None, pmt_max: float | None = None, name: str | None = None,
                      model_id: int | None = None, after: int | None = None, limit: int = 50,
                      district_scope: int | None = None, sort: keyset.Sort | None = None) -> SearchPage:
    """Households by place, PMT range and head's name, in id order or by PMT score (:data:`SORTS`,
    unscored last), a page at a time (keyset (value, id): the next page starts after the last row,
    so deep pages cost what the first does; by PMT within a district the (model, district, score)
    index serves)."""
    if not 1 <= limit <= PAGE_MAX:
        raise SearchError(f"limit must be from 1 to {PAGE_MAX}, not {limit}")
    sort = sort or keyset.Sort("id")
    if sort.key not in SORTS:
        raise keyset.SortError(f"sort must be one of {', '.join(SORTS)}, not {sort.key!r}")
    by_id = sort.key == "id"
    stmt = _filtered(district_id=district_id, tehsil_id=tehsil_id, pmt_min=pmt_min, pmt_max=pmt_max, name=name,
                     model_id=model_id, district_scope=district_scope,
                     after=after if by_id and not sort.desc else None, score_by_district=sort.key == "pmt")
    rows = keyset.page(session, stmt, SORTS[sort.key], Household.id, after=after, limit=limit + 1, desc=sort.desc)
    rows = [r._mapping for r in rows]
    page = [dict(r) for r in rows[:limit]]
    for r in page:
        r["head_cnic_masked"] = cnic_rules.mask(r.pop("cnic"))
        r["head_name"] = r.pop("full_name")
    return SearchPage(page, page[-1]["id"] if len(rows) > limit else None)

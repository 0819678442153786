"""DCI search over the registry, set-based: every identifier of a batch in one query, predicates
and expressions compiled to one SQL condition, pages counted and fetched by the database.

Records follow the spec's ``Member`` / ``Group`` objects and are cut down to the fields the
partner's data-sharing agreement grants (:func:`project_member`, :func:`project_group`). When the
agreement requires consent, the consent check is part of the query, so a record without consent
is never loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache

from sqlalchemy import Select, and_, bindparam, func, not_, or_, select
from sqlalchemy.orm import Session, aliased

from isps.interop.dci.models import DciConsent
from isps.interop.dci.partners import Partner
from isps.registry import cnic as cnic_rules
from isps.registry import current
from isps.registry import geography
from isps.registry.models import Household, Individual
from isps.targeting.models import PmtModel, PmtScore

MAX_PAGE_SIZE = 1000
MAX_IDENTIFIERS = 1000
ID_TYPES = {"cnic": "cnic", "nid": "cnic", "nationalid": "cnic", "uin": "cnic", "national_id": "cnic",
            "bform": "bform", "b-form": "bform", "b_form": "bform", "brn": "bform"}


class QueryError(ValueError):
    """A search the registry cannot run; ``code`` is a SearchStatusReasonCode."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Outcome:
    records: list[dict] = field(default_factory=list)
    individual_ids: list[int] = field(default_factory=list)
    household_ids: list[int] = field(default_factory=list)
    total: int = 0
    page_size: int = 0
    page_number: int = 1


# ---------------------------------------------------------------- attributes a query may use

def _group_size():
    m = aliased(Individual)
    return (select(func.count()).where(m.household_id == Household.id, current.clause(m))
            .correlate(Household).scalar_subquery())


def _district_value(v):
    if isinstance(v, str) and not v.strip().isdigit():
        d = geography.district_by_name(v)
        if d is None:
            raise QueryError("rjct.filter.invalid", "unknown district name")
        return d.id
    return int(v)


# attribute -> (column factory, agreement field that must be granted, value converter)
GROUP_ATTRS = {
    "district": (lambda: Household.district_id, "place", _district_value),
    "district_id": (lambda: Household.district_id, "place", int),
    "tehsil_id": (lambda: Household.tehsil_id, "place", int),
    "uc_id": (lambda: Household.uc_id, "place", int),
    "urban": (lambda: Household.urban, "place", bool),
    "poverty_score": (lambda: PmtScore.score, "poverty_score", float),
    "group_size": (_group_size, "group_size", int),
    "registration_date": (lambda: Household.surveyed_on, "registration_date", date.fromisoformat),
    "last_updated": (lambda: Household.updated_at, "last_updated", datetime.fromisoformat),
}
MEMBER_ATTRS = {
    "district": (lambda: Individual.district_id, "address", _district_value),
    "district_id": (lambda: Individual.district_id, "address", int),
    "sex": (lambda: Individual.sex, "sex", str),
    "birth_date": (lambda: Individual.date_of_birth, "birth_date", date.fromisoformat),
    "marital_status": (lambda: Individual.marital_status, "marital_status", str),
    "disability": (lambda: Individual.disability, "disability", str),
    "education_level": (lambda: Individual.education, "education_level", str),
    "employment_status": (lambda: Individual.labour_status, "employment_status", str),
    "relationship_head": (lambda: Individual.relation_to_head, "relationship_head", str),
    "registration_date": (lambda: Individual.member_since, "registration_date", date.fromisoformat),
}
OPS = {"eq": "__eq__", "gt": "__gt__", "lt": "__lt__", "ge": "__ge__", "le": "__le__",
       "$eq": "__eq__", "$gt": "__gt__", "$lt": "__lt__", "$gte": "__ge__", "$lte": "__le__", "$ne": "__ne__"}


def _comparison(entity: str, partner: Partner, name: str, op: str, value):
    attrs = GROUP_ATTRS if entity == "Group" else MEMBER_ATTRS
    spec = attrs.get(name)
    if spec is None:
        raise QueryError("rjct.filter.invalid", f"'{name}' cannot be searched on {entity} records; "
                                                f"use one of {', '.join(attrs)}")
    column_of, needed, convert = spec
    if needed not in partner.agreement.fields:
        raise QueryError("rjct.filter.invalid", f"your agreement does not grant '{needed}', needed to search on '{name}'")
    column = column_of()
    try:
        if op in ("in", "$in"):
            if not isinstance(value, list) or not value:
                raise QueryError("rjct.filter.invalid", f"'{name}' in needs a non-empty list")
            return column.in_([convert(v) for v in value])
        if op not in OPS:
            raise QueryError("rjct.filter.invalid", f"operator '{op}' is not supported")
        return getattr(column, OPS[op])(convert(value))
    except (TypeError, ValueError) as exc:
        if isinstance(exc, QueryError):
            raise
        raise QueryError("rjct.filter.invalid", f"'{name}': value of the wrong type") from None


def compile_predicate(entity: str, partner: Partner, items: list) -> object:
    """The spec's predicate list: each item is expression1 [condition expression2]; items are ANDed
    in seq_num order (``not`` reads expression1 AND NOT expression2)."""
    clauses = []
    for item in sorted(items, key=lambda i: i.get("seq_num", 0)):
        e1 = item["expression1"]
        c1 = _comparison(entity, partner, e1["attribute_name"], e1["operator"], e1["attribute_value"])
        e2 = item.get("expression2")
        if e2 is None:
            clauses.append(c1)
            continue
        c2 = _comparison(entity, partner, e2["attribute_name"], e2["operator"], e2["attribute_value"])
        cond = item.get("condition", "and")
        clauses.append(and_(c1, c2) if cond == "and" else or_(c1, c2) if cond == "or" else and_(c1, not_(c2)))
    if not clauses:
        raise QueryError("rjct.search_criteria.invalid", "an empty predicate")
    return and_(*clauses)


def compile_expression(entity: str, partner: Partner, node) -> object:
    """A MongoDB-like expression, as the spec's example: {"$and": [{"poverty_score": {"$lt": 5}}, ...]}."""
    if not isinstance(node, dict) or not node:
        raise QueryError("rjct.search_criteria.invalid", "an expression must be a non-empty object")
    clauses = []
    for key, value in node.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise QueryError("rjct.search_criteria.invalid", f"{key} needs a non-empty list")
            parts = [compile_expression(entity, partner, v) for v in value]
            clauses.append(and_(*parts) if key == "$and" else or_(*parts))
        elif key == "$not":
            clauses.append(not_(compile_expression(entity, partner, value)))
        elif isinstance(value, dict):
            for op, operand in value.items():
                clauses.append(_comparison(entity, partner, key, op, operand))
        else:
            clauses.append(_comparison(entity, partner, key, "$eq", value))
    return and_(*clauses)


# ---------------------------------------------------------------- consent inside the query

def _consent_exists(partner: Partner, person_ids_clause, today: date):
    c = aliased(DciConsent)
    p = aliased(Individual)
    return (select(c.id).join(p, p.id == c.individual_id).where(
        c.partner_id == partner.id, c.purpose == partner.agreement.purpose, c.revoked_at.is_(None),
        c.given_on <= today, or_(c.expires_on.is_(None), c.expires_on >= today), person_ids_clause(p))
        .exists())


def member_consent(partner: Partner, today: date):
    """The person consented, or the head of their household did (for children and dependants)."""
    return _consent_exists(partner, lambda p: or_(p.id == Individual.id, and_(
        p.household_id == Individual.household_id, p.roster_line == 1)), today)


def group_consent(partner: Partner, today: date):
    """The head of the household consented."""
    return _consent_exists(partner, lambda p: and_(p.household_id == Household.id, p.roster_line == 1), today)


# ---------------------------------------------------------------- identifiers (batch, one query)

def normalise_identifier(query) -> tuple[str, str]:
    if not isinstance(query, dict) or "type" not in query or "value" not in query:
        raise QueryError("rjct.search_criteria.invalid", "idtype-value needs query {type, value}")
    kind = ID_TYPES.get(str(query["type"]).split(":")[-1].strip().lower())
    if kind is None:
        raise QueryError("rjct.search_criteria.invalid", "identifier type must be CNIC or BFORM")
    try:
        return kind, cnic_rules.normalise(str(query["value"]))
    except cnic_rules.CnicError:
        raise QueryError("rjct.search_criteria.invalid", "the identifier must have 13 digits written "
                                                         "NNNNN-NNNNNNN-N") from None


PERSON_COLUMNS = tuple(Individual.__table__.c)
_PEOPLE_BY_NUMBER = select(*PERSON_COLUMNS).where(Individual.cnic.in_(bindparam("numbers", expanding=True)))


def people_by_identifier(session: Session, partner: Partner, numbers: list[str]) -> list:
    """Everyone holding any of ``numbers`` (one query), filtered by consent when the agreement needs it.
    Rows, not ORM objects, read on the session's connection without the ORM layer: they carry the
    same attribute names as :class:`Individual` and are only read (no identity map, no change tracking)."""
    stmt = _PEOPLE_BY_NUMBER
    if partner.agreement.consent_required:
        stmt = stmt.where(member_consent(partner, date.today()))
    return session.connection().execute(stmt, {"numbers": sorted(set(numbers))}).all()


# ---------------------------------------------------------------- record building

@lru_cache(maxsize=1)
def _place_names() -> tuple[dict[int, str], dict[int, str]]:
    return ({t: n for d in geography.districts() for t, n in d.tehsils}, {d.id: d.name for d in geography.districts()})


class RecordBuilder:
    """Builds Member and Group records for many people/households with a handful of queries."""

    def __init__(self, session: Session, partner: Partner) -> None:
        self.session = session
        self.fields = partner.agreement.fields
        self._tehsils, self._districts = _place_names()

    def households(self, ids) -> dict[int, Household]:
        ids = sorted(set(ids))
        return {h.id: h for h in self.session.scalars(select(Household).where(Household.id.in_(ids)))} if ids else {}

    def members_of(self, household_ids) -> dict[int, list[Individual]]:
        out: dict[int, list[Individual]] = {}
        ids = sorted(set(household_ids))
        if ids:
            for p in self.session.scalars(select(Individual).where(Individual.household_id.in_(ids))
                                          .order_by(Individual.household_id, Individual.roster_line)):
                out.setdefault(p.household_id, []).append(p)
        return out

    def scores(self, household_ids) -> dict[int, tuple[float, str]]:
        if "poverty_score" not in self.fields or not household_ids:
            return {}
        model = self.session.scalar(select(PmtModel).where(PmtModel.status == "active"))
        if model is None:
            return {}
        rows = self.session.execute(select(PmtScore.household_id, PmtScore.score).where(
            PmtScore.model_id == model.id, PmtScore.household_id.in_(sorted(set(household_ids)))))
        label = f"PMT {model.name} v{model.version}"
        return {hid: (round(score, 2), label) for hid, score in rows}

    def _address(self, h: Household) -> dict:
        return {"@type": "Address", "street_address": h.address, "tehsil": self._tehsils.get(h.tehsil_id, ""),
                "district": self._districts.get(h.district_id, ""), "region": "Punjab", "country": "PK"}

    def member(self, p: Individual, h: Household | None) -> dict:
        f = self.fields
        rec: dict = {"@type": "spdci:Member", "@id": f"urn:isps:individual:{p.id}"}
        person: dict = {"@type": "SRPerson"}
        if "identifier" in f and p.cnic:
            ident = [{"@type": "Identifier", "identifier_type": "BFORM" if p.id_document == "bform" else "CNIC",
                      "identifier_value": cnic_rules.formatted(p.cnic)}]
            rec["member_identifier"] = ident
            person["identifier"] = ident
        if "name" in f:
            given, _, rest = p.full_name.partition(" ")
            person["name"] = {"@type": "Name", "given_name": given, "surname": rest, "full_name": p.full_name}
        if "father_husband_name" in f and p.father_husband_name:
            person["father_husband_name"] = p.father_husband_name
        if "sex" in f:
            person["sex"] = p.sex
        if "birth_date" in f:
            person["birth_date"] = p.date_of_birth.isoformat()
        if "death_date" in f and p.date_of_death:
            person["death_date"] = p.date_of_death.isoformat()
        if "address" in f and h is not None:
            person["address"] = self._address(h)
        if "phone_number" in f and p.phone:
            person["phone_number"] = p.phone
        if len(person) > 1:
            rec["demographic_info"] = person
        if "is_disabled" in f or "disability" in f:
            rec["is_disabled"] = p.disability != "none"
        if "disability" in f and p.disability != "none":
            rec["disability_info"] = {"@type": "DisabilityInfo", "disability_type": p.disability}
        for key, value in (("marital_status", p.marital_status), ("education_level", p.education),
                           ("employment_status", p.labour_status), ("occupation", p.occupation),
                           ("relationship_head", p.relation_to_head)):
            if key in f and value is not None:
                rec[key] = value
        if "registration_date" in f:
            rec["registration_date"] = p.member_since.isoformat()
        return rec

    def group(self, h: Household, people: list[Individual], score: tuple[float, str] | None) -> dict:
        f = self.fields
        rec: dict = {"@type": "spdci:Group", "@id": f"urn:isps:household:{h.id}", "group_type": "household"}
        if "group_identifier" in f:
            rec["group_identifier"] = [{"@type": "Identifier", "identifier_type": "HouseholdRef",
                                        "identifier_value": h.ref}]
        if "place" in f:
            rec["place"] = {"@type": "Place", "district": self._districts.get(h.district_id, ""),
                            "district_id": h.district_id, "tehsil": self._tehsils.get(h.tehsil_id, ""),
                            "tehsil_id": h.tehsil_id, "union_council_id": h.uc_id, "urban": h.urban}
        if "address" in f:
            rec["address"] = self._address(h)
        if "poverty_score" in f and score is not None:
            rec["poverty_score"], rec["poverty_score_type"] = score
        living = [p for p in people if current.is_current(p)]
        if "group_size" in f:
            rec["group_size"] = len(living)
        head = next((p for p in people if p.roster_line == 1), None)
        if "group_head_info" in f and head is not None:
            rec["group_head_info"] = self.member(head, h)
        if "member_list" in f:
            rec["member_list"] = [self.member(p, h) for p in people]
        extra = []
        if "housing" in f:
            extra.append({"housing": {k: getattr(h, k) for k in ("tenure", "rooms", "roof", "wall", "toilet",
                                                                 "drinking_water", "electricity", "cooking_fuel")}})
        if "assets" in f:
            extra.append({"assets": {k: getattr(h, k) for k in (
                "fridge", "freezer", "air_conditioner", "air_cooler", "washing_machine", "television", "motorcycle",
                "car", "computer", "land_acres", "cattle", "goats_sheep", "tractor")}})
        if extra:
            rec["additional_attributes"] = extra
        if "registration_date" in f:
            rec["registration_date"] = h.surveyed_on.isoformat()
        if "last_updated" in f and h.updated_at:
            rec["last_updated"] = h.updated_at.isoformat(timespec="seconds")
        return rec

    def build(self, entity: str, people: list[Individual] | None = None, household_ids: list[int] | None = None) -> tuple[list[dict], list[int], list[int]]:
        """Records for the given people (Member) or households (Group), and the ids of every person
        and household whose data went out (for the audit log)."""
        if entity == "Member":
            people = people or []
            hh = self.households(p.household_id for p in people) if "address" in self.fields else {}
            return ([self.member(p, hh.get(p.household_id)) for p in people], [p.id for p in people],
                    sorted({p.household_id for p in people}))
        ids = household_ids if household_ids is not None else sorted({p.household_id for p in people or []})
        hh = self.households(ids)
        roster = self.members_of(ids) if ({"member_list", "group_head_info", "group_size"} & self.fields) else {}
        scores = self.scores(ids)
        records = [self.group(hh[i], roster.get(i, []), scores.get(i)) for i in ids if i in hh]
        shown = [p.id for i in ids for p in roster.get(i, [])] if ({"member_list", "group_head_info"} & self.fields) else []
        return records, shown, [i for i in ids if i in hh]


# ---------------------------------------------------------------- one criteria (predicate/expression)

def _page(criteria: dict) -> tuple[int, int]:
    pg = criteria.get("pagination") or {}
    size, number = pg.get("page_size", 100), pg.get("page_number", 1)
    if int(size) != size or int(number) != number or not 1 <= size <= MAX_PAGE_SIZE or number < 1:
        raise QueryError("rjct.pagination.invalid", f"page_size must be 1..{MAX_PAGE_SIZE} and page_number >= 1")
    return int(size), int(number)


SORTABLE = {"Group": {"poverty_score": lambda: PmtScore.score, "registration_date": lambda: Household.surveyed_on,
                      "district": lambda: Household.district_id, "group_size": _group_size,
                      "last_updated": lambda: Household.updated_at},
            "Member": {"birth_date": lambda: Individual.date_of_birth, "registration_date": lambda: Individual.member_since,
                       "district": lambda: Individual.district_id}}


def run_query(session: Session, partner: Partner, criteria: dict, entity: str) -> Outcome:
    """A predicate or expression search: count and one page, both computed by the database."""
    qtype = criteria["query_type"]
    query = criteria["query"]
    if qtype == "expression":
        value = query.get("value") if isinstance(query, dict) else None
        expr = value.get("expression") if isinstance(value, dict) else None
        if not isinstance(expr, dict) or "query" not in expr:
            raise QueryError("rjct.search_criteria.invalid", "expression needs query.value.expression.query")
        entity = expr.get("collection", entity)
        if entity not in ("Group", "Member"):
            raise QueryError("rjct.search_criteria.invalid", "collection must be Group or Member")
        condition = compile_expression(entity, partner, expr["query"])
    elif qtype == "predicate":
        if not isinstance(query, list):
            raise QueryError("rjct.search_criteria.invalid", "predicate needs a list of expressions")
        condition = compile_predicate(entity, partner, query)
    else:
        raise QueryError("rjct.search_criteria.invalid", f"query_type {qtype} is not supported here")
    size, number = _page(criteria)
    today = date.today()
    root = Household if entity == "Group" else Individual
    stmt: Select = select(root.id).where(condition)
    uses_score = "pmt_score" in str(condition) or any(
        s.get("attribute_name") == "poverty_score" for s in criteria.get("sort") or [])
    if entity == "Group" and uses_score:
        stmt = stmt.join(PmtScore, and_(PmtScore.household_id == Household.id, PmtScore.model_id == select(
            PmtModel.id).where(PmtModel.status == "active").scalar_subquery()))
    if partner.agreement.consent_required:
        stmt = stmt.where(group_consent(partner, today) if entity == "Group" else member_consent(partner, today))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    order = []
    for s in criteria.get("sort") or []:
        col = SORTABLE[entity].get(s.get("attribute_name"))
        if col is None:
            raise QueryError("rjct.sort.invalid", f"sort by one of {', '.join(SORTABLE[entity])}")
        order.append(col().desc() if s.get("sort_order") == "desc" else col().asc())
    ids = list(session.scalars(stmt.order_by(*order, root.id).limit(size).offset((number - 1) * size)))
    builder = RecordBuilder(session, partner)
    if entity == "Member":
        people = {p.id: p for p in session.scalars(select(Individual).where(Individual.id.in_(ids)))} if ids else {}
        records, shown, households = builder.build("Member", people=[people[i] for i in ids])
    else:
        records, shown, households = builder.build("Group", household_ids=ids)
    return Outcome(records, shown, households, total or 0, size, number)


__all__ = ["QueryError", "Outcome", "RecordBuilder", "run_query", "people_by_identifier", "normalise_identifier",
           "member_consent", "group_consent", "MAX_IDENTIFIERS", "MAX_PAGE_SIZE"]

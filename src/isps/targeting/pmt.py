"""Proxy Means Test scoring: a model is data, scoring is SQL run by the database.

A model predicts log consumption per adult equivalent from Poverty Score Card
indicators, with separate weights for urban and rural households, and maps the
prediction onto the NSER's 0-100 scale (``score_floor`` scores 0,
``score_ceiling`` scores 100). The indicators a model may use are declared in
:data:`INDICATORS`; their weights come from the ``pmt_coefficient`` table. The
scoring statement is generated from those rows and executed set-based, for every
household at once or for the households named by registry events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources

from sqlalchemy import Date, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from isps.registry import events, vocab
from isps.registry import current
from isps.registry.bulk import swap_in_partition
from isps.targeting.models import PmtCoefficient, PmtModel, PmtScore

CONSUMER = "targeting.pmt"


class PmtModelError(ValueError):
    pass


class PmtApprovalError(PmtModelError):
    """Maker-checker: an estimated model needs a second person's approval before activation."""


@dataclass(frozen=True)
class Indicator:
    kind: str    # numeric | flag | category
    sql: str     # expression over h (household) and m (member aggregates)
    label: str
    levels: tuple[str, ...] = ()


INDICATORS: dict[str, Indicator] = {
    "members": Indicator("numeric", "COALESCE(m.members, 0)", "Household members"),
    "dependency_ratio": Indicator("numeric", "COALESCE(CAST(m.dependents AS DOUBLE PRECISION) / NULLIF(m.members, 0), 0)",
                                  "Share of children under 15 and elders 65+"),
    "head_education": Indicator("category", "m.head_education", "Education of the head", vocab.EDUCATION),
    # members in work by their labour status, which the labour registries and the payroll feed keep current
    "earners": Indicator("numeric", "COALESCE(m.earners, 0)", "Members in work (labour status)"),
    "rooms_per_member": Indicator("numeric", "CAST(h.rooms AS DOUBLE PRECISION) / COALESCE(NULLIF(m.members, 0), 1)", "Rooms per member"),
    "land_acres": Indicator("numeric", "CASE WHEN h.land_acres > 25 THEN 25 ELSE h.land_acres END",
                            "Agricultural land (acres, up to 25)"),
    "cattle": Indicator("numeric", "CASE WHEN h.cattle > 10 THEN 10 ELSE h.cattle END", "Cattle and buffaloes (up to 10)"),
    "goats_sheep": Indicator("numeric", "CASE WHEN h.goats_sheep > 10 THEN 10 ELSE h.goats_sheep END",
                             "Goats and sheep (up to 10)"),
    **{c: Indicator("category", f"h.{c}", c.replace("_", " ").capitalize(), levels)
       for c, levels in vocab.HOUSEHOLD_CATEGORICAL.items()},
    **{d: Indicator("flag", f"h.{d}", d.replace("_", " ").capitalize()) for d in vocab.DURABLES},
    "electricity": Indicator("flag", "h.electricity", "Electricity connection"),
    "tractor": Indicator("flag", "h.tractor", "Tractor"),
}
REGIONS = ("urban", "rural")


def _member_aggregates(where: str = "") -> str:
    return f"""
        SELECT household_id, COUNT(*) AS members,
               SUM(CASE WHEN date_of_birth > :child_cutoff OR date_of_birth <= :elder_cutoff THEN 1 ELSE 0 END) AS dependents,
               MAX(CASE WHEN relation_to_head = 'head' THEN education END) AS head_education,
               SUM(CASE WHEN labour_status IN ('employed_formal', 'employed_informal', 'self_employed', 'daily_wager')
                        THEN 1 ELSE 0 END) AS earners
        FROM individual WHERE {current.CURRENT} {where}
        GROUP BY household_id"""


def _age_params(on: date) -> dict:
    return {"child_cutoff": on.replace(year=on.year - 15), "elder_cutoff": on.replace(year=on.year - 65)}


def _bind_dates(stmt):
    return stmt.bindparams(bindparam("child_cutoff", type_=Date), bindparam("elder_cutoff", type_=Date))


def _literal(weight: float, dialect: str) -> str:
    """A weight as an SQL literal. PostgreSQL reads ``0.056`` as NUMERIC, and fifty NUMERIC
    additions per household cost more than the rest of the scoring statement together, so there
    the weights are DOUBLE PRECISION (the type the score is stored in, and what SQLite uses)."""
    w = repr(float(weight))
    return f"CAST({w} AS DOUBLE PRECISION)" if dialect == "postgresql" else w


def _terms(coefs: list[PmtCoefficient], dialect: str) -> list[str]:
    """One term per coefficient; the levels of a categorical indicator share one CASE over the
    column (one comparison per level, the first match wins, as only one level can match)."""
    terms: list[str] = []
    levels: dict[str, list[str]] = {}
    for c in coefs:
        w = _literal(c.weight, dialect)
        if c.indicator == "intercept":
            terms.append(w)
            continue
        ind = INDICATORS[c.indicator]
        if ind.kind == "numeric":
            terms.append(f"{w} * ({ind.sql})")
        elif ind.kind == "flag":
            terms.append(f"CASE WHEN {ind.sql} THEN {w} ELSE 0 END")
        else:
            if c.indicator not in levels:
                levels[c.indicator] = []
                terms.append(c.indicator)  # placeholder, filled in below in the coefficients' order
            levels[c.indicator].append(f"WHEN '{c.level}' THEN {w}")
    return [f"CASE {INDICATORS[t].sql} {' '.join(levels[t])} ELSE 0 END" if t in levels else t for t in terms]


def _prediction_sql(coefs: list[PmtCoefficient], dialect: str = "sqlite") -> str:
    parts = {}
    for region in REGIONS:
        terms = _terms([c for c in coefs if c.region == region], dialect)
        parts[region] = " + ".join(terms) or "0"
    return f"(CASE WHEN h.urban THEN {parts['urban']} ELSE {parts['rural']} END)"


def _score_sql(model: PmtModel, coefs: list[PmtCoefficient], dialect: str) -> str:
    hundred, floor, ceiling = (_literal(v, dialect) for v in (100.0, model.score_floor, model.score_ceiling))
    raw = f"{hundred} * ({_prediction_sql(coefs, dialect)} - {floor}) / ({ceiling} - {floor})"
    if dialect == "postgresql":
        return f"GREATEST(0.0, LEAST(100.0, {raw}))"
    return f"MAX(0.0, MIN(100.0, {raw}))"


def validate_spec(spec: dict) -> None:
    """A model specification names known indicators and levels, both regions, and a sane scale."""
    if float(spec["score_ceiling"]) <= float(spec["score_floor"]):
        raise PmtModelError("score_ceiling must be above score_floor")
    for region in REGIONS:
        if region not in spec["regions"]:
            raise PmtModelError(f"region '{region}' has no coefficients")
        for key, weight in spec["regions"][region].items():
            indicator, _, level = key.partition(":")
            if indicator == "intercept":
                continue
            ind = INDICATORS.get(indicator)
            if ind is None:
                raise PmtModelError(f"{region}: unknown indicator '{indicator}'")
            if ind.kind == "category" and level not in ind.levels:
                raise PmtModelError(f"{region}: '{indicator}' has no level '{level}' (levels: {', '.join(ind.levels)})")
            if ind.kind != "category" and level:
                raise PmtModelError(f"{region}: '{indicator}' takes no level")
            float(weight)


def create_model(session: Session, spec: dict, actor: str) -> PmtModel:
    """Store a model from its specification (as in ``targeting/data/pmt_v1.json``), as a draft."""
    validate_spec(spec)
    version = (session.scalar(select(PmtModel.version).where(PmtModel.name == spec["name"])
                              .order_by(PmtModel.version.desc()).limit(1)) or 0) + 1
    model = PmtModel(name=spec["name"], version=version, status="draft", description=spec.get("description", ""),
                     score_floor=float(spec["score_floor"]), score_ceiling=float(spec["score_ceiling"]), created_by=actor)
    session.add(model)
    session.flush()
    for region, weights in spec["regions"].items():
        for key, weight in weights.items():
            indicator, _, level = key.partition(":")
            session.add(PmtCoefficient(model_id=model.id, region=region, indicator=indicator, level=level,
                                       weight=float(weight)))
    session.flush()
    return model


def coefficients(session: Session, model_id: int) -> list[PmtCoefficient]:
    return list(session.scalars(select(PmtCoefficient).where(PmtCoefficient.model_id == model_id)
                                .order_by(PmtCoefficient.region, PmtCoefficient.id)))


def active_model(session: Session) -> PmtModel | None:
    return session.scalar(select(PmtModel).where(PmtModel.status == "active"))


def models(session: Session, *, before: int | None = None, limit: int = 50,
           status: str | None = None) -> list[PmtModel]:
    """A page of model versions, newest first, by keyset (``before`` = the last id shown)."""
    stmt = select(PmtModel)
    if status:
        stmt = stmt.where(PmtModel.status == status)
    if before is not None:
        stmt = stmt.where(PmtModel.id < before)
    return list(session.scalars(stmt.order_by(PmtModel.id.desc()).limit(limit)))


def count_models(session: Session, *, status: str | None = None) -> int:
    stmt = select(func.count()).select_from(PmtModel)
    if status:
        stmt = stmt.where(PmtModel.status == status)
    return int(session.scalar(stmt) or 0)


def _insert_scores(session: Session, model: PmtModel, where: str, on: date) -> int:
    score = _score_sql(model, coefficients(session, model.id), session.bind.dialect.name)
    params = {"model_id": model.id, "scored_at": datetime.combine(on, datetime.min.time()), **_age_params(on)}
    member_where = f"AND household_id IN (SELECT h.id FROM household h WHERE {where})" if where != "1=1" else ""
    sql = f"""
        INSERT INTO pmt_score (model_id, household_id, district_id, score, scored_at)
        SELECT :model_id, h.id, h.district_id, {score}, :scored_at
        FROM household h LEFT JOIN ({_member_aggregates(member_where)}) m ON m.household_id = h.id
        WHERE {where}"""
    return session.execute(_bind_dates(text(sql)), params).rowcount


def partition_name(model_id: int) -> str:
    """On PostgreSQL each fully scored model's scores are a partition of ``pmt_score`` (migration 0010)."""
    return f"pmt_score_m{int(model_id)}"


def _partitioned(session: Session) -> bool:
    return session.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('pmt_score')")) == "p"


def _rescore_all_postgresql(session: Session, model: PmtModel, on: date) -> int:
    """Every household's score as a fresh partition, swapped in for the model's old one.

    Inserting a million rows into ``pmt_score`` costs a foreign-key trigger call and two
    index insertions per row, and PostgreSQL never runs an INSERT's SELECT in parallel. So:
    aggregate the members (parallel), score every household into a new table with
    ``CREATE TABLE AS`` (parallel where the planner sees fit), build its indexes in bulk, check
    the foreign key in one statement, and only then drop the old partition and attach the new
    one (:func:`isps.registry.bulk.swap_in_partition`). Readers keep reading the old scores while
    the new ones are built; only the swap at the end (catalogue changes) locks ``pmt_score``,
    until the commit. SQLite keeps DELETE + INSERT.
    """
    mid = int(model.id)
    score = _score_sql(model, coefficients(session, mid), "postgresql")
    x = session.execute
    x(text("SELECT pg_advisory_xact_lock(hashtext('isps.pmt_score'), :m)"), {"m": mid})  # one re-score per model at a time
    # the aggregate of 6M members needs ~200 MB to hash without spilling; JIT would spend
    # seconds compiling and optimising the wide scoring expression (its cost passes the
    # thresholds at 1M households) to save less than it costs
    x(text("SET LOCAL work_mem = '256MB'"))
    x(text("SET LOCAL jit = off"))
    x(text("DROP TABLE IF EXISTS pmt_member_aggregates"))
    x(_bind_dates(text(f"CREATE TEMP TABLE pmt_member_aggregates ON COMMIT DROP AS {_member_aggregates('')}")),
      _age_params(on))
    n = swap_in_partition(
        session, "pmt_score", partition_name(mid), "model_id", mid,
        f"""SELECT CAST(:model_id AS BIGINT) AS model_id, h.id AS household_id,
               CAST(h.district_id AS SMALLINT) AS district_id, CAST({score} AS DOUBLE PRECISION) AS score,
               CAST(:scored_at AS TIMESTAMP) AS scored_at
        FROM household h LEFT JOIN pmt_member_aggregates m ON m.household_id = h.id""",
        {"model_id": mid, "scored_at": datetime.combine(on, datetime.min.time())},
        not_null=["model_id", "household_id", "district_id", "score", "scored_at"],
        defaults={"scored_at": "CURRENT_TIMESTAMP"},
        primary_key=["model_id", "household_id"],
        indexes={"district_score": "model_id, district_id, score"},
        foreign_keys={"model_id": "pmt_model (id)"},
        replace=True)
    return n


def rescore_all(session: Session, model: PmtModel, on: date | None = None) -> int:
    """Score every household with ``model`` in one statement; earlier scores of other models stay."""
    on = on or date.today()
    if session.bind.dialect.name == "postgresql" and _partitioned(session):
        return _rescore_all_postgresql(session, model, on)
    session.execute(delete(PmtScore).where(PmtScore.model_id == model.id))
    n = _insert_scores(session, model, "1=1", on)
    if session.bind.dialect.name == "postgresql":
        session.execute(text("ANALYZE pmt_score"))  # the planner must know the new scores' spread
    return n


def rescore_households(session: Session, household_ids: list[int], on: date | None = None) -> int:
    """Re-score a few households with the active model (after a change to them)."""
    model = active_model(session)
    if model is None or not household_ids:
        return 0
    ids = sorted(set(household_ids))
    session.execute(delete(PmtScore).where(PmtScore.model_id == model.id, PmtScore.household_id.in_(ids)))
    where = "h.id IN (" + ", ".join(str(int(i)) for i in ids) + ")"
    return _insert_scores(session, model, where, on or date.today())


def process_events(session: Session, on: date | None = None) -> int:
    """Re-score the households named by registry events since this consumer last read, set-based."""
    model = active_model(session)
    start = events.cursor(session, CONSUMER)
    upto = events.latest_event_id(session)
    if upto <= start:
        return 0
    if model is None:
        events.advance(session, CONSUMER, upto)
        return 0
    topics = (events.HOUSEHOLD_CHANGED, events.HOUSEHOLD_CREATED, events.MEMBER_CHANGED, events.MEMBER_DECEASED)
    topic_list = ", ".join(f"'{t}'" for t in topics)
    named = (f"SELECT aggregate_id FROM outbox_event WHERE id > {int(start)} AND id <= {int(upto)} "
             f"AND topic IN ({topic_list})")
    session.execute(text(f"DELETE FROM pmt_score WHERE model_id = :m AND household_id IN ({named})"), {"m": model.id})
    n = _insert_scores(session, model, f"h.id IN ({named})", on or date.today())
    events.advance(session, CONSUMER, upto)
    return n


def approve(session: Session, model_id: int, approver: str) -> PmtModel:
    """Record a second person's approval of a draft model (maker-checker).

    Refused when the approver is the model's creator, when the model is not a draft,
    or when it is approved already.
    """
    model = session.get(PmtModel, model_id)
    if model is None:
        raise PmtModelError(f"no PMT model with id {model_id}")
    if model.status != "draft":
        raise PmtApprovalError(f"{model.name} v{model.version} is {model.status}; only a draft can be approved")
    if model.approved_by:
        raise PmtApprovalError(f"{model.name} v{model.version} was approved already by {model.approved_by}")
    if not approver or approver == model.created_by:
        raise PmtApprovalError(f"a second person must approve: {model.name} v{model.version} was created by "
                               f"{model.created_by}, who cannot approve it")
    model.approved_by = approver
    model.approved_at = datetime.now()
    session.flush()
    return model


def check_approval(model: PmtModel) -> None:
    """Every model but the shipped ones (created by "system") is activated only once someone other
    than its creator approved it, whether it was estimated or written by hand: a change of
    formula changes who is poor enough for every program."""
    if model.created_by == "system":
        return
    if not model.approved_by:
        how = f"{model.estimator}, " if model.estimator else ""
        raise PmtApprovalError(f"{model.name} v{model.version} ({how}created by {model.created_by}) "
                               "is not approved; a second person must approve it before activation")
    if model.approved_by == model.created_by:
        raise PmtApprovalError(f"{model.name} v{model.version} was approved by its own creator; "
                               "a second person must approve it")


def activate(session: Session, model: PmtModel, on: date | None = None) -> int:
    """Make ``model`` the active one and re-score every household with it, in one transaction.

    An estimated model must have been approved by a second person (:func:`approve`)."""
    check_approval(model)
    session.execute(update(PmtModel).where(PmtModel.status == "active", PmtModel.id != model.id)
                    .values(status="retired"))
    model.status = "active"
    model.activated_at = datetime.now()
    session.flush()
    n = rescore_all(session, model, on)
    events.advance(session, CONSUMER, events.latest_event_id(session))
    return n


def shipped_specs() -> list[dict]:
    folder = resources.files("isps.targeting.data")
    return [json.loads(folder.joinpath(name).read_text()) for name in sorted(
        p.name for p in folder.iterdir() if p.name.startswith("pmt_") and p.name.endswith(".json"))]


def install_shipped_models(session: Session) -> None:
    """On a new database, store the shipped v1 model and make it active."""
    if session.scalar(select(PmtModel.id).limit(1)) is not None:
        return
    for spec in shipped_specs():
        model = create_model(session, spec, actor="system")
        if spec.get("activate"):
            activate(session, model)


@dataclass(frozen=True)
class Contribution:
    indicator: str
    label: str
    value: object
    weight: float
    points: float  # contribution to the 0-100 score


@dataclass(frozen=True)
class Breakdown:
    model: str
    model_version: int
    score: float
    region: str
    scored_at: datetime
    base_points: float
    contributions: list[Contribution]


def breakdown(session: Session, household_id: int) -> Breakdown | None:
    """Each indicator's contribution to a household's active score, in score points.

    Recomputed from the same indicator expressions the scoring statement uses and
    on the date the score was computed, so the parts add up to the stored score
    (before clamping to 0-100).
    """
    model = active_model(session)
    if model is None:
        return None
    stored = session.get(PmtScore, (model.id, household_id))
    if stored is None:
        return None
    on = stored.scored_at.date()
    exprs = ", ".join(f"{ind.sql} AS {name}" for name, ind in INDICATORS.items())
    stmt = _bind_dates(text(f"""SELECT h.urban AS urban_flag, {exprs}
        FROM household h LEFT JOIN ({_member_aggregates('AND household_id = :hid')}) m ON m.household_id = h.id
        WHERE h.id = :hid"""))
    row = session.execute(stmt, {"hid": household_id, **_age_params(on)}).mappings().one()
    region = "urban" if row["urban_flag"] else "rural"
    span = model.score_ceiling - model.score_floor
    coefs = [c for c in coefficients(session, model.id) if c.region == region]
    intercept = sum(c.weight for c in coefs if c.indicator == "intercept")
    parts = []
    for c in coefs:
        if c.indicator == "intercept":
            continue
        ind = INDICATORS[c.indicator]
        value = row[c.indicator]
        if ind.kind == "numeric":
            x = float(value or 0)
        elif ind.kind == "flag":
            x = 1.0 if value else 0.0
        else:
            x = 1.0 if value == c.level else 0.0
            if not x:
                continue
        label = ind.label + (f": {c.level.replace('_', ' ')}" if c.level else "")
        parts.append(Contribution(c.indicator + (f":{c.level}" if c.level else ""), label, value, c.weight,
                                  100.0 * c.weight * x / span))
    parts.sort(key=lambda p: -abs(p.points))
    base = 100.0 * (intercept - model.score_floor) / span
    return Breakdown(model.name, model.version, stored.score, region, stored.scored_at, base, parts)

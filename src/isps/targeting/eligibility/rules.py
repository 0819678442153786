"""Program rules: loading, storing, compiling and evaluating them over the registry.

A rule (``data/rules/<program>.json``) names its unit (a household, or each member
among ``candidates``), its benefit, and a list of criteria, each an expression in
:mod:`.language` with the sentence that explains a pass and a failure. All criteria
must hold. Evaluation is one SQL statement run by the database: a single pass over
the members computes every member aggregate the criteria need, and each decision
carries a bit mask of the criteria it failed, so the reason can be told later, in
English or Urdu, without re-evaluating.
"""

from __future__ import annotations

import json
import string
import time
from dataclasses import dataclass, field
from datetime import date
from importlib import resources

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from isps.registry.bulk import swap_in_partition
from isps.registry import current
from isps.registry.models import District, Tehsil
from isps.targeting.eligibility.language import HEAD_JOIN, NARROW, Compiler, RuleError
from isps.targeting.eligibility.models import EligibilityResult, EligibilityRule, EligibilityRun
from isps.targeting.pmt import active_model

MAX_CRITERIA = 30  # the failure mask is a 32-bit integer


@dataclass(frozen=True)
class Criterion:
    id: str
    when: str
    fail: str
    pass_: str = ""
    scope: str = "household"  # household | member
    fail_ur: str = ""  # the same sentences in Urdu, for the counter's Urdu pages
    pass_ur: str = ""

    def sentence(self, met: bool, lang: str = "en") -> str:
        if lang == "ur" and (self.pass_ur if met else self.fail_ur):
            return self.pass_ur if met else self.fail_ur
        return self.pass_ if met else self.fail


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    unit: str  # household | member
    criteria: tuple[Criterion, ...]
    candidates: str = ""
    agency: str = ""
    description: str = ""
    benefit: dict = field(default_factory=dict)
    beneficiary: str = ""
    parameters: dict = field(default_factory=dict)  # named numbers the criteria use, e.g. {"cutoff": 32}

    @classmethod
    def from_spec(cls, spec: dict) -> "Rule":
        try:
            criteria = tuple(Criterion(c["id"], c["when"], c["fail"], c.get("pass", ""), c.get("scope", "household"),
                                       c.get("fail_ur", ""), c.get("pass_ur", ""))
                             for c in spec["criteria"])
            rule = cls(spec["code"], spec["name"], spec.get("unit", "household"), criteria,
                       spec.get("candidates", ""), spec.get("agency", ""), spec.get("description", ""),
                       spec.get("benefit", {}), spec.get("beneficiary", ""),
                       {k: float(v) for k, v in spec.get("parameters", {}).items()})
        except KeyError as exc:
            raise RuleError(f"the rule lacks {exc.args[0]!r}") from None
        if rule.unit not in ("household", "member"):
            raise RuleError("unit must be 'household' or 'member'")
        if not criteria or len(criteria) > MAX_CRITERIA:
            raise RuleError(f"a rule has 1 to {MAX_CRITERIA} criteria")
        for c in criteria:
            if c.scope not in ("household", "member"):
                raise RuleError(f"criterion {c.id}: scope must be 'household' or 'member'")
            if c.scope == "member" and rule.unit != "member":
                raise RuleError(f"criterion {c.id}: member criteria need unit 'member'")
        return rule

    def to_spec(self) -> dict:
        return {"code": self.code, "name": self.name, "agency": self.agency, "description": self.description,
                "unit": self.unit, "candidates": self.candidates, "benefit": self.benefit,
                "beneficiary": self.beneficiary, "parameters": self.parameters,
                "criteria": [{"id": c.id, "when": c.when, "fail": c.fail, "pass": c.pass_, "scope": c.scope,
                              **({"fail_ur": c.fail_ur} if c.fail_ur else {}),
                              **({"pass_ur": c.pass_ur} if c.pass_ur else {})}
                             for c in self.criteria]}


def shipped_rules() -> list[Rule]:
    folder = resources.files("isps.targeting.data").joinpath("rules")
    return [Rule.from_spec(json.loads(p.read_text())) for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".json")]


# ---------------------------------------------------------------- storage of rule versions

def install_shipped_rules(session: Session) -> None:
    """Store each shipped rule; a newer shipped version replaces an older shipped one, but never a
    version program staff have written themselves."""
    for rule in shipped_rules():
        latest = session.scalar(select(EligibilityRule).where(EligibilityRule.program_code == rule.code)
                                .order_by(EligibilityRule.version.desc()).limit(1))
        if latest is None:
            session.add(EligibilityRule(program_code=rule.code, version=1, spec=rule.to_spec(), status="active",
                                        created_by="system"))
        elif latest.created_by == "system" and latest.spec != rule.to_spec():
            save_rule(session, rule.to_spec(), actor="system")
    session.flush()


def save_rule(session: Session, spec: dict, actor: str) -> EligibilityRule:
    """Store a new version of a program's rule and make it the active one, after compiling it
    once so that a rule that cannot run is never stored."""
    rule = Rule.from_spec(spec)
    compile_rule(session, rule)
    current = session.scalars(select(EligibilityRule).where(EligibilityRule.program_code == rule.code)
                              .order_by(EligibilityRule.version.desc())).all()
    for old in current:
        if old.status == "active":
            old.status = "retired"
    row = EligibilityRule(program_code=rule.code, version=(current[0].version + 1) if current else 1,
                          spec=rule.to_spec(), status="active", created_by=actor)
    session.add(row)
    session.flush()
    return row


def active_rule(session: Session, code: str) -> tuple[EligibilityRule, Rule]:
    row = session.scalar(select(EligibilityRule).where(EligibilityRule.program_code == code,
                                                       EligibilityRule.status == "active"))
    if row is None:
        raise RuleError(f"there is no program '{code}'")
    return row, Rule.from_spec(row.spec)


def active_rules(session: Session) -> list[tuple[EligibilityRule, Rule]]:
    rows = session.scalars(select(EligibilityRule).where(EligibilityRule.status == "active")
                           .order_by(EligibilityRule.program_code))
    return [(r, Rule.from_spec(r.spec)) for r in rows]


# ---------------------------------------------------------------- compilation

@dataclass
class CompiledRule:
    rule: Rule
    select_sql: str      # one row per decision: ids, district, pmt, values for the sentences, failed mask
    conditions: list[str]
    params: dict
    count_sql: str = ""  # eligible decisions per district (district_id, n): the criteria as one conjunction


def _geo(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    districts = {d.name: d.id for d in session.scalars(select(District))}
    tehsils = {t.name: t.id for t in session.scalars(select(Tehsil))}
    return districts, tehsils


def _member_aggregate(comp: Compiler, narrow_members: str, wants_size: bool) -> str:
    """The one pass over the members that serves every ``any_member(...)``, ``count_members(...)``
    and the household size of a rule: one GROUP BY household, a column per condition. When only
    ``any_member`` conditions are asked for, only the members meeting one of them are read into
    the aggregate (a household without any has no row, and its columns read as 0)."""
    cols = [f"{'MAX' if kind == 'any' else 'SUM'}(CASE WHEN {sql} THEN 1 ELSE 0 END) AS {alias}"
            for alias, (kind, sql) in comp.aggregates.items()]
    whole = wants_size or any(kind == "count" for kind, _ in comp.aggregates.values())
    if whole:
        cols.insert(0, "COUNT(*) AS n_members")
        only = ""
    else:
        only = " AND (" + " OR ".join(sql for _, sql in comp.aggregates.values()) + ")"
    head_join = HEAD_JOIN if comp.aggregates_need_head else ""
    return f"""LEFT JOIN (SELECT i.household_id, {', '.join(cols)}
            FROM individual i {head_join}
            WHERE {current.sql('i')} {narrow_members}{only}
            GROUP BY i.household_id) ma ON ma.household_id = h.id"""


def compile_rule(session: Session, rule: Rule, *, household_id: int | None = None,
                 district_id: int | None = None, overrides: dict[str, str] | None = None,
                 parameters: dict[str, float] | None = None, on: date | None = None,
                 households_sql: str | None = None) -> CompiledRule:
    """SQL for a rule. ``parameters`` replaces the rule's named numbers and ``overrides`` whole
    criteria by id (the simulator's "what if"); ``household_id``/``district_id`` narrow it, and so
    does ``households_sql``: a SELECT of household ids written by the calling module (never user
    input; its bind parameters go with the statement), e.g. the households named by events."""
    districts, tehsils = _geo(session)
    unknown = set(parameters or {}) - set(rule.parameters)
    if unknown:
        raise RuleError(f"{rule.code} has no parameter {', '.join(sorted(unknown))}; "
                        f"it has: {', '.join(rule.parameters) or 'none'}")
    comp = Compiler(session.bind.dialect.name, districts, tehsils, {**rule.parameters, **(parameters or {})},
                    on or date.today())
    conditions = []
    for c in rule.criteria:
        expr = (overrides or {}).get(c.id, c.when)
        try:
            conditions.append(comp.compile(expr, member=c.scope == "member"))
        except RuleError as exc:
            raise RuleError(f"{rule.code}, criterion '{c.id}': {exc}") from None
    candidates = ""
    if rule.unit == "member":
        try:
            candidates = comp.compile(rule.candidates or "age >= 0", member=True)
        except RuleError as exc:
            raise RuleError(f"{rule.code}, candidates: {exc}") from None
    head_join = HEAD_JOIN if comp.needs_head else ""
    narrow_members = ""
    where = []
    params = dict(comp.params)
    if household_id is not None:
        where.append("h.id = :hid")
        narrow_members = "AND i.household_id = :hid"
        params["hid"] = household_id
    if district_id is not None:
        where.append("h.district_id = :did")
        narrow_members += " AND i.district_id = :did"
        params["did"] = district_id
    if households_sql is not None:
        where.append(f"h.id IN ({households_sql})")
        narrow_members += f" AND i.household_id IN ({households_sql})"
    # one pass over the members for any_member(...), count_members(...) and the household size,
    # only when asked for
    wants_size = "members" in comp.variables or any("{members}" in c.fail + c.pass_ for c in rule.criteria)
    member_join = ""
    members_out = "CAST(NULL AS INTEGER)"
    if comp.aggregates or wants_size:
        member_join = _member_aggregate(comp, narrow_members, wants_size)
        if wants_size or any(kind == "count" for kind, _ in comp.aggregates.values()):
            members_out = "COALESCE(ma.n_members, 0)"
    mask = " + ".join(f"CASE WHEN {cond} THEN 0 ELSE {1 << k} END" for k, cond in enumerate(conditions))
    age = comp.age_sql()
    if rule.unit == "household":
        columns = f"""h.id AS household_id, 0 AS individual_id, h.district_id AS district_id, s.score AS pmt,
                   {members_out} AS members, h.monthly_income AS monthly_income,
                   CAST(NULL AS INTEGER) AS age, CAST(NULL AS VARCHAR(80)) AS full_name"""
        source = f"""household h
            LEFT JOIN pmt_score s ON s.household_id = h.id AND s.model_id = :model_id
            {member_join}"""
    else:
        where.append(current.sql('i'))
        where.append(candidates)
        columns = f"""h.id AS household_id, i.id AS individual_id, h.district_id AS district_id, s.score AS pmt,
                   {members_out} AS members, h.monthly_income AS monthly_income,
                   {age} AS age, i.full_name AS full_name"""
        source = f"""individual i JOIN household h ON h.id = i.household_id {head_join}
            LEFT JOIN pmt_score s ON s.household_id = h.id AND s.model_id = :model_id
            {member_join}"""
    body = f"SELECT {columns}, {mask} AS failed\n            FROM {source}"
    if where:
        body += " WHERE " + " AND ".join(where)
    # the count needs no mask: "every criterion holds" as a conjunction lets the database test each
    # criterion where its columns are read (a member's criteria in the scan of the members) and
    # stop at the first that fails (a criterion that is NULL fails in both forms)
    count = (f"SELECT h.district_id AS district_id, COUNT(*) AS n FROM {source} WHERE "
             + " AND ".join([*where, *conditions]) + " GROUP BY h.district_id")
    body, count = body.replace(NARROW, narrow_members), count.replace(NARROW, narrow_members)
    return CompiledRule(rule, body, conditions, params, count)


def _params(session: Session, compiled: CompiledRule, on: date, model_id: int | None) -> dict:
    if model_id is None:
        model = active_model(session)
        model_id = model.id if model else -1
    return {**compiled.params, "on_date": on.isoformat(), "model_id": model_id}


# ---------------------------------------------------------------- evaluation

def _memory_for_whole_registry(session: Session) -> None:
    """Before a statement over every household (PostgreSQL): the member aggregate (one GROUP BY
    household over the members, a million groups when the household size or a count_members(...)
    is asked for) is hashed in memory only when it fits in work_mem, and spills to disk in batches
    with the default 4 MB. Room for it and for the hash joins, for this transaction only; and no
    JIT, whose compile time at this size exceeds what it saves on these expressions."""
    if session.bind.dialect.name == "postgresql":
        session.execute(text("SET LOCAL work_mem = '256MB'"))
        session.execute(text("SET LOCAL jit = off"))


def count_by_district(session: Session, rule: Rule, on: date | None = None, *, district_id: int | None = None,
                      overrides: dict[str, str] | None = None, parameters: dict[str, float] | None = None,
                      model_id: int | None = None) -> dict[int, int]:
    """Eligible households (or members) per district: the quick preview, nothing stored."""
    compiled = compile_rule(session, rule, district_id=district_id, overrides=overrides, parameters=parameters,
                            on=on)
    _memory_for_whole_registry(session)
    rows = session.execute(text(compiled.count_sql), _params(session, compiled, on or date.today(), model_id))
    return {int(d): int(n) for d, n in rows}


def count_eligible(session: Session, rule: Rule, on: date | None = None, **kw) -> int:
    return sum(count_by_district(session, rule, on, **kw).values())


def partition_name(run_id: int) -> str:
    """On PostgreSQL each run over the whole registry (or a district) is a partition of
    ``eligibility_result`` of its own (migration 0011); smaller runs share the default partition."""
    return f"eligibility_result_r{int(run_id)}"


def _partitioned(session: Session) -> bool:
    return session.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('eligibility_result')")) == "p"


RESULT_COLUMNS = "run_id, household_id, individual_id, district_id, eligible, failed, pmt, age, monthly_income"


def _materialise_postgresql(session: Session, run_id: int, select_sql: str, params: dict) -> None:
    """A run's decisions as a partition of their own. PostgreSQL never runs an INSERT's SELECT in
    parallel, and inserting millions of rows costs a foreign-key trigger call and two index
    insertions per row; so the decisions are computed into a fresh table by one ``CREATE TABLE AS``
    (parallel where the planner sees fit), its keys are built in bulk, the foreign key is checked in
    one statement, and the table is attached as the run's partition (a CHECK constraint spares the
    attach a scan of its own), by :func:`isps.registry.bulk.swap_in_partition`. Only the attach locks
    anything shared: the default partition (which the database scans to prove it holds no row of
    this run, a new one) until the commit."""
    swap_in_partition(
        session, "eligibility_result", partition_name(run_id), "run_id", run_id,
        f"""SELECT CAST(:run_id AS BIGINT) AS run_id, CAST(household_id AS BIGINT) AS household_id,
               CAST(individual_id AS BIGINT) AS individual_id, CAST(district_id AS SMALLINT) AS district_id,
               (failed = 0) AS eligible, CAST(failed AS INTEGER) AS failed, CAST(pmt AS DOUBLE PRECISION) AS pmt,
               CAST(age AS SMALLINT) AS age, CAST(monthly_income AS DOUBLE PRECISION) AS monthly_income
        FROM ({select_sql}) x""",
        {**params, "run_id": run_id},
        not_null=["run_id", "household_id", "individual_id", "district_id", "eligible", "failed"],
        primary_key=["run_id", "household_id", "individual_id"],
        indexes={"run_district": "run_id, district_id, eligible"},
        foreign_keys={"run_id": "eligibility_run (id)"})


def run(session: Session, rule_row: EligibilityRule, actor: str, on: date | None = None,
        district_id: int | None = None, *, households_sql: str | None = None,
        households_params: dict | None = None) -> EligibilityRun:
    """Evaluate a rule over the registry and materialise every decision with its failed criteria.
    ``households_sql`` (a SELECT of household ids, with ``households_params``) evaluates only those
    households, in the same one statement (a re-assessment after a registry update)."""
    on = on or date.today()
    rule = Rule.from_spec(rule_row.spec)
    model = active_model(session)
    started = time.perf_counter()
    run_row = EligibilityRun(rule_id=rule_row.id, on_date=on, pmt_model_id=model.id if model else None,
                             actor=actor, evaluated=0, eligible=0)
    session.add(run_row)
    session.flush()
    compiled = compile_rule(session, rule, district_id=district_id, on=on, households_sql=households_sql)
    params = {**(households_params or {}), **_params(session, compiled, on, run_row.pmt_model_id)}
    if households_sql is None:
        _memory_for_whole_registry(session)
    if households_sql is None and session.bind.dialect.name == "postgresql" and _partitioned(session):
        _materialise_postgresql(session, run_row.id, compiled.select_sql, params)
        source = partition_name(run_row.id)
    else:
        session.execute(text(f"""INSERT INTO eligibility_result ({RESULT_COLUMNS})
            SELECT :run_id, household_id, individual_id, district_id, (failed = 0), failed, pmt, age, monthly_income
            FROM ({compiled.select_sql}) x"""), {**params, "run_id": run_row.id})
        source = "eligibility_result"
    evaluated, n_eligible = session.execute(text(
        f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN eligible THEN 1 ELSE 0 END), 0) FROM {source} "
        "WHERE run_id = :run_id"), {"run_id": run_row.id}).one()
    run_row.evaluated, run_row.eligible = int(evaluated), int(n_eligible)
    run_row.seconds = round(time.perf_counter() - started, 3)
    return run_row


# ---------------------------------------------------------------- explanation

@dataclass
class CriterionOutcome:
    id: str
    met: bool
    sentence: str


@dataclass
class Decision:
    program: str
    household_id: int
    individual_id: int | None
    person: str | None
    eligible: bool
    outcomes: list[CriterionOutcome]

    @property
    def summary(self) -> str:
        """The sentence a counter operator reads out: 'eligible' or the first reasons why not."""
        if self.eligible:
            return "eligible: " + "; ".join(o.sentence for o in self.outcomes if o.sentence)
        return "not eligible: " + "; ".join(o.sentence for o in self.outcomes if not o.met)


# A criterion's sentences are written once, in the rule (``fail``/``pass`` and the Urdu
# ``fail_ur``/``pass_ur``), as templates naming the rule's parameters and a decision's values in
# braces. They are rendered in two places, side by side here so a change reaches both: in Python
# (:func:`sentences`, for the counter and the results pages) and in SQL
# (:func:`failure_sentences_sql`, for the set-based re-assessment that stores the reasons).
# A parameter reads as :func:`_number`; a value as :func:`_fmt` / :func:`_value_sql`; any other
# name as "not recorded".

NOT_RECORDED = "not recorded"


def _fmt(value, name: str) -> str:
    """A decision's value as a sentence reads it (Python; :func:`_value_sql` is the SQL twin)."""
    if value is None:
        return NOT_RECORDED if name != "monthly_income" else "not declared"
    if name == "monthly_income":
        return f"Rs {float(value):,.0f}"
    if name == "pmt":
        return f"{float(value):.2f}"
    if isinstance(value, float) or hasattr(value, "as_integer_ratio"):
        return f"{float(value):g}"
    return str(value)


def _value_sql(name: str, r: str, dialect: str) -> str:
    """The SQL twin of :func:`_fmt` for the values an ``eligibility_result`` row ``r`` keeps
    (PMT score, age, declared income); any other name reads "not recorded", as in Python when
    the value is not given (the results pages give only these three).
    The income reads without thousands separators here (``Rs 25000``, Python ``Rs 25,000``):
    kept as the stored review reasons have always read."""
    pmt = (f"CAST(CAST({r}.pmt AS DECIMAL(8, 2)) AS VARCHAR(12))" if dialect == "postgresql"
           else f"PRINTF('%.2f', {r}.pmt)")
    payroll = (f"(SELECT MIN({PAYROLL_NOTE_SQL}) FROM exclusion_flag x WHERE x.household_id = {r}.household_id "
               "AND x.reason = 'public_sector_employee' AND x.active)")
    return {"payroll": f"COALESCE({payroll}, {_sql_literal(NOT_RECORDED)})",
            "pmt": f"CASE WHEN {r}.pmt IS NULL THEN {_sql_literal(NOT_RECORDED)} ELSE {pmt} END",
            "age": f"COALESCE(CAST({r}.age AS VARCHAR(6)), {_sql_literal(NOT_RECORDED)})",
            "monthly_income": f"COALESCE('Rs ' || CAST(CAST({r}.monthly_income AS BIGINT) AS VARCHAR(20)), "
                              "'not declared')"}.get(name, _sql_literal(NOT_RECORDED))


# what the ``payroll`` value of a sentence says: the employer and grade, the source and its date
# ("excluded: a member is on the public-sector payroll (Health Department, BPS 9: payroll payroll-2026-05 #E-1,
# 2026-05-01)": the employer and grade, the feed's delivery and record, the pay month)
PAYROLL_NOTE_SQL = "x.detail || ': ' || x.source_ref || ', ' || CAST(x.effective_date AS VARCHAR(10))"


def payroll_note(session: Session, household_id: int) -> str | None:
    """The household's active public-sector payroll exclusion in words (the ``payroll`` value), or None."""
    return session.execute(text(f"""SELECT MIN({PAYROLL_NOTE_SQL}) FROM exclusion_flag x
        WHERE x.household_id = :h AND x.reason = 'public_sector_employee' AND x.active"""),
                           {"h": household_id}).scalar()


def _number(v: float) -> str:
    """A rule parameter as a sentence reads it, in both renderings."""
    return f"{v:,.0f}" if abs(v) >= 1000 and float(v).is_integer() else f"{v:g}"


def _sql_literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def sentences(rule: Rule, failed: int, values: dict, parameters: dict | None = None,
              lang: str = "en") -> list[CriterionOutcome]:
    """Each criterion's outcome for a decision's failure mask, its sentence rendered in Python."""
    params = {**rule.parameters, **(parameters or {})}
    fmt = _Values({**{k: _number(v) for k, v in params.items()}, **{k: _fmt(v, k) for k, v in values.items()}})
    out = []
    for k, c in enumerate(rule.criteria):
        met = not (failed >> k) & 1
        out.append(CriterionOutcome(c.id, met, c.sentence(met, lang).format_map(fmt)))
    return out


class _Values(dict):
    def __missing__(self, key: str) -> str:
        return NOT_RECORDED


def failure_sentences_sql(rule: Rule, dialect: str, r: str = "r", *, parameters: dict | None = None,
                          lang: str = "en") -> str:
    """A SQL expression for the sentences of the criteria a decision failed, joined by '; ' (the
    order and words of :func:`sentences`), for a set-based statement over ``eligibility_result``
    rows aliased ``r`` (its ``failed`` mask and its values). A criterion without a failure
    sentence is named by its id, so a stored reason is never blank. ``dialect`` is the
    database's ("sqlite" or "postgresql")."""
    params = {**rule.parameters, **(parameters or {})}
    parts = []
    for k, c in enumerate(rule.criteria):
        pieces = []
        for literal, name, _spec, _conv in string.Formatter().parse(c.sentence(False, lang) or c.id):
            if literal:
                pieces.append(_sql_literal(literal))
            if name is None:
                continue
            pieces.append(_sql_literal(_number(params[name])) if name in params else _value_sql(name, r, dialect))
        parts.append(f"CASE WHEN ({r}.failed & {1 << k}) <> 0 THEN '; ' || {' || '.join(pieces)} ELSE '' END")
    return "SUBSTR(" + " || ".join(parts) + ", 3)"


def explain(session: Session, rule: Rule, household_id: int, on: date | None = None,
            overrides: dict[str, str] | None = None, parameters: dict[str, float] | None = None,
            lang: str = "en") -> list[Decision]:
    """Decisions for one household (one per candidate member for member programs), in plain words."""
    compiled = compile_rule(session, rule, household_id=household_id, overrides=overrides, parameters=parameters,
                            on=on)
    rows = session.execute(text(compiled.select_sql + " ORDER BY individual_id"),
                           _params(session, compiled, on or date.today(), None)).mappings().all()
    out = []
    payroll = payroll_note(session, household_id)
    for r in rows:
        values = {"pmt": r["pmt"], "members": r["members"], "monthly_income": r["monthly_income"], "age": r["age"],
                  "payroll": payroll}
        out.append(Decision(rule.code, r["household_id"], r["individual_id"] or None, r["full_name"],
                            int(r["failed"]) == 0, sentences(rule, int(r["failed"]), values, parameters, lang)))
    return out


def results_page(session: Session, run_row: EligibilityRun, *, eligible: bool | None = None,
                 district_id: int | None = None, after: tuple[int, int] | None = None,
                 limit: int = 100) -> list[dict]:
    """A page of a run's materialised decisions, with the reasons rendered from the failure mask."""
    rule = Rule.from_spec(session.get(EligibilityRule, run_row.rule_id).spec)
    stmt = select(EligibilityResult).where(EligibilityResult.run_id == run_row.id)
    if eligible is not None:
        stmt = stmt.where(EligibilityResult.eligible.is_(eligible))
    if district_id is not None:
        stmt = stmt.where(EligibilityResult.district_id == district_id)
    if after is not None:
        stmt = stmt.where((EligibilityResult.household_id > after[0]) |
                          ((EligibilityResult.household_id == after[0]) & (EligibilityResult.individual_id > after[1])))
    rows = list(session.scalars(stmt.order_by(EligibilityResult.household_id, EligibilityResult.individual_id)
                                .limit(limit)))
    homes = sorted({r.household_id for r in rows})
    payrolls = dict(session.execute(text(f"""SELECT x.household_id, MIN({PAYROLL_NOTE_SQL}) FROM exclusion_flag x
        WHERE x.household_id IN ({', '.join(str(int(h)) for h in homes)}) AND x.reason = 'public_sector_employee'
        AND x.active GROUP BY x.household_id""")).all()) if homes else {}
    out = []
    for r in rows:
        outcomes = sentences(rule, r.failed, {"pmt": r.pmt, "age": r.age, "monthly_income": r.monthly_income,
                                              "payroll": payrolls.get(r.household_id)})
        out.append({"household_id": r.household_id, "individual_id": r.individual_id or None,
                    "district_id": r.district_id, "eligible": r.eligible, "pmt": r.pmt,
                    "reasons": [o.sentence for o in outcomes if not o.met]})
    return out


__all__ = ["Rule", "Criterion", "RuleError", "shipped_rules", "install_shipped_rules", "save_rule", "active_rule",
           "compile_rule", "count_eligible", "count_by_district", "run", "explain", "results_page", "sentences",
           "failure_sentences_sql"]

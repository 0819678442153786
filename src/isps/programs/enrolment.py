"""Enrolment on one platform: one path from an eligibility run into a program, and an automatic waiting list.

:func:`enrol_from_run` takes a run of the program's own rule (a run of another program is refused)
and lists every eligible household (or member) of it that passes the duplication filter (not
already on the program, the same CNIC not already on it under another record nor twice in the run:
of a CNIC's lines only the best-ranked goes on, the rest count as duplicates) and the other-programs
filter (not already receiving a program this one cannot be combined with: same kind, an incompatible
pair, read both ways, or a household yearly value past the ceiling, all from the catalogue's rules
(:mod:`isps.catalogue`); found in ISPS's own enrolments and in every partner's resolved list lines, by
the person's cluster and by the household; each refusal stored in ``enrolment_refusal`` with what it
found, read by :func:`refusals`) on the program's waiting list, ranked by the policy's rule
(PMT ascending by default), and then :func:`fill` enrols from the top of the list while the
program has slots and funds, meeting its quotas (e.g. 50% women, 2% persons with disabilities)
first. Whenever a place frees up (an exit, a death read from the registry's ``member.deceased``
events, a graduation, a larger budget) :func:`fill` runs again and the next on the list is
enrolled, with the reason recorded in ``enrolment_event``. All of it is set-based SQL.

The payment channel comes from the recipient's own accounts as the accounts feed reported them
(``financial_account``, active): a bank account → ``bank`` with its IBAN, else a mobile wallet →
``mobile_wallet`` with the wallet number, else a pull channel (a branchless agent in towns; in
villages a cash outlet, or Pakistan Post where the recipient has no phone for the pickup SMS).
:func:`refresh_channels` applies the same choice again (a new or closed account, a new recipient);
the payroll calls it for a cycle's enrolments before making the instructions.
"""

from __future__ import annotations

import math
from datetime import date

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from isps import catalogue, keyset
from isps.programs import counts
from isps.programs.models import Enrolment, EnrolmentEvent, EnrolmentPolicy
from isps.registry import events
from isps.registry import current

ACTIVE = ("enrolled", "suspended")
OPEN = ("waiting", "enrolled", "suspended")
CONSUMER = "programs.enrolment"
CHANNELS = ("bank", "mobile_wallet", "agent", "cash_outlet", "post")
PULL = ("agent", "cash_outlet", "post")
REFUSALS = ("same_kind", "incompatible", "ceiling")  # kept off because of another program

# Defaults from ../shared/DOMAIN.md (003 L299-L319): amounts per cycle, quotas, incompatibilities.
DEFAULT_POLICIES: dict[str, dict] = {
    "bisp_kafaalat": {"unit": "household", "frequency": "quarterly", "spec": {
        "amount": {"kind": "fixed", "amount": 8500},
        "top_ups": [], "quotas": [], "incompatible": [], "rank_by": "pmt",
        "graduation": {"pmt_above": 40, "refer_to": "ppaf_interest_free_loans"}}},
    "bisp_nashonuma": {"unit": "member", "frequency": "quarterly", "spec": {
        "amount": {"kind": "by_sex", "mother": 2000, "boy": 2000, "girl": 2500},
        "top_ups": [], "quotas": [], "incompatible": [], "rank_by": "pmt",
        "conditions": ["health_visit"], "graduation": {"age_above": 2, "except_mothers": True}}},
    "bisp_taleemi_wazaif": {"unit": "member", "frequency": "quarterly", "spec": {
        "amount": {"kind": "fixed", "amount": 2500}, "top_ups": [{"when": "female", "amount": 500}],
        "quotas": [], "incompatible": [], "rank_by": "pmt",
        "conditions": ["school_attendance"], "graduation": {"age_above": 22}}},
    "undergraduate_scholarship": {"unit": "member", "frequency": "semester", "spec": {
        "amount": {"kind": "fixed", "amount": 40000}, "top_ups": [],
        "quotas": [{"attribute": "female", "share": 0.5}, {"attribute": "disabled", "share": 0.02}],
        "incompatible": [], "rank_by": "pmt", "graduation": {"cycles": 8}}},
    "pbm_financial_assistance": {"unit": "member", "frequency": "once", "spec": {
        "amount": {"kind": "fixed", "amount": 10000}, "top_ups": [], "quotas": [],
        "incompatible": ["bisp_kafaalat"], "rank_by": "pmt", "graduation": {"cycles": 1}}},
    "ppaf_interest_free_loans": {"unit": "household", "frequency": "once", "spec": {
        "amount": {"kind": "fixed", "amount": 50000}, "top_ups": [], "quotas": [], "incompatible": [],
        "rank_by": "pmt", "graduation": {"cycles": 1}}},
}


MAX_PAGE = 10_000  # rows in one listing


class EnrolmentError(ValueError):
    """A request the enrolment rules refuse; the message is safe to show."""


# ---------------------------------------------------------------- policies

def policy(session: Session, code: str) -> EnrolmentPolicy:
    row = session.get(EnrolmentPolicy, code)
    if row is None:
        default = DEFAULT_POLICIES.get(code)
        if default is None:
            raise EnrolmentError(f"there is no enrolment policy for program '{code}'")
        row = EnrolmentPolicy(program_code=code, unit=default["unit"], frequency=default["frequency"],
                              spec=default["spec"], updated_by="system")
        session.add(row)
        session.flush()
    return row


def set_policy(session: Session, code: str, actor: str, *, unit: str | None = None, frequency: str | None = None,
               spec: dict | None = None) -> EnrolmentPolicy:
    row = policy(session, code)
    if unit:
        row.unit = unit
    if frequency:
        row.frequency = frequency
    if spec is not None:
        row.spec = {**row.spec, **spec}
    row.updated_by = actor
    session.flush()
    return row


def unit_cost(spec: dict) -> float:
    """What one enrolment costs per cycle at most (the budget cap counts places at this price)."""
    amount = spec.get("amount", {})
    base = max([float(v) for k, v in amount.items() if k not in ("kind", "per_member_of")] or [0.0])
    return base + sum(float(t.get("amount", 0)) for t in spec.get("top_ups", []))


def capacity(session: Session, code: str) -> int | None:
    """Places the program can hold: the smaller of its slots and its budget per cycle ÷ unit cost."""
    row = policy(session, code)
    caps = []
    if row.slots is not None:
        caps.append(int(row.slots))
    if row.budget_per_cycle is not None:
        cost = unit_cost(row.spec)
        caps.append(int(row.budget_per_cycle // cost) if cost > 0 else 0)
    return min(caps) if caps else None


def set_capacity(session: Session, code: str, actor: str, *, slots: int | None = None,
                 budget: float | None = None, on: date | None = None, clear: bool = False) -> int:
    """Change slots or the budget per cycle; a larger one enrols from the waiting list at once."""
    row = policy(session, code)
    before = capacity(session, code)
    if clear or slots is not None:
        row.slots = slots
    if clear or budget is not None:
        row.budget_per_cycle = budget
    row.updated_by = actor
    session.flush()
    after = capacity(session, code)
    what = "budget increase" if budget is not None else "more slots"
    reason = f"{what}: capacity {before if before is not None else 'open'} → {after if after is not None else 'open'}"
    return fill(session, code, reason, actor, on)


# ---------------------------------------------------------------- payment channels

def channel_sql(urban: str, phone: str, accounts: str = "a") -> tuple[str, str]:
    """SQL for (channel, account) of a recipient: their bank account, else their wallet, else a pull
    channel (agent in towns; cash outlet in villages, Pakistan Post without a phone). ``accounts`` is
    the alias of :func:`best_accounts` joined to the recipient by the caller. Uses ``:yes``."""
    bank, wallet = f"{accounts}.bank", f"{accounts}.wallet"
    channel = (f"CASE WHEN {bank} IS NOT NULL THEN 'bank' WHEN {wallet} IS NOT NULL THEN 'mobile_wallet' "
               f"WHEN {urban} = :yes THEN 'agent' WHEN {phone} IS NOT NULL THEN 'cash_outlet' ELSE 'post' END")
    return channel, f"COALESCE({bank}, {wallet})"


def best_accounts(recipients: str) -> str:
    """SQL: one row per person of ``recipients`` (a SELECT of individual ids) with their newest
    active bank account and wallet (columns ``individual_id``, ``bank``, ``wallet``), one pass over
    their accounts: joined, not probed per enrolment."""
    return f"""SELECT z.individual_id,
            MAX(CASE WHEN z.kind = 'bank' THEN z.account_number END) AS bank,
            MAX(CASE WHEN z.kind = 'wallet' THEN z.account_number END) AS wallet
        FROM (SELECT fa.individual_id, fa.kind, fa.account_number,
                     ROW_NUMBER() OVER (PARTITION BY fa.individual_id, fa.kind
                                        ORDER BY fa.opened_on DESC, fa.id DESC) AS k
              FROM financial_account fa WHERE fa.status = 'active' AND fa.individual_id IN ({recipients})) z
        WHERE z.k = 1 GROUP BY z.individual_id"""


def refresh_channels(session: Session, where: str = "1 = 1", params: dict | None = None) -> int:
    """Set the channel, account and phone of the open enrolments matching ``where`` (SQL over the
    enrolment ``e``, written by the caller) from the recipient's current accounts, set-based: the
    same choice as :func:`channel_sql`, with the accounts joined once. Returns how many changed."""
    scope = f"e.status IN ('waiting','enrolled','suspended') AND ({where})"
    channel, account = channel_sql("h.urban", "p.phone")
    res = session.execute(text(f"""UPDATE enrolment SET channel = x.channel, account = x.account, phone = x.phone
        FROM (SELECT e.id, {channel} AS channel, {account} AS account, p.phone AS phone
              FROM enrolment e JOIN household h ON h.id = e.household_id
              LEFT JOIN individual p ON p.id = e.recipient_id
              LEFT JOIN ({best_accounts(f"SELECT e.recipient_id FROM enrolment e WHERE {scope}")}) a
                ON a.individual_id = e.recipient_id
              WHERE {scope}) x
        WHERE enrolment.id = x.id AND (enrolment.channel <> x.channel
            OR COALESCE(enrolment.account, '') <> COALESCE(x.account, '')
            OR COALESCE(enrolment.phone, '') <> COALESCE(x.phone, ''))"""), {**(params or {}), "yes": True})
    return int(res.rowcount or 0)


# ---------------------------------------------------------------- the one path in

def _counts(session: Session, code: str) -> dict[str, int]:
    """The program's enrolments per status, from the counts the database keeps (:mod:`.counts`)."""
    session.flush()  # an enrolment changed through the ORM is counted once it reaches the database
    return counts.by_status(session, code)


def incompatible_with(session: Session, code: str) -> list[str]:
    """The programs ``code`` cannot be combined with, both ways: those its policy lists and those
    whose policy lists it (A incompatible with B means B is incompatible with A)."""
    own = set(policy(session, code).spec.get("incompatible", []))
    specs = {c: d["spec"] for c, d in DEFAULT_POLICIES.items()}
    specs.update({p.program_code: p.spec for p in session.scalars(select(EnrolmentPolicy))})
    listed_by = {c for c, spec in specs.items() if code in (spec or {}).get("incompatible", [])}
    return sorted((own | listed_by) - {code})


def _analyze(session: Session, table: str) -> None:
    """Fresh statistics for a temporary table on PostgreSQL (autovacuum never sees one), so the
    joins that follow are planned on its real size."""
    if session.bind.dialect.name == "postgresql":
        session.execute(text(f"ANALYZE {table}"))


def _in(params: dict, prefix: str, values: list[str]) -> str:
    params.update({f"{prefix}{k}": v for k, v in enumerate(values)})
    return ", ".join(f":{prefix}{k}" for k in range(len(values))) or "NULL"


def _clashes(session: Session, code: str, unit: str, conflicts: list, params: dict) -> str:
    """Fill ``enrol_clash`` with one row per candidate of ``enrol_cand`` who already receives a program
    ``code`` cannot be combined with: an active ISPS enrolment first, else a partner's resolved list
    line, found through the person (the line's person cluster is the applicant's, whatever CNIC or
    record it came under, or the line was linked to the applicant's registry record) and, where
    either program is paid per household, through the household. Returns the SQL (over ``cl``) for
    the refusal's rule. One INSERT … SELECT; the conflicts list is a handful of program codes."""
    cols = ("household_id BIGINT, individual_id BIGINT, other_program VARCHAR(40), source VARCHAR(10), "
            "other_ref BIGINT, batch_id BIGINT, partner_ref VARCHAR(60)")
    session.execute(text(f"CREATE TEMPORARY TABLE enrol_clash ({cols})"))
    if not conflicts:
        return "'incompatible'"
    codes = [c.program for c in conflicts]
    units = dict(session.execute(text(f"SELECT code, unit FROM program WHERE code IN ({_in(params, 'cf', codes)})"),
                                 params).all())
    by_household = codes if unit == "household" else [c for c in codes if units.get(c) == "household"]
    same_kind = [c.program for c in conflicts if c.rule == "same_kind"]
    conf, hh = _in(params, "cf", codes), _in(params, "ch", by_household)
    none = "CAST(NULL AS BIGINT) AS batch_id, CAST(NULL AS VARCHAR(60)) AS partner_ref"
    ours = "SELECT k.household_id, k.individual_id, k.person_id FROM enrol_cand k WHERE k.verdict = 'candidate'"
    enrolled = "e.program_code IN ({conf}) AND e.status IN ('enrolled','suspended')".format(conf=conf)
    other = (f"SELECT k.household_id, k.individual_id, e.program_code AS other_program, 'enrolment' AS source, "
             f"e.id AS other_ref, {none}, 0 AS pri FROM ({ours}) k JOIN enrolment e ON ")
    if unit == "household":
        isps = [f"{other} e.household_id = k.household_id WHERE {enrolled}"]
    else:
        isps = [f"{other} e.individual_id = k.individual_id WHERE {enrolled}",
                f"{other} e.household_id = k.household_id AND e.individual_id = 0 WHERE {enrolled}"]
    line = ("b.program_code AS other_program, 'list' AS source, b.id AS other_ref, b.batch_id, b.partner_ref, "
            "1 AS pri")
    lists = [f"SELECT k.household_id, k.individual_id, {line} FROM ({ours}) k "
             f"JOIN person pp ON pp.individual_id = k.person_id "
             f"JOIN beneficiary b ON b.person_id = COALESCE(pp.merged_into, pp.id) WHERE b.program_code IN ({conf})",
             f"SELECT k.household_id, k.individual_id, {line} FROM ({ours}) k "
             f"JOIN beneficiary b ON b.individual_id = k.person_id WHERE b.program_code IN ({conf})"]
    if by_household:
        lists.append(f"SELECT k.household_id, k.individual_id, {line} FROM ({ours}) k "
                     f"JOIN beneficiary b ON b.household_id = k.household_id WHERE b.program_code IN ({hh})")
    found = " UNION ALL ".join(isps + lists)
    session.execute(text(f"""INSERT INTO enrol_clash
        SELECT y.household_id, y.individual_id, y.other_program, y.source, y.other_ref, y.batch_id, y.partner_ref
        FROM (SELECT x.*, ROW_NUMBER() OVER (PARTITION BY x.household_id, x.individual_id
                                             ORDER BY x.pri, x.other_program, x.other_ref) AS nth
              FROM ({found}) x) y
        WHERE y.nth = 1"""), params)
    _analyze(session, "enrol_clash")
    return f"CASE WHEN cl.other_program IN ({_in(params, 'sk', same_kind)}) THEN 'same_kind' ELSE 'incompatible' END"


def _over_ceiling(session: Session, code: str, params: dict) -> None:
    """Fill ``enrol_value`` with the candidates' households whose yearly value from every program
    (partner lines and active ISPS enrolments, at the catalogue's yearly value where a line gives
    none) plus this program's would pass the catalogue's household ceiling; each with its largest
    other benefit, the one the refusal names. Set-based: one GROUP BY over the households' lines."""
    cols = ("household_id BIGINT, other_program VARCHAR(40), source VARCHAR(10), other_ref BIGINT, "
            "batch_id BIGINT, partner_ref VARCHAR(60), total FLOAT")
    session.execute(text(f"CREATE TEMPORARY TABLE enrol_value ({cols})"))
    ceiling = catalogue.household_ceiling(session)
    mine = session.execute(text("SELECT COALESCE(amount_pkr, 0) * payments_per_year FROM program WHERE code = :code"),
                           params).scalar()
    if ceiling is None or not mine:
        return
    homes = "SELECT DISTINCT k.household_id FROM enrol_cand k WHERE k.verdict = 'candidate'"
    yearly = "COALESCE(p.amount_pkr, 0) * p.payments_per_year"
    values = f"""SELECT k.household_id, b.program_code AS other_program, 'list' AS source, b.id AS other_ref,
            b.batch_id, b.partner_ref, COALESCE(b.yearly_value, {yearly}) AS v
        FROM ({homes}) k JOIN beneficiary b ON b.household_id = k.household_id JOIN program p ON p.code = b.program_code
        UNION ALL
        SELECT k.household_id, e.program_code, 'enrolment', e.id, CAST(NULL AS BIGINT), CAST(NULL AS VARCHAR(60)),
            {yearly}
        FROM ({homes}) k JOIN enrolment e ON e.household_id = k.household_id AND e.status IN ('enrolled','suspended')
        JOIN program p ON p.code = e.program_code WHERE e.program_code <> :code"""
    session.execute(text(f"""INSERT INTO enrol_value
        SELECT y.household_id, y.other_program, y.source, y.other_ref, y.batch_id, y.partner_ref, y.total + :mine
        FROM (SELECT x.*, SUM(x.v) OVER (PARTITION BY x.household_id) AS total,
                     ROW_NUMBER() OVER (PARTITION BY x.household_id ORDER BY x.v DESC, x.other_ref) AS nth
              FROM ({values}) x) y
        WHERE y.nth = 1 AND y.total + :mine > :ceiling"""), {**params, "mine": float(mine), "ceiling": ceiling})
    _analyze(session, "enrol_value")


def conflicts_of(session: Session, code: str) -> list:
    """Every program ``code`` cannot be combined with: the catalogue's rules (same kind, incompatible
    pairs) and the enrolment policies' own lists, both ways."""
    try:
        extra = tuple(incompatible_with(session, code))
    except EnrolmentError:  # a catalogue program nobody enrols into through ISPS
        extra = ()
    return catalogue.conflicts(session, code, extra)


class NotFound(EnrolmentError):
    """The enrolment or run asked for does not exist."""


def enrol_from_run(session: Session, code: str, run_id: int, actor: str, on: date | None = None) -> dict:
    """List a run's eligible decisions on the program's waiting list through the duplication
    filter, then enrol from the list as capacity allows. Returns what happened to each.
    The run must be a run of the program's own rule."""
    from isps.targeting.eligibility.models import EligibilityRule, EligibilityRun
    run = session.get(EligibilityRun, run_id)
    if run is None:
        raise NotFound(f"there is no eligibility run {run_id}")
    rule = session.get(EligibilityRule, run.rule_id)
    run_program = rule.program_code if rule is not None else None
    if run_program != code:
        raise EnrolmentError(f"eligibility run {run_id} is a run of program '{run_program}', not of '{code}': "
                             f"it cannot enrol anyone into '{code}'")
    return _list_and_fill(session, code, run_id, actor, on)


def _list_and_fill(session: Session, code: str, run_id: int, actor: str, on: date | None = None,
                   reason: str | None = None) -> dict:
    """The one path in, for a run already checked to be the program's own. ``reason`` (default
    "eligible in run N") is recorded for the listing and the enrolment."""
    on = on or date.today()
    pol = policy(session, code)
    unit = pol.unit
    params = {"run": run_id, "code": code, "on": on, "actor": actor}
    adult = date(on.year - 18, on.month, min(on.day, 28))
    params["adult"] = adult
    # the recipient: the person for adult members; else the household's eldest living adult woman, else the head
    woman = ("(SELECT MIN(w.id) FROM individual w WHERE w.household_id = r.household_id AND w.sex = 'female' "
             f"AND {current.sql('w')} AND w.date_of_birth <= :adult)")
    head = ("(SELECT MIN(hd.id) FROM individual hd WHERE hd.household_id = r.household_id "
            f"AND {current.sql('hd')})")
    if unit == "household":
        recipient = f"COALESCE({woman}, {head})"
        female = "p.sex = 'female'"
        disabled = ("EXISTS (SELECT 1 FROM individual d WHERE d.household_id = c.household_id "
                    f"AND d.disability <> 'none' AND {current.sql('d')})")
    else:
        recipient = (f"CASE WHEN (SELECT m.date_of_birth FROM individual m WHERE m.id = r.individual_id) <= :adult "
                     f"THEN r.individual_id ELSE COALESCE({woman}, {head}) END")
        female = "(SELECT m.sex FROM individual m WHERE m.id = c.individual_id) = 'female'"
        disabled = "(SELECT m.disability FROM individual m WHERE m.id = c.individual_id) <> 'none'"
    # whose CNIC identifies the person: the recipient of a household benefit, else the member
    person = "c.recipient_id" if unit == "household" else "c.individual_id"
    person_of_enrolment = "e.recipient_id" if unit == "household" else "e.individual_id"
    same = ("EXISTS (SELECT 1 FROM enrolment e WHERE e.program_code = :code AND e.household_id = k.household_id "
            "AND e.individual_id = k.individual_id)")
    # the same person under another record (a duplicate registration): the same CNIC already on the program ...
    cnic_dup = (f"(k.cnic IS NOT NULL AND EXISTS (SELECT 1 FROM enrolment e JOIN individual ei "
                f"ON ei.id = {person_of_enrolment} WHERE e.program_code = :code "
                "AND e.status IN ('waiting','enrolled','suspended') AND ei.cnic = k.cnic))")
    # ... or twice in this run: only the best-ranked line of a CNIC goes on (ties by household, member)
    rank = ("c.household_id, c.individual_id" if pol.spec.get("rank_by") == "listed_on"
            else "CASE WHEN c.pmt IS NULL THEN 1 ELSE 0 END, c.pmt, c.household_id, c.individual_id")
    params["yes"] = True
    candidates = f"""SELECT r.household_id, r.individual_id, r.district_id, r.pmt, {recipient} AS recipient_id
        FROM eligibility_result r WHERE r.run_id = :run AND r.eligible = :yes"""
    keyed = f"""SELECT c.household_id, c.individual_id, c.district_id, c.pmt, c.recipient_id, {person} AS person_id,
            n.cnic, ROW_NUMBER() OVER (PARTITION BY n.cnic ORDER BY {rank}) AS nth
        FROM ({candidates}) c LEFT JOIN individual n ON n.id = {person}"""
    for name in ("enrol_cand", "enrol_clash", "enrol_value"):
        session.execute(text(f"DROP TABLE IF EXISTS {name}"))
    # 1. the run's candidates, the duplicates of this program marked (materialised once: every later
    #    step joins it instead of re-running the eligibility result's subqueries)
    session.execute(text(f"""CREATE TEMPORARY TABLE enrol_cand AS
        SELECT k.household_id, k.individual_id, k.district_id, k.pmt, k.recipient_id, k.person_id,
            CASE WHEN (k.cnic IS NOT NULL AND k.nth > 1) OR {same} OR {cnic_dup} THEN 'duplicate'
                 ELSE 'candidate' END AS verdict
        FROM ({keyed}) k"""), params)
    _analyze(session, "enrol_cand")
    # 2. every other program they receive that this one cannot be combined with (catalogue rules)
    conflicts = conflicts_of(session, code)
    clash_rule = _clashes(session, code, unit, conflicts, params)
    # 3. the household's yearly value from every program, with this one, against the ceiling
    _over_ceiling(session, code, params)
    judged = f"""SELECT k.household_id, k.individual_id, k.district_id, k.pmt, k.recipient_id,
            CASE WHEN k.verdict = 'duplicate' THEN 'duplicate' WHEN cl.household_id IS NOT NULL THEN {clash_rule}
                 WHEN cv.household_id IS NOT NULL THEN 'ceiling' ELSE 'listed' END AS verdict
        FROM enrol_cand k
        LEFT JOIN enrol_clash cl ON cl.household_id = k.household_id AND cl.individual_id = k.individual_id
        LEFT JOIN enrol_value cv ON cv.household_id = k.household_id"""
    verdicts = {v: int(n) for v, n in session.execute(
        text(f"SELECT j.verdict, COUNT(*) FROM ({judged}) j GROUP BY j.verdict"), params)}
    eligible = sum(verdicts.values())
    session.execute(text(f"""INSERT INTO enrolment_refusal (program_code, run_id, household_id, individual_id,
            person_individual_id, district_id, rule, other_program, source, other_ref, batch_id, partner_ref,
            yearly_value, actor, on_date)
        SELECT :code, :run, k.household_id, k.individual_id, k.person_id, k.district_id,
            CASE WHEN cl.household_id IS NOT NULL THEN {clash_rule} ELSE 'ceiling' END,
            COALESCE(cl.other_program, cv.other_program), COALESCE(cl.source, cv.source),
            COALESCE(cl.other_ref, cv.other_ref), COALESCE(cl.batch_id, cv.batch_id),
            COALESCE(cl.partner_ref, cv.partner_ref), cv.total, :actor, :on
        FROM enrol_cand k
        LEFT JOIN enrol_clash cl ON cl.household_id = k.household_id AND cl.individual_id = k.individual_id
        LEFT JOIN enrol_value cv ON cv.household_id = k.household_id
        WHERE k.verdict = 'candidate' AND (cl.household_id IS NOT NULL OR cv.household_id IS NOT NULL)"""),
                    params)
    channel, account = channel_sql("h.urban", "p.phone")
    # the accounts of everyone in the run's eligible households (a superset of the recipients), joined once
    accounts = best_accounts("SELECT m.id FROM individual m WHERE m.household_id IN (SELECT r.household_id "
                             "FROM eligibility_result r WHERE r.run_id = :run AND r.eligible = :yes)")
    listed_why = (reason or f"eligible in run {run_id}")[:200]
    before = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM enrolment")).scalar_one()
    session.execute(text(f"""
        INSERT INTO enrolment (program_code, household_id, individual_id, recipient_id, district_id, tehsil_id,
                               status, rank_value, female, disabled, channel, account, phone, run_id, warnings,
                               listed_on, reason)
        SELECT :code, c.household_id, c.individual_id, c.recipient_id, c.district_id, h.tehsil_id, 'waiting',
               c.pmt, COALESCE({female}, :no), COALESCE({disabled}, :no), {channel}, {account}, p.phone, :run, 0,
               :on, :why
        FROM ({judged}) c
        JOIN household h ON h.id = c.household_id
        LEFT JOIN individual p ON p.id = c.recipient_id
        LEFT JOIN ({accounts}) a ON a.individual_id = c.recipient_id
        WHERE c.verdict = 'listed'
        ORDER BY c.household_id, c.individual_id"""), {**params, "no": False, "why": listed_why})
    for name in ("enrol_cand", "enrol_clash", "enrol_value"):
        session.execute(text(f"DROP TABLE IF EXISTS {name}"))
    session.execute(text("""INSERT INTO enrolment_event (enrolment_id, program_code, status, reason, actor, on_date)
        SELECT id, program_code, 'waiting', reason, :actor, :on FROM enrolment WHERE id > :before
        AND program_code = :code"""), {**params, "before": before})
    listed = session.execute(text("SELECT COUNT(*) FROM enrolment WHERE id > :before AND program_code = :code"),
                             {"before": before, "code": code}).scalar_one()
    enrolled = fill(session, code, f"enrolled: {reason}" if reason else f"enrolled from run {run_id}", actor, on)
    refused = {k: verdicts.get(k, 0) for k in REFUSALS}
    return {"program": code, "run_id": run_id, "eligible": int(eligible), "duplicates": verdicts.get("duplicate", 0),
            "incompatible": sum(refused.values()), "refused": refused, "listed": int(listed), "enrolled": enrolled,
            "waiting": _counts(session, code).get("waiting", 0)}


def enrol_one(session: Session, code: str, household_id: int, individual_id: int, actor: str,
              reason: str, on: date | None = None, rank_value: float | None = None) -> tuple[str, int | None]:
    """List one household or person (a referral, a counter's application) through the same filter:
    a one-row eligibility run stands in, so there is still only one path in."""
    from isps.targeting.eligibility.models import EligibilityResult, EligibilityRun
    on = on or date.today()
    row = session.scalar(select(EligibilityRun).where(EligibilityRun.actor == "referral:" + code))
    if row is None:
        rule_id = session.execute(text("SELECT MIN(id) FROM eligibility_rule")).scalar()
        if rule_id is None:
            raise EnrolmentError("no eligibility rule is installed")
        row = EligibilityRun(rule_id=rule_id, on_date=on, actor="referral:" + code, evaluated=0, eligible=0)
        session.add(row)
        session.flush()
    district = session.execute(text("SELECT district_id FROM household WHERE id = :h"),
                               {"h": household_id}).scalar_one()
    session.execute(text("DELETE FROM eligibility_result WHERE run_id = :r"), {"r": row.id})
    session.add(EligibilityResult(run_id=row.id, household_id=household_id, individual_id=individual_id,
                                  district_id=district, eligible=True, failed=0, pmt=rank_value))
    session.flush()
    result = _list_and_fill(session, code, row.id, actor, on)
    session.execute(text("DELETE FROM eligibility_result WHERE run_id = :r"), {"r": row.id})
    if result["listed"] == 0:
        # "incompatible": kept off because of another program (its refusal is stored, see last_refusal)
        return ("duplicate" if result["duplicates"] else "incompatible"), None
    e = session.scalar(select(Enrolment).where(Enrolment.program_code == code, Enrolment.household_id == household_id,
                                               Enrolment.individual_id == individual_id))
    session.execute(text("UPDATE enrolment_event SET reason = :r WHERE enrolment_id = :e AND status = 'waiting'"),
                    {"r": reason[:200], "e": e.id})
    e.reason = reason[:200]
    return "listed", e.id


# ---------------------------------------------------------------- refusals

def _refusals_where(program: str | None, household_id: int | None, district_id: int | None, rule: str | None):
    where, p = ["1 = 1"], {}
    if program:
        where.append("f.program_code = :program")
        p["program"] = program
    if household_id is not None:
        where.append("f.household_id = :household")
        p["household"] = household_id
    if district_id is not None:
        where.append("f.district_id = :district")
        p["district"] = district_id
    if rule in REFUSALS:
        where.append("f.rule = :rule")
        p["rule"] = rule
    return " AND ".join(where), p


def refusals(session: Session, *, program: str | None = None, household_id: int | None = None,
             district_id: int | None = None, rule: str | None = None, after: int | None = None,
             limit: int = 100) -> list[dict]:
    """The stored refusals (newest first, keyset ``after`` = the last id shown), each with what it
    found: the other program's name, agency and kind, and for a partner's line the list (partner,
    reference, date received) and the line's own reference; ``reason`` says it in plain English
    (:func:`refusal_reason`; the web page words it in the reader's language from the same fields)."""
    if not 1 <= limit <= MAX_PAGE:
        raise EnrolmentError(f"limit must be from 1 to {MAX_PAGE}, not {limit}")
    where, p = _refusals_where(program, household_id, district_id, rule)
    if after is not None:
        where += " AND f.id < :after"
        p["after"] = after
    rows = session.execute(text(f"""SELECT f.id, f.program_code, f.household_id, f.individual_id,
            f.person_individual_id, f.district_id, f.rule, f.other_program, f.source, f.other_ref, f.partner_ref,
            f.yearly_value, f.on_date, f.actor, f.run_id, o.name AS other_name, o.agency AS other_agency,
            o.kind AS other_kind, mine.name AS program_name, bb.partner, bb.reference, bb.received_at,
            i.full_name AS person_name
        FROM enrolment_refusal f
        LEFT JOIN program o ON o.code = f.other_program
        LEFT JOIN program mine ON mine.code = f.program_code
        LEFT JOIN beneficiary_batch bb ON bb.id = f.batch_id
        LEFT JOIN individual i ON i.id = f.person_individual_id
        WHERE {where} ORDER BY f.id DESC LIMIT :limit"""), {**p, "limit": limit}).mappings().all()
    ceiling = catalogue.household_ceiling(session)
    why: dict[str, dict] = {}
    out = []
    for r in rows:
        if r["program_code"] not in why:
            why[r["program_code"]] = {c.program: c for c in conflicts_of(session, r["program_code"])}
        received = r["received_at"]
        row = {"id": r["id"], "program": r["program_code"], "program_name": r["program_name"] or r["program_code"],
               "household_id": r["household_id"], "individual_id": r["individual_id"] or None,
               "person_id": r["person_individual_id"], "person_name": r["person_name"],
               "district_id": r["district_id"], "rule": r["rule"], "other_program": r["other_program"],
               "other_name": r["other_name"] or r["other_program"], "other_agency": r["other_agency"] or "",
               "other_kind": r["other_kind"] or "", "source": r["source"], "other_ref": r["other_ref"],
               "partner": r["partner"], "list_reference": r["reference"], "partner_ref": r["partner_ref"],
               "list_received": str(received)[:10] if received else None,
               "why": getattr(why[r["program_code"]].get(r["other_program"]), "why", ""),
               "why_ur": getattr(why[r["program_code"]].get(r["other_program"]), "why_ur", ""),
               "household_yearly_value": r["yearly_value"], "ceiling": ceiling,
               "on": r["on_date"].isoformat() if hasattr(r["on_date"], "isoformat") else str(r["on_date"]),
               "actor": r["actor"], "run_id": r["run_id"]}
        row["reason"] = refusal_reason(row)
        out.append(row)
    return out


def count_refusals(session: Session, *, program: str | None = None, household_id: int | None = None,
                   district_id: int | None = None, rule: str | None = None) -> int:
    where, p = _refusals_where(program, household_id, district_id, rule)
    return int(session.execute(text(f"SELECT COUNT(*) FROM enrolment_refusal f WHERE {where}"), p).scalar_one())


def refusal_source(row: dict) -> str:
    """Where the other benefit was found, in plain English."""
    if row["source"] == "list":
        return (f"line {row['partner_ref']} of the list \u201c{row['list_reference']}\u201d from {row['partner']}, "
                f"received {row['list_received']}")
    return f"ISPS enrolment {row['other_ref']}"


def refusal_reason(row: dict) -> str:
    """One refusal in plain English, naming the other program, its agency and the list it came from."""
    other = f"{row['other_name']} ({row['other_agency']})"
    src = refusal_source(row)
    if row["rule"] == "same_kind":
        return (f"already receives {other}, which pays for the same need "
                f"({row['other_kind'].replace('_', ' ')}): {src}")
    if row["rule"] == "ceiling":
        return (f"the household would receive PKR {row['household_yearly_value'] or 0:,.0f} a year from all programs, "
                f"above the ceiling of PKR {row['ceiling'] or 0:,.0f}; the largest is {other}: {src}")
    because = f" ({row['why']})" if row.get("why") else ""
    return f"already receives {other}, which cannot be combined with this program{because}: {src}"


def last_refusal(session: Session, code: str, household_id: int, individual_id: int) -> dict | None:
    """The newest refusal of one household or person for a program (what a counter shows)."""
    rid = session.execute(text("""SELECT MAX(id) FROM enrolment_refusal WHERE program_code = :c
        AND household_id = :h AND individual_id = :i"""), {"c": code, "h": household_id, "i": individual_id}).scalar()
    if rid is None:
        return None
    rows = refusals(session, program=code, household_id=household_id, after=rid + 1, limit=1)
    return rows[0] if rows else None


# ---------------------------------------------------------------- the waiting list

def _promote(session: Session, code: str, n: int, where: str, reason: str, actor: str, on: date, order: str) -> int:
    if n <= 0:
        return 0
    mark = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM enrolment_event")).scalar_one()
    session.execute(text(f"""INSERT INTO enrolment_event (enrolment_id, program_code, status, reason, actor, on_date)
        SELECT id, program_code, 'enrolled', :reason, :actor, :on FROM enrolment
        WHERE id IN (SELECT id FROM enrolment WHERE program_code = :code AND status = 'waiting' {where}
                     ORDER BY {order} LIMIT :n)"""),
                    {"code": code, "n": n, "reason": reason[:200], "actor": actor, "on": on, "yes": True})
    res = session.execute(text("""UPDATE enrolment SET status = 'enrolled', enrolled_on = :on, reason = :reason
        WHERE id IN (SELECT enrolment_id FROM enrolment_event WHERE id > :mark AND status = 'enrolled')"""),
                          {"on": on, "reason": reason[:200], "mark": mark})
    return int(res.rowcount or 0)


def fill(session: Session, code: str, reason: str, actor: str = "system", on: date | None = None) -> int:
    """Enrol from the top of the waiting list while there are places, quotas first. Returns how many."""
    on = on or date.today()
    pol = policy(session, code)
    order = ("listed_on, id" if pol.spec.get("rank_by") == "listed_on"
             else "CASE WHEN rank_value IS NULL THEN 1 ELSE 0 END, rank_value, id")
    counts = _counts(session, code)
    active = sum(counts.get(s, 0) for s in ACTIVE)
    waiting = counts.get("waiting", 0)
    cap = capacity(session, code)
    free = waiting if cap is None else max(0, min(cap - active, waiting))
    if free <= 0:
        return 0
    total = active + free
    promoted = 0
    for quota in pol.spec.get("quotas", []):
        attr = quota["attribute"]
        if attr not in ("female", "disabled"):
            continue
        have = session.execute(text(f"SELECT COUNT(*) FROM enrolment WHERE program_code = :c AND {attr} = :yes "
                                    "AND status IN ('enrolled','suspended')"), {"c": code, "yes": True}).scalar_one()
        need = math.ceil(float(quota["share"]) * total) - int(have)
        promoted += _promote(session, code, min(need, free - promoted), f"AND {attr} = :yes",
                             f"{reason} (quota: {attr})", actor, on, order)
    promoted += _promote(session, code, free - promoted, "", reason, actor, on, order)
    return promoted


class OutOfScope(EnrolmentError):
    """The enrolment is in another district than the officer's."""


def open_for_decision(session: Session, enrolment_id: int, reason: str, district_scope: int | None = None,
                      lock: bool = False) -> Enrolment:
    """The enrolment an officer decides on (exit, suspension, keeping it after a review): it must
    exist, be in the officer's district, and the decision must say why."""
    e = session.get(Enrolment, enrolment_id, with_for_update=lock)
    if e is None:
        raise NotFound(f"there is no enrolment {enrolment_id}")
    if district_scope is not None and e.district_id != district_scope:
        raise OutOfScope(f"enrolment {enrolment_id} is outside your district")
    if not reason.strip():
        raise EnrolmentError("a reason is required")
    return e


def end(session: Session, enrolment_id: int, status: str, reason: str, actor: str,
        on: date | None = None, district_scope: int | None = None) -> dict:
    """Exit, graduate, suspend or reinstate one enrolment; a freed place goes to the next on the list."""
    on = on or date.today()
    e = open_for_decision(session, enrolment_id, reason, district_scope, lock=True)
    allowed = {"exited": OPEN, "graduated": ACTIVE, "suspended": ("enrolled",), "enrolled": ("suspended",),
               "deceased": OPEN}
    if status not in allowed:
        raise EnrolmentError(f"'{status}' is not a status an enrolment can be moved to")
    if e.status not in allowed[status]:
        raise EnrolmentError(f"enrolment {enrolment_id} is {e.status}; it cannot become {status}")
    was = e.status
    e.status, e.reason = status, reason[:200]
    if status in ("exited", "graduated", "deceased"):
        e.ended_on = on
    session.add(EnrolmentEvent(enrolment_id=e.id, program_code=e.program_code, status=status, reason=reason[:200],
                               actor=actor, on_date=on))
    session.flush()
    promoted = 0
    if was in ACTIVE and status in ("exited", "graduated", "deceased"):
        promoted = fill(session, e.program_code, f"place freed: enrolment {e.id} {status} ({reason})"[:200], actor, on)
    nxt = session.execute(text("""SELECT enrolment_id FROM enrolment_event WHERE program_code = :c
        AND status = 'enrolled' AND reason LIKE :r ORDER BY id DESC"""),
                          {"c": e.program_code, "r": f"place freed: enrolment {e.id} %"}).scalars().all()
    return {"enrolment_id": e.id, "status": status, "promoted": promoted, "promoted_ids": sorted(nxt)}


def process_events(session: Session, on: date | None = None, actor: str = "system") -> dict:
    """Read the registry's ``member.deceased`` and ``member.left`` events past this consumer's cursor: the
    deceased's own enrolments end (those of a member who left alive are re-assessed, not ended); a benefit
    whose recipient died or left the household passes to another recipient (:func:`_hand_over`:
    a household's to another adult woman, else another member; a member's, collected by a guardian,
    to another living adult of the household, a woman first, else the beneficiary if adult), with its
    channel and account taken from the new recipient's own accounts; freed places are filled. The
    cursor moves in the same transaction."""
    on = on or date.today()
    start = events.cursor(session, CONSUMER)
    upto = events.latest_event_id(session)
    if upto <= start:
        return {"events": 0, "ended": 0, "promoted": 0, "handed_over": 0, "no_one_to_collect": 0}
    named = ("SELECT aggregate_id FROM outbox_event WHERE id > :start AND id <= :upto "
             f"AND topic IN ('{events.MEMBER_DECEASED}', '{events.MEMBER_LEFT}')")
    p = {"start": start, "upto": upto, "on": on, "actor": actor}
    n_events = session.execute(text(f"SELECT COUNT(*) FROM ({named}) x"), p).scalar_one()
    dead = f"""SELECT e.id FROM enrolment e JOIN individual i ON i.id = e.individual_id
               WHERE e.household_id IN ({named}) AND e.individual_id <> 0
               AND e.status IN ('waiting','enrolled','suspended') AND i.date_of_death IS NOT NULL"""
    programs = [r[0] for r in session.execute(text(f"SELECT DISTINCT program_code FROM enrolment WHERE id IN ({dead})"
                                                   " AND status IN ('enrolled','suspended')"), p)]
    session.execute(text(f"""INSERT INTO enrolment_event (enrolment_id, program_code, status, reason, actor, on_date)
        SELECT id, program_code, 'deceased', 'death recorded in the registry', :actor, :on FROM enrolment
        WHERE id IN ({dead})"""), p)
    ended = session.execute(text(f"""UPDATE enrolment SET status = 'deceased', ended_on = :on,
        reason = 'death recorded in the registry' WHERE id IN ({dead})"""), p).rowcount
    # the benefit of a living beneficiary whose recipient died continues through another recipient
    p["adult"] = date(on.year - 18, on.month, min(on.day, 28))
    mark = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM enrolment_event")).scalar_one()
    handed = _hand_over(session, named, p)
    refresh_channels(session, "e.id IN (SELECT enrolment_id FROM enrolment_event WHERE id > :mark "
                              "AND status = 'recipient')", {"mark": mark})
    # nobody left alive: the household's enrolment ends
    gone = f"""SELECT id FROM enrolment WHERE household_id IN ({named}) AND individual_id = 0
               AND status IN ('waiting','enrolled','suspended') AND recipient_id IS NULL"""
    programs += [r[0] for r in session.execute(text(f"SELECT DISTINCT program_code FROM enrolment WHERE id IN ({gone})"
                                                    " AND status IN ('enrolled','suspended')"), p)]
    session.execute(text(f"""INSERT INTO enrolment_event (enrolment_id, program_code, status, reason, actor, on_date)
        SELECT id, program_code, 'deceased', 'no living member left', :actor, :on FROM enrolment WHERE id IN ({gone})"""), p)
    ended += session.execute(text(f"""UPDATE enrolment SET status = 'deceased', ended_on = :on,
        reason = 'no living member left' WHERE id IN ({gone})"""), p).rowcount
    promoted = sum(fill(session, code, "place freed by a death recorded in the registry", actor, on)
                   for code in sorted(set(programs)))
    events.advance(session, CONSUMER, upto)
    return {"events": int(n_events), "ended": int(ended or 0), "promoted": promoted, **handed}


def _heir(e: str) -> str:
    """SQL: who collects the benefit of enrolment ``e`` (an alias) now that its recipient died. A
    household benefit: another adult woman, else another living member. A member's benefit
    (a guardian collected it): another living adult of the household, a woman first, else the
    beneficiary themself if adult; NULL if there is nobody."""
    other = (f"FROM individual w WHERE w.household_id = {e}.household_id AND w.id <> {e}.individual_id "
             f"AND {current.sql('w')}")
    return f"""CASE WHEN {e}.individual_id = 0 THEN COALESCE(
            (SELECT MIN(w.id) {other} AND w.sex = 'female' AND w.date_of_birth <= :adult),
            (SELECT MIN(w.id) {other}))
        ELSE COALESCE(
            (SELECT MIN(w.id) {other} AND w.sex = 'female' AND w.date_of_birth <= :adult),
            (SELECT MIN(w.id) {other} AND w.date_of_birth <= :adult),
            (SELECT m.id FROM individual m WHERE m.id = {e}.individual_id AND {current.sql('m')}
             AND m.date_of_birth <= :adult)) END"""


def _hand_over(session: Session, named: str, p: dict) -> dict:
    """Open enrolments of the named households whose recipient has died or left the household (and whose beneficiary, for
    a member benefit, lives): the benefit passes to :func:`_heir`, with an ``enrolment_event``
    (``recipient``) saying who died and who collects now. Where nobody can collect (a child with no
    living adult in the household) the recipient is left as it is, so no payment goes out, and a
    ``review`` event asks an officer to name a guardian. Set-based."""
    orphaned = f"""SELECT e.id, e.program_code, e.individual_id, e.recipient_id AS was, {_heir('e')} AS heir,
               CASE WHEN r.date_of_death IS NOT NULL THEN 1 ELSE 0 END AS died
        FROM enrolment e JOIN individual r ON r.id = e.recipient_id
        WHERE e.household_id IN ({named}) AND e.status IN ('waiting','enrolled','suspended')
        AND (NOT ({current.sql('r')}) OR r.household_id <> e.household_id) AND e.recipient_id <> e.individual_id"""
    gone = "CASE WHEN o.died = 1 THEN ' died' ELSE ' left the household' END"
    who = ("CASE WHEN o.heir = o.individual_id THEN 'the beneficiary, now an adult' "
           "WHEN hs.sex = 'female' AND hs.date_of_birth <= :adult THEN 'an adult woman of the household' "
           "WHEN hs.date_of_birth <= :adult THEN 'an adult of the household' "
           "ELSE 'another member of the household' END")
    mark = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM enrolment_event")).scalar_one()
    session.execute(text(f"""INSERT INTO enrolment_event (enrolment_id, program_code, status, reason, actor, on_date)
        SELECT o.id, o.program_code, CASE WHEN o.heir IS NULL THEN 'review' ELSE 'recipient' END,
               SUBSTR(CASE WHEN o.heir IS NULL THEN 'recipient ' || CAST(o.was AS VARCHAR(20))
                    || {gone} || ' and no living adult of the household can collect: name a guardian'
               ELSE 'recipient ' || CAST(o.was AS VARCHAR(20)) || {gone} || '; now collected by '
                    || CAST(o.heir AS VARCHAR(20)) || ' (' || {who} || ')' END, 1, 200), :actor, :on
        FROM ({orphaned}) o LEFT JOIN individual hs ON hs.id = o.heir
        WHERE o.heir IS NOT NULL OR o.individual_id <> 0"""), p)
    session.execute(text(f"""UPDATE enrolment SET recipient_id = {_heir('enrolment')}
        WHERE id IN (SELECT enrolment_id FROM enrolment_event WHERE id > :mark AND status = 'recipient')"""),
                    {**p, "mark": mark})
    # a household with nobody left alive: no recipient (the caller ends the enrolment)
    session.execute(text(f"""UPDATE enrolment SET recipient_id = NULL WHERE household_id IN ({named})
        AND individual_id = 0 AND status IN ('waiting','enrolled','suspended')
        AND recipient_id IN (SELECT r.id FROM individual r WHERE NOT ({current.sql('r')})
                             OR r.household_id <> enrolment.household_id)"""), p)
    n = dict(session.execute(text("""SELECT status, COUNT(*) FROM enrolment_event WHERE id > :mark
        GROUP BY status"""), {"mark": mark}).all())
    return {"handed_over": int(n.get("recipient", 0)), "no_one_to_collect": int(n.get("review", 0))}


# ---------------------------------------------------------------- reading

def summary(session: Session, code: str) -> dict:
    counts = _counts(session, code)
    pol = policy(session, code)
    return {"program": code, "unit": pol.unit, "frequency": pol.frequency, "slots": pol.slots,
            "budget_per_cycle": pol.budget_per_cycle, "capacity": capacity(session, code), "counts": counts,
            "quotas": pol.spec.get("quotas", []), "incompatible": incompatible_with(session, code)}


def overview(session: Session, district_id: int | None = None) -> dict[str, dict[str, int]]:
    """Enrolments per program and status (for the programs page), optionally within one district:
    read from the kept counts (:mod:`.counts`), not counted."""
    session.flush()
    return counts.by_program(session, district_id)


def _row(e: Enrolment) -> dict:
    return {"id": e.id, "program": e.program_code, "household_id": e.household_id,
            "individual_id": e.individual_id or None, "recipient_id": e.recipient_id, "district_id": e.district_id,
            "tehsil_id": e.tehsil_id,
            "status": e.status, "rank_value": e.rank_value, "female": e.female, "disabled": e.disabled,
            "channel": e.channel, "listed_on": e.listed_on.isoformat(),
            "enrolled_on": e.enrolled_on.isoformat() if e.enrolled_on else None, "reason": e.reason}


def _listed(code: str, status: str, district_id: int | None, tehsil_id: int | None, channel: str | None):
    """The filters every view of a program's list shares (page, total, export): one place, so the
    total always counts what the pages show."""
    where = [Enrolment.program_code == code, Enrolment.status == status]
    if district_id is not None:
        where.append(Enrolment.district_id == district_id)
    if tehsil_id is not None:
        where.append(Enrolment.tehsil_id == tehsil_id)
    if channel:
        where.append(Enrolment.channel == channel)
    return where


SORTS = {"id": Enrolment.id, "pmt": Enrolment.rank_value, "district": Enrolment.district_id,
         "listed_on": Enrolment.listed_on, "enrolled_on": Enrolment.enrolled_on}
"""The orders a program's lists offer, each served by an index (program, status, column, id)."""
DEFAULT_SORT = {"waiting": keyset.Sort("pmt")}  # the waiting list in rank order; the others by id


def default_sort(status: str) -> keyset.Sort:
    return DEFAULT_SORT.get(status, keyset.Sort("id"))


def listing(session: Session, code: str, status: str, *, district_id: int | None = None, limit: int = 100,
            after: int | None = None, tehsil_id: int | None = None, channel: str | None = None,
            sort: keyset.Sort | None = None) -> list[dict]:
    """Enrolments of a program in one status, a page at a time by keyset in the chosen order
    (:data:`SORTS`; by default the waiting list by rank, lowest PMT first and unranked last, the
    others by id): ``after`` is the last id of the previous page, whose sort value is read to
    continue from it (:func:`isps.keyset.page`), so page 1,000 costs what page 1 does."""
    if not 1 <= limit <= MAX_PAGE:  # a negative LIMIT is no limit at all on SQLite, an error on PostgreSQL
        raise EnrolmentError(f"limit must be from 1 to {MAX_PAGE}, not {limit}")
    sort = sort or default_sort(status)
    if sort.key not in SORTS:
        raise keyset.SortError(f"sort must be one of {', '.join(SORTS)}, not {sort.key!r}")
    stmt = select(Enrolment).where(*_listed(code, status, district_id, tehsil_id, channel))
    rows = keyset.page(session, stmt, SORTS[sort.key], Enrolment.id, after=after, limit=limit, desc=sort.desc,
                       nullable=sort.key in ("pmt", "enrolled_on"))
    return [_row(r[0]) for r in rows]


def count_listing(session: Session, code: str, status: str, *, district_id: int | None = None,
                  tehsil_id: int | None = None, channel: str | None = None) -> int:
    """How many enrolments :func:`listing` pages through with the same filters: the kept count
    when only the district narrows the list, else one COUNT of the filtered rows."""
    if tehsil_id is None and not channel:
        session.flush()
        return counts.by_status(session, code, district_id).get(status, 0)
    return session.scalar(select(func.count()).select_from(Enrolment)
                          .where(*_listed(code, status, district_id, tehsil_id, channel))) or 0


def get(session: Session, enrolment_id: int, district_scope: int | None = None) -> dict:
    e = session.get(Enrolment, enrolment_id)
    if e is None:
        raise NotFound(f"there is no enrolment {enrolment_id}")
    if district_scope is not None and e.district_id != district_scope:
        raise OutOfScope(f"enrolment {enrolment_id} is outside your district")
    return {**_row(e), "history": history(session, enrolment_id)}


def history(session: Session, enrolment_id: int) -> list[dict]:
    rows = session.scalars(select(EnrolmentEvent).where(EnrolmentEvent.enrolment_id == enrolment_id)
                           .order_by(EnrolmentEvent.id))
    return [{"status": r.status, "reason": r.reason, "actor": r.actor, "on": r.on_date.isoformat()} for r in rows]


__all__ = ["EnrolmentError", "NotFound", "incompatible_with", "policy", "set_policy", "capacity", "set_capacity", "enrol_from_run", "enrol_one",
           "fill", "end", "OutOfScope", "get", "process_events", "summary", "overview", "listing", "count_listing", "SORTS", "default_sort", "history", "DEFAULT_POLICIES", "CHANNELS", "PULL",
           "best_accounts", "channel_sql", "refresh_channels", "REFUSALS", "refusals", "count_refusals",
           "refusal_reason", "last_refusal"]

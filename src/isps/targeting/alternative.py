"""Alternatives to PMT targeting: administrative means tests and community-validated applications.

*Means tests from administrative data* (PSPA's proposal, 001 §3.9): a household whose
electricity meter billed at most ~50 units a month, or whose mobile operators billed less
than a threshold, averaged over the last three months, is taken as poor. Readings come
from the distribution companies (LESCO, FESCO, ...) and the operators, one row per
household and month (``electricity_reading``, ``telecom_spend``). A household with a
month missing in the window is *insufficient data*: never eligible, never silently
averaged over fewer months. Tests run set-based (one ``INSERT ... SELECT``) and keep their
decisions per run (``means_test_run``, ``means_test_result``).

*Digital applications validated by the community* (as in the Ehsaas emergency cash
program): a person applies on the web or by SMS; a committee validates or rejects, and
the validator must be someone other than the person who entered the application.

Every selection carries its ``targeting_method`` and :func:`selection_summary` counts
each method apart, never adding PMT-based and community-validated selections together.
:func:`evaluate` measures each test against true welfare on the synthetic province
(inclusion and exclusion error against the poorest 20% by consumption), beside PMT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
from sqlalchemy import Date, bindparam, case, func, select, text
from sqlalchemy.orm import Session

from isps.registry import cnic as cnic_rules
from isps.registry import current
from isps.registry.bulk import insert_arrow
from isps.registry.models import District, Household, Individual, Tehsil
from isps.targeting.alternative_models import (CommunityApplication, ElectricityReading, MeansTestResult,
                                               MeansTestRun, TelecomSpend)

PMT = "pmt"
COMMUNITY = "community_validation"
ELECTRICITY = "electricity_means_test"
TELECOM = "telecom_means_test"
TARGETING_METHODS = {
    PMT: "Proxy Means Test score at or below the cut-off",
    COMMUNITY: "Digital application validated by a community committee",
    ELECTRICITY: "Electricity consumption means test",
    TELECOM: "Telecom spending means test",
}

DEFAULT_ELECTRICITY_UNITS = 50.0   # kWh a month: a poor household's use (001 §3.9)
# PKR a month: one or two prepaid SIMs. (Ehsaas used Rs 1,000 a month as a filter to exclude the
# better-off; as a test that identifies the poor, that would take in about half of all households.)
DEFAULT_TELECOM_PKR = 500.0
DEFAULT_MONTHS = 3
CHANNELS = ("web", "sms")
STATUSES = ("submitted", "validated", "rejected")

# Distribution company serving each district (the DISCO named on the bill).
DISCO_BY_DISTRICT = {
    **dict.fromkeys(("Lahore", "Kasur", "Nankana Sahib", "Sheikhupura", "Okara"), "LESCO"),
    **dict.fromkeys(("Gujranwala", "Gujrat", "Hafizabad", "Mandi Bahauddin", "Narowal", "Sialkot"), "GEPCO"),
    **dict.fromkeys(("Rawalpindi", "Attock", "Chakwal", "Jhelum"), "IESCO"),
    **dict.fromkeys(("Faisalabad", "Chiniot", "Jhang", "Toba Tek Singh", "Sargodha", "Bhakkar", "Khushab",
                     "Mianwali"), "FESCO"),
    **dict.fromkeys(("Multan", "Khanewal", "Lodhran", "Vehari", "Sahiwal", "Pakpattan", "Bahawalpur",
                     "Bahawalnagar", "Rahim Yar Khan", "Dera Ghazi Khan", "Layyah", "Muzaffargarh", "Rajanpur"),
                    "MEPCO"),
}
# Mobile operators and their approximate shares of subscribers
OPERATORS = ("Jazz", "Zong", "Telenor", "Ufone")
OPERATOR_SHARE = (0.37, 0.27, 0.23, 0.13)
# Share of the fan, cooler and air-conditioner load used in each calendar month (Punjab's summer)
COOLING_SEASON = np.array([0.0, 0.05, 0.1, 0.3, 0.6, 0.9, 1.0, 1.0, 0.95, 0.8, 0.5, 0.15, 0.05])


class AlternativeTargetingError(ValueError):
    pass


class SameValidatorError(AlternativeTargetingError):
    """Four eyes: the person who entered an application cannot validate it."""


# ---------------------------------------------------------------- months

def month_start(d: date) -> date:
    return date(d.year, d.month, 1)


def months_back(through: date, n: int) -> list[date]:
    """The ``n`` calendar months ending with ``through``'s month, oldest first."""
    y, m = through.year, through.month
    out = []
    for _ in range(n):
        out.append(date(y, m, 1))
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out[::-1]


# ---------------------------------------------------------------- recording readings

def _household(session: Session, household_id: int) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise AlternativeTargetingError(f"household {household_id} does not exist")
    return household


def disco_for(session: Session, district_id: int) -> str:
    name = session.scalar(select(District.name).where(District.id == district_id))
    return DISCO_BY_DISTRICT.get(name, "DISCO")


def record_electricity(session: Session, household_id: int, month: date, units: float, source: str = "disco",
                       reference: str | None = None) -> ElectricityReading:
    """Record (or correct) the units billed to a household in a month."""
    if units < 0:
        raise AlternativeTargetingError("units billed cannot be negative")
    household = _household(session, household_id)
    reference = reference or disco_for(session, household.district_id)
    m = month_start(month)
    row = session.get(ElectricityReading, (household_id, m))
    if row is None:
        row = ElectricityReading(household_id=household_id, month=m, district_id=household.district_id,
                                 units=float(units), source=source, reference=reference)
        session.add(row)
    row.units, row.source, row.reference = float(units), source, reference
    session.flush()
    return row


def record_telecom(session: Session, household_id: int, month: date, amount_pkr: float, operator: str,
                   source: str = "operator") -> TelecomSpend:
    """Record (or correct) what a household's SIMs on one operator spent in a month."""
    if operator not in OPERATORS:
        raise AlternativeTargetingError(f"operator must be one of {', '.join(OPERATORS)}")
    if amount_pkr < 0:
        raise AlternativeTargetingError("spending cannot be negative")
    household = _household(session, household_id)
    m = month_start(month)
    row = session.get(TelecomSpend, (household_id, m, operator))
    if row is None:
        row = TelecomSpend(household_id=household_id, month=m, operator=operator, district_id=household.district_id,
                           amount_pkr=float(amount_pkr), source=source)
        session.add(row)
    row.amount_pkr, row.source = float(amount_pkr), source
    session.flush()
    return row


# ---------------------------------------------------------------- synthetic readings

_CHUNK = 100_000


def _household_chunks(session: Session, columns: str, joins: str = ""):
    """Households with the named columns as NumPy arrays, in keyset chunks (memory stays flat)."""
    after = -1
    while True:
        rows = session.execute(text(f"""SELECT h.id, {columns} FROM household h {joins}
                                         WHERE h.id > :after ORDER BY h.id LIMIT {_CHUNK}"""), {"after": after}).all()
        if not rows:
            return
        cols = list(zip(*rows))
        yield [np.asarray(c) for c in cols]
        after = rows[-1][0]


def _month_arrays(through: date, months: int) -> tuple[list[date], np.ndarray]:
    ms = months_back(through, months)
    return ms, np.array([m.month for m in ms])


def generate_electricity(session: Session, through: date, months: int = 6, seed: int = 0,
                         missing_rate: float = 0.02) -> int:
    """Synthetic DISCO readings for every household with an electricity connection, for the
    ``months`` months ending with ``through``: units follow members, rooms (fans), appliances
    (a fridge, a cooler and above all an air conditioner use far more) and the season, scaled
    by the household's consumption, with noise. A household with only lights and fans uses
    about 35-55 units. ``missing_rate`` of household-months are left out, as in real files."""
    ms, month_no = _month_arrays(through, months)
    season = COOLING_SEASON[month_no][None, :]
    ids_names = session.execute(select(District.id, District.name)).all()
    discos = np.full(max(i for i, _ in ids_names) + 1, "DISCO", dtype=object)
    for i, name in ids_names:
        discos[i] = DISCO_BY_DISTRICT.get(name, "DISCO")
    cols = ("h.district_id, h.electricity, h.rooms, h.television, h.fridge, h.freezer, h.washing_machine, "
            "h.computer, h.air_cooler, h.air_conditioner, h.drinking_water, COALESCE(m.members, 1), "
            "COALESCE(c.consumption_pae, 9000)")
    joins = (f"LEFT JOIN (SELECT household_id, COUNT(*) AS members FROM individual WHERE {current.CURRENT} "
             "GROUP BY household_id) m ON m.household_id = h.id "
             "LEFT JOIN household_consumption c ON c.household_id = h.id")
    conn = session.connection()
    total = 0
    for k, (hid, district, power, rooms, tv, fridge, freezer, washer, computer, cooler, ac, water, members,
            cons) in enumerate(_household_chunks(session, cols, joins)):
        rng = np.random.default_rng([seed, k])
        f = lambda a: a.astype(float)[:, None]  # noqa: E731 - one column against the months
        base = 14 + 3.5 * np.minimum(f(members), 12)
        fans = 9 * np.minimum(f(rooms), 6) * (0.15 + season)
        cold = 0.7 + 0.5 * season
        appliances = (12 * f(tv) + 45 * f(fridge) * cold + 60 * f(freezer) * cold + 8 * f(washer) + 15 * f(computer)
                      + 18 * (water == "motor_pump").astype(float)[:, None])
        cooling = 65 * f(cooler) * season + 280 * f(ac) * season
        wealth = np.clip((cons.astype(float) / 9000.0) ** 0.3, 0.5, 2.5)[:, None]
        noise = np.exp(rng.normal(0, 0.2, (len(hid), 1)) + rng.normal(0, 0.1, (len(hid), months)))
        units = np.rint((base + fans + appliances + cooling) * wealth * noise)
        keep = power.astype(bool)[:, None] & (rng.random(units.shape) >= missing_rate)
        r, c = np.nonzero(keep)
        table = pa.table({
            "household_id": pa.array(hid[r].astype(np.int64)),
            "month": pa.array(np.array([np.datetime64(m, "D") for m in ms])[c]),
            "district_id": pa.array(district[r].astype(np.int16)),
            "units": pa.array(units[r, c]),
            "source": pa.array(["synthetic"] * len(r), type=pa.string()),
            "reference": pa.array(discos[district[r].astype(int)].tolist(), type=pa.string()),
        })
        total += insert_arrow(conn, "electricity_reading", table)
    return total


def generate_telecom(session: Session, through: date, months: int = 6, seed: int = 0,
                     missing_rate: float = 0.02) -> int:
    """Synthetic operator billing for every household with a phone on the roster: each phone is
    on one operator (by market share) and spends a household-level amount that rises with the
    household's consumption, with monthly noise; one row per household, month and operator."""
    ms, _ = _month_arrays(through, months)
    month_days = np.array([np.datetime64(m, "D") for m in ms])
    cols = "h.district_id, COALESCE(p.phones, 0), COALESCE(c.consumption_pae, 9000)"
    joins = ("LEFT JOIN (SELECT household_id, COUNT(*) AS phones FROM individual WHERE phone IS NOT NULL "
             f"AND {current.CURRENT} GROUP BY household_id) p ON p.household_id = h.id "
             "LEFT JOIN household_consumption c ON c.household_id = h.id")
    conn = session.connection()
    total = 0
    n_ops = len(OPERATORS)
    for k, (hid, district, phones, cons) in enumerate(_household_chunks(session, cols, joins)):
        rng = np.random.default_rng([seed, k, 1])
        phones = phones.astype(int)
        n = len(hid)
        per_phone = 300.0 * np.clip(cons.astype(float) / 9000.0, 0.2, 10.0) ** 0.6 * np.exp(rng.normal(0, 0.45, n))
        owner = np.repeat(np.arange(n), phones)                     # one entry per phone
        operator = rng.choice(n_ops, size=len(owner), p=OPERATOR_SHARE)
        amount = per_phone[owner][:, None] * np.exp(rng.normal(0, 0.2, (len(owner), months)))
        # sum phones on the same operator: key = (household, operator)
        key = owner * n_ops + operator
        uniq, inverse = np.unique(key, return_inverse=True)
        sums = np.zeros((len(uniq), months))
        np.add.at(sums, inverse, amount)
        hh_of, op_of = uniq // n_ops, uniq % n_ops
        present = rng.random((n, months)) >= missing_rate           # a household-month missing from the files
        r, c = np.nonzero(present[hh_of])
        h_idx = hh_of[r]
        table = pa.table({
            "household_id": pa.array(hid[h_idx].astype(np.int64)),
            "month": pa.array(month_days[c]),
            "operator": pa.array(np.asarray(OPERATORS, dtype=object)[op_of[r]].tolist(), type=pa.string()),
            "district_id": pa.array(district[h_idx].astype(np.int16)),
            "amount_pkr": pa.array(np.round(sums[r, c], 0)),
            "source": pa.array(["synthetic"] * len(r), type=pa.string()),
        })
        total += insert_arrow(conn, "telecom_spend", table)
    return total


# ---------------------------------------------------------------- means tests

_TESTS = {
    ELECTRICITY: ("electricity_reading", "units", DEFAULT_ELECTRICITY_UNITS, "units"),
    TELECOM: ("telecom_spend", "amount_pkr", DEFAULT_TELECOM_PKR, "PKR"),
}


def _test(method: str) -> tuple[str, str, float, str]:
    if method not in _TESTS:
        raise AlternativeTargetingError(f"means tests: {', '.join(_TESTS)}; not '{method}'")
    return _TESTS[method]


def _means_select(method: str, where: str = "1=1") -> str:
    """(household_id, district_id, status, average, months_found) for every household: eligible when
    every month of the window is on file and their total is at most threshold x months."""
    table, col, _, _ = _test(method)
    return f"""
        SELECT h.id AS household_id, h.district_id AS district_id,
               CASE WHEN COALESCE(r.n, 0) < :months THEN 'insufficient_data'
                    WHEN r.total <= :limit_total THEN 'eligible' ELSE 'not_eligible' END AS status,
               r.total * 1.0 / r.n AS average, COALESCE(r.n, 0) AS months_found
        FROM household h LEFT JOIN (
            SELECT household_id, COUNT(DISTINCT month) AS n, SUM({col}) AS total FROM {table}
            WHERE month >= :first AND month <= :last GROUP BY household_id) r ON r.household_id = h.id
        WHERE {where}"""


def _means_params(through: date, threshold: float, months: int) -> dict:
    window = months_back(through, months)
    # a tiny tolerance so that 49.9 + 50.1 + 50.0 is not refused for binary rounding
    return {"months": months, "limit_total": threshold * months + 1e-9, "first": window[0], "last": window[-1]}


def _bind_window(stmt):
    return stmt.bindparams(bindparam("first", type_=Date), bindparam("last", type_=Date))


def run_means_test(session: Session, method: str, through: date, threshold: float | None = None,
                   months: int = DEFAULT_MONTHS, actor: str = "system") -> MeansTestRun:
    """Decide every household with one statement and keep the decisions as a run.

    ``method`` is :data:`ELECTRICITY` (threshold in units a month, default 50) or :data:`TELECOM`
    (PKR a month, default 500); the window is the ``months`` calendar months ending with ``through``."""
    _, _, default, _ = _test(method)
    threshold = float(default if threshold is None else threshold)
    if months < 1:
        raise AlternativeTargetingError("a means test needs at least one month")
    run = MeansTestRun(targeting_method=method, through_month=month_start(through), months=months,
                       threshold=threshold, actor=actor, evaluated=0, eligible=0, insufficient=0)
    session.add(run)
    session.flush()
    sql = f"""INSERT INTO means_test_result (run_id, household_id, district_id, status, average, months_found)
              SELECT :run_id, t.household_id, t.district_id, t.status, t.average, t.months_found
              FROM ({_means_select(method)}) t"""
    session.execute(_bind_window(text(sql)), {"run_id": run.id, **_means_params(through, threshold, months)})
    counts = dict(session.execute(select(MeansTestResult.status, func.count()).where(MeansTestResult.run_id == run.id)
                                  .group_by(MeansTestResult.status)).all())
    run.evaluated = sum(counts.values())
    run.eligible = counts.get("eligible", 0)
    run.insufficient = counts.get("insufficient_data", 0)
    session.flush()
    return run


def latest_run(session: Session, method: str) -> MeansTestRun | None:
    return session.scalar(select(MeansTestRun).where(MeansTestRun.targeting_method == method)
                          .order_by(MeansTestRun.id.desc()).limit(1))


def runs(session: Session, *, before: int | None = None, limit: int = 50,
         method: str | None = None) -> list[MeansTestRun]:
    """A page of means test runs, newest first, by keyset (``before`` = the last id shown)."""
    stmt = select(MeansTestRun)
    if method:
        stmt = stmt.where(MeansTestRun.targeting_method == method)
    if before is not None:
        stmt = stmt.where(MeansTestRun.id < before)
    return list(session.scalars(stmt.order_by(MeansTestRun.id.desc()).limit(limit)))


def count_runs(session: Session, *, method: str | None = None) -> int:
    stmt = select(func.count()).select_from(MeansTestRun)
    if method:
        stmt = stmt.where(MeansTestRun.targeting_method == method)
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class RunDistrict:
    district_id: int
    eligible: int
    not_eligible: int
    insufficient_data: int


def run_by_district(session: Session, run_id: int) -> list[RunDistrict]:
    """A run's decisions counted per district (one GROUP BY over the run's results)."""
    rows = session.execute(select(
        MeansTestResult.district_id,
        func.sum(case((MeansTestResult.status == "eligible", 1), else_=0)),
        func.sum(case((MeansTestResult.status == "not_eligible", 1), else_=0)),
        func.sum(case((MeansTestResult.status == "insufficient_data", 1), else_=0)),
    ).where(MeansTestResult.run_id == run_id).group_by(MeansTestResult.district_id)
        .order_by(MeansTestResult.district_id)).all()
    return [RunDistrict(int(d), int(e or 0), int(n or 0), int(i or 0)) for d, e, n, i in rows]


@dataclass(frozen=True)
class MeansTestOutcome:
    method: str
    status: str                 # eligible | not_eligible | insufficient_data
    average: float | None       # over the months found
    months_found: int
    months: int
    threshold: float
    window: tuple[date, date]
    words: str


def means_test(session: Session, household_id: int, method: str, through: date, threshold: float | None = None,
               months: int = DEFAULT_MONTHS) -> MeansTestOutcome:
    """One household's result, computed with the same statement as a run, in plain words."""
    _, _, default, unit = _test(method)
    threshold = float(default if threshold is None else threshold)
    params = _means_params(through, threshold, months)
    row = session.execute(_bind_window(text(_means_select(method, "h.id = :hid"))),
                          {**params, "hid": household_id}).mappings().one_or_none()
    if row is None:
        raise AlternativeTargetingError(f"household {household_id} does not exist")
    window = (params["first"], params["last"])
    span = f"{window[0]:%b %Y}-{window[1]:%b %Y}"
    what = "electricity use" if method == ELECTRICITY else "telecom spending"
    avg = row["average"]
    if row["status"] == "insufficient_data":
        words = (f"Insufficient data: {what} is on file for {row['months_found']} of the {months} months "
                 f"{span}; not eligible until every month is known")
    elif row["status"] == "eligible":
        words = f"Eligible: average {what} {avg:,.1f} {unit} a month over {span}, at or below {threshold:,.0f}"
    else:
        words = f"Not eligible: average {what} {avg:,.1f} {unit} a month over {span}, above {threshold:,.0f}"
    return MeansTestOutcome(method, row["status"], float(avg) if avg is not None else None, int(row["months_found"]),
                            months, threshold, window, words)


# ---------------------------------------------------------------- community-validated applications

def submit_application(session: Session, cnic: str, full_name: str, district_id: int, tehsil_id: int, channel: str,
                       entered_by: str, *, father_husband_name: str | None = None, phone: str | None = None,
                       submitted_at: datetime | None = None, note: str = "") -> CommunityApplication:
    """Take a digital application (web form or SMS). The applicant is matched to a registry household
    by CNIC when exactly one household holds it; an open application for the same CNIC is refused."""
    if channel not in CHANNELS:
        raise AlternativeTargetingError(f"channel must be one of {', '.join(CHANNELS)}")
    try:
        number = cnic_rules.validate(cnic)
    except cnic_rules.CnicError as exc:
        raise AlternativeTargetingError(str(exc)) from None
    if not full_name or not full_name.strip():
        raise AlternativeTargetingError("the applicant's name is required")
    if not entered_by:
        raise AlternativeTargetingError("who entered the application must be recorded")
    tehsil = session.get(Tehsil, tehsil_id)
    if tehsil is None or tehsil.district_id != district_id:
        raise AlternativeTargetingError(f"tehsil {tehsil_id} is not in district {district_id}")
    open_app = session.scalar(select(CommunityApplication).where(
        CommunityApplication.cnic == number, CommunityApplication.status.in_(("submitted", "validated"))))
    if open_app is not None:
        raise AlternativeTargetingError(f"CNIC {cnic_rules.mask(number)} already has application {open_app.id} "
                                        f"({open_app.status})")
    households = set(session.scalars(select(Individual.household_id).where(
        Individual.cnic == number, current.clause())))
    app = CommunityApplication(
        targeting_method=COMMUNITY, cnic=number, full_name=full_name.strip(),
        father_husband_name=(father_husband_name or "").strip() or None, phone=phone, district_id=district_id,
        tehsil_id=tehsil_id, household_id=next(iter(households)) if len(households) == 1 else None,
        channel=channel, submitted_at=submitted_at or datetime.now(), entered_by=entered_by, status="submitted",
        note=(note or "").strip()[:400])
    if len(households) > 1:
        app.note = (app.note + " | " if app.note else "") + f"CNIC found in {len(households)} households: not matched"
    session.add(app)
    session.flush()
    return app


def validate_application(session: Session, application_id: int, validator: str, approve: bool, committee: str,
                         note: str = "", on: date | None = None,
                         district_scope: int | None = None) -> CommunityApplication:
    """Record a community committee's decision on an application (validated or rejected).

    Refused when the validator is the person who entered it, when the application was decided
    already, without the committee's name, or outside the validator's district."""
    app = session.get(CommunityApplication, application_id)
    if app is None:
        raise AlternativeTargetingError(f"no application {application_id}")
    if district_scope is not None and app.district_id != district_scope:
        raise PermissionError(f"application {application_id} is outside your district")
    if app.status != "submitted":
        raise AlternativeTargetingError(f"application {application_id} was {app.status} already by "
                                        f"{app.validated_by} on {app.validated_on}")
    if not validator or validator.strip().lower() == app.entered_by.strip().lower():
        raise SameValidatorError(f"application {application_id} was entered by {app.entered_by}, who cannot "
                                 "validate it: a second person must")
    if not committee or not committee.strip():
        raise AlternativeTargetingError("name the committee that decided")
    app.status = "validated" if approve else "rejected"
    app.validated_by = validator
    app.validated_on = on or date.today()
    app.committee = committee.strip()[:120]
    if note:
        app.note = ((app.note + " | ") if app.note else "") + note.strip()
        app.note = app.note[:400]
    session.flush()
    return app


def applications(session: Session, *, district_id: int | None = None, status: str | None = None,
                 after: int | None = None, limit: int = 50) -> list[CommunityApplication]:
    """A page of applications, oldest first, by keyset (``after`` = the last id seen)."""
    stmt = select(CommunityApplication)
    if district_id is not None:
        stmt = stmt.where(CommunityApplication.district_id == district_id)
    if status is not None:
        stmt = stmt.where(CommunityApplication.status == status)
    if after is not None:
        stmt = stmt.where(CommunityApplication.id > after)
    return list(session.scalars(stmt.order_by(CommunityApplication.id).limit(limit)))


# ---------------------------------------------------------------- selections, kept apart by method

@dataclass(frozen=True)
class DistrictCount:
    district_id: int
    district: str
    selected: int


@dataclass(frozen=True)
class MethodSelection:
    method: str
    label: str
    basis: str      # what the selection rests on: model and cut-off, run, committees
    total: int
    by_district: list[DistrictCount]


def selection_summary(session: Session, pmt_cutoff: float = 32.0) -> list[MethodSelection]:
    """Households selected by each targeting method, per district; one entry per method.

    Methods are never added together: a household selected by PMT and validated by its
    community counts once under each method, and there is no all-methods total."""
    from isps.targeting.pmt import active_model

    parts, params, basis = [], {"cut": pmt_cutoff}, {}
    model = active_model(session)
    if model is not None:
        parts.append(f"SELECT '{PMT}' AS method, district_id, COUNT(*) AS n FROM pmt_score "
                     "WHERE model_id = :model AND score <= :cut GROUP BY district_id")
        params["model"] = model.id
        basis[PMT] = f"{model.name} v{model.version}, score at or below {pmt_cutoff:g}"
    for method in (ELECTRICITY, TELECOM):
        run = latest_run(session, method)
        if run is None:
            continue
        parts.append(f"SELECT '{method}', district_id, COUNT(*) FROM means_test_result "
                     f"WHERE run_id = {int(run.id)} AND status = 'eligible' GROUP BY district_id")
        basis[method] = (f"run {run.id}: {run.months} months to {run.through_month:%b %Y}, "
                         f"average at or below {run.threshold:g}")
    parts.append(f"SELECT '{COMMUNITY}', district_id, COUNT(*) FROM community_application "
                 "WHERE status = 'validated' GROUP BY district_id")
    basis[COMMUNITY] = "applications validated by community committees"
    names = dict(session.execute(select(District.id, District.name)).all())
    counts: dict[str, list[DistrictCount]] = {m: [] for m in basis}
    for method, district_id, n in session.execute(text(" UNION ALL ".join(parts)), params):
        counts[method].append(DistrictCount(int(district_id), names.get(int(district_id), "?"), int(n)))
    out = []
    for method in (PMT, COMMUNITY, ELECTRICITY, TELECOM):
        if method in basis:
            rows = sorted(counts[method], key=lambda c: c.district_id)
            out.append(MethodSelection(method, TARGETING_METHODS[method], basis[method], sum(c.selected for c in rows),
                                       rows))
    return out


# ---------------------------------------------------------------- evaluation against true welfare

@dataclass(frozen=True)
class MethodEvaluation:
    method: str
    rule: str
    households: int          # with a welfare measure
    selected: int
    coverage: float          # selected / households
    poor: int                # the poorest share by consumption
    poor_selected: int
    inclusion_error: float   # selected but not poor, as a share of the selected
    exclusion_error: float   # poor but not selected, as a share of the poor
    insufficient_data: int


def _evaluate_set(session: Session, selection_sql: str, params: dict, line: float, bind=None) -> tuple:
    sql = f"""
        SELECT COUNT(*), SUM(z.sel), SUM(z.poor), SUM(z.sel * z.poor), SUM(z.insufficient) FROM (
            SELECT CASE WHEN c.consumption_pae < :line THEN 1 ELSE 0 END AS poor,
                   CASE WHEN t.status = 'eligible' THEN 1 ELSE 0 END AS sel,
                   CASE WHEN t.status = 'insufficient_data' THEN 1 ELSE 0 END AS insufficient
            FROM household_consumption c LEFT JOIN ({selection_sql}) t ON t.household_id = c.household_id) z"""
    stmt = text(sql)
    if bind:
        stmt = bind(stmt)
    return tuple(int(v or 0) for v in session.execute(stmt, {**params, "line": line}).one())


def _evaluation(method: str, rule: str, counts: tuple) -> MethodEvaluation:
    n, sel, poor, both, insufficient = counts
    return MethodEvaluation(method, rule, n, sel, sel / n if n else 0.0, poor, both,
                            (sel - both) / sel if sel else 0.0, (poor - both) / poor if poor else 0.0, insufficient)


def evaluate(session: Session, through: date, poorest_share: float = 0.2,
             electricity_threshold: float = DEFAULT_ELECTRICITY_UNITS, telecom_threshold: float = DEFAULT_TELECOM_PKR,
             months: int = DEFAULT_MONTHS, pmt_cutoff: float = 32.0) -> list[MethodEvaluation]:
    """Inclusion and exclusion error of each alternative test against true welfare
    (``household_consumption``: the poorest ``poorest_share`` by consumption per adult
    equivalent), beside PMT at its cut-off and PMT selecting the same share by score.

    For policy staff comparing methods on the synthetic province (or on a survey sample
    with measured consumption); computed on the fly, nothing is stored."""
    n = session.scalar(text("SELECT COUNT(*) FROM household_consumption")) or 0
    if n == 0:
        return []
    k = int(n * poorest_share)
    line = session.scalar(text("SELECT consumption_pae FROM household_consumption ORDER BY consumption_pae "
                               f"LIMIT 1 OFFSET {k}"))
    out = []
    for method, threshold, unit in ((ELECTRICITY, electricity_threshold, "units"), (TELECOM, telecom_threshold, "PKR")):
        counts = _evaluate_set(session, _means_select(method), _means_params(through, threshold, months), line,
                               _bind_window)
        out.append(_evaluation(method, f"average over {months} months to {through:%b %Y} at or below "
                                       f"{threshold:g} {unit}", counts))
    from isps.targeting.pmt import active_model

    model = active_model(session)
    if model is not None:
        at_cut = (f"SELECT household_id, CASE WHEN score <= :cut THEN 'eligible' ELSE 'not_eligible' END AS status "
                  f"FROM pmt_score WHERE model_id = {int(model.id)}")
        out.append(_evaluation(PMT, f"{model.name} v{model.version}, score at or below {pmt_cutoff:g}",
                               _evaluate_set(session, at_cut, {"cut": pmt_cutoff}, line)))
        scored = session.scalar(text(f"SELECT COUNT(*) FROM pmt_score WHERE model_id = {int(model.id)}")) or 0
        if scored:
            cut_k = session.scalar(text(f"SELECT score FROM pmt_score WHERE model_id = {int(model.id)} "
                                        f"ORDER BY score LIMIT 1 OFFSET {max(int(scored * poorest_share) - 1, 0)}"))
            out.append(_evaluation(PMT, f"{model.name} v{model.version}, lowest {poorest_share:.0%} of scores "
                                        f"(at or below {cut_k:.1f})",
                                   _evaluate_set(session, at_cut, {"cut": cut_k}, line)))
    return out

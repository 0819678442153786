"""What the state gives a household, as a citizen may be told it: registered or not, the PMT score's
band (never the exact score), every program the household is enrolled in or waiting for (ISPS
enrolments and partners' resolved lists), its eligibility for every running program with the
reasons, and the next payment.

Shared by the SMS short code (:mod:`isps.citizen.shortcode`, a few words) and the citizen's own web
pages (``web/selfservice.py``, with the reasons). Whether the asker may be told is decided by the
caller (:func:`phone_registered`): a CNIC is not a secret, a registered phone is the proof.

The band, not the score: the exact score of a proxy-means test tells a household how far to move
which answer to cross a cut-off; the band (ten points wide) and the program decisions tell it what
it needs to know. A band that straddles a program's cut-off is resolved by the eligibility line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from isps.registry import current
from isps.registry.models import Household, Individual
from isps.targeting import pmt
from isps.targeting.eligibility import rules as eligibility
from isps.targeting.models import PmtScore

BAND_WIDTH = 10
LIVE_ENROLMENT = ("enrolled", "waiting", "suspended")
OPEN_PAYMENT = ("pending", "sent")


def phone_forms(phone: str) -> list[str]:
    """The ways a normalised mobile number (``923001234567``) may be written in the registry."""
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    forms = {digits}
    if digits.startswith("92") and len(digits) == 12:
        forms |= {"0" + digits[2:], "+" + digits, digits[2:]}
    elif digits.startswith("0") and len(digits) == 11:
        forms |= {"92" + digits[1:], "+92" + digits[1:]}
    return sorted(f for f in forms if f)


def phone_registered(session: Session, household_id: int, phone: str) -> bool:
    """Whether ``phone`` is a phone registered for the household: a current member's (alive, not
    left: :mod:`isps.registry.current`), or the payment phone of one of its enrolments."""
    forms = phone_forms(phone)
    if not forms:
        return False
    params = {"h": household_id, **{f"p{i}": f for i, f in enumerate(forms)}}
    marks = ", ".join(f":p{i}" for i in range(len(forms)))
    found = session.execute(text(f"""
        SELECT 1 FROM individual WHERE household_id = :h AND {current.sql()} AND phone IN ({marks})
        UNION ALL
        SELECT 1 FROM enrolment WHERE household_id = :h AND phone IN ({marks})"""), params).first()
    return found is not None


def people_with_phone(session: Session, phone: str) -> list[Individual]:
    """The current members whose own registered phone is ``phone`` (index ``ix_individual_phone``)."""
    forms = phone_forms(phone)
    if not forms:
        return []
    return list(session.scalars(select(Individual).where(Individual.phone.in_(forms), current.clause())
                                .order_by(Individual.id).limit(20)))


def last_outlet(session: Session, household_id: int) -> int | None:
    """The cash outlet of the household's latest pickup slot: the agent a citizen's complaint is about."""
    return session.execute(text("""SELECT s.outlet_id FROM pickup_slot s
        JOIN payment_instruction i ON i.id = s.instruction_id JOIN enrolment e ON e.id = i.enrolment_id
        WHERE e.household_id = :h ORDER BY s.slot_start DESC LIMIT 1"""), {"h": household_id}).scalar()


def band_of(score: float | None) -> tuple[int, int] | None:
    if score is None:
        return None
    low = int(max(0.0, min(score, 99.999)) // BAND_WIDTH) * BAND_WIDTH
    return low, low + BAND_WIDTH


@dataclass
class Program:
    code: str
    status: str                      # enrolled | waiting | suspended | listed (a partner's list) | eligible | not_eligible
    reasons: list[str] = field(default_factory=list)
    who: list[str] = field(default_factory=list)   # the members a member program concerns


@dataclass
class Payment:
    program: str
    amount: float
    status: str
    pickup: datetime | None = None


@dataclass
class Standing:
    household_id: int
    district_id: int
    band: tuple[int, int] | None
    enrolled: list[Program]
    eligible: list[Program]
    not_eligible: list[Program]
    next_payment: Payment | None
    last_paid: Payment | None
    verified_on: date | None


def standing(session: Session, household_id: int, *, lang: str = "en", reasons: bool = False) -> Standing | None:
    """The household's standing (see the module docstring); None when there is no such household.
    ``reasons`` renders every criterion's sentence (the web page); the SMS needs only the decisions."""
    household = session.get(Household, household_id)
    if household is None:
        return None
    model = pmt.active_model(session)
    score = session.get(PmtScore, (model.id, household_id)) if model is not None else None
    # the household's programs in one statement: ISPS enrolments first, then partners' resolved lists
    enrolled: list[Program] = []
    known: set[str] = set()
    for code, status, _ in session.execute(text(f"""
        SELECT program_code, MIN(status), 0 FROM enrolment WHERE household_id = :h
          AND status IN ({", ".join(f"'{s}'" for s in LIVE_ENROLMENT)}) GROUP BY program_code
        UNION ALL
        SELECT DISTINCT program_code, 'listed', 1 FROM beneficiary WHERE household_id = :h
        ORDER BY 3, 1"""), {"h": household_id}):
        if code not in known:
            enrolled.append(Program(code, status))
            known.add(code)
    eligible, not_eligible = [], []
    model_id = model.id if model is not None else -1
    payroll = eligibility.payroll_note(session, household_id)
    for row, rule in _active_rules(session):
        decisions = _explain(session, row.id, rule, household_id, model_id, payroll, lang)
        if not decisions:
            continue
        ok = any(d.eligible for d in decisions)
        said: list[str] = []
        if reasons:
            for d in decisions:
                if d.eligible != ok:
                    continue
                for o in d.outcomes:
                    if o.met == ok and o.sentence and o.sentence not in said:
                        said.append(o.sentence)
        p = Program(rule.code, "eligible" if ok else "not_eligible", said,
                    [d.person for d in decisions if d.person and d.eligible])
        if rule.code in known:
            continue  # already enrolled: the enrolment is the answer
        (eligible if ok else not_eligible).append(p)
    # the next payment (the oldest unpaid instruction) and the last one paid, in one statement
    nxt = last = None
    for kind, program, amount, status, slot in session.execute(text(f"""
        SELECT * FROM (SELECT 'next' AS kind, i.program_code, i.amount, i.status, s.slot_start
            FROM payment_instruction i JOIN enrolment e ON e.id = i.enrolment_id
            LEFT JOIN pickup_slot s ON s.instruction_id = i.id
            WHERE e.household_id = :h AND i.status IN ({", ".join(f"'{s}'" for s in OPEN_PAYMENT)})
            ORDER BY i.id LIMIT 1) a
        UNION ALL
        SELECT * FROM (SELECT 'last' AS kind, i.program_code, i.amount, i.status, CAST(NULL AS TIMESTAMP) AS slot_start
            FROM payment_instruction i JOIN enrolment e ON e.id = i.enrolment_id
            WHERE e.household_id = :h AND i.status = 'paid' ORDER BY i.id DESC LIMIT 1) b"""), {"h": household_id}):
        if kind == "next":
            nxt = Payment(program, float(amount), status, _when(slot))
        else:
            last = Payment(program, float(amount), status)
    return Standing(household_id, household.district_id, band_of(score.score if score else None), enrolled,
                    eligible, not_eligible,
                    nxt, last, household.verified_on)


# A running rule compiled once a day per process (the compiler reads the geography, most of the cost of
# a one-household question); the household is a bind parameter of the compiled statement. A new
# version of a rule is a new row, so a new key.
_RULES: dict[int, eligibility.Rule] = {}
_COMPILED: dict[tuple[int, str, date], eligibility.CompiledRule] = {}


def _active_rules(session: Session) -> list[tuple[object, eligibility.Rule]]:
    from isps.targeting.eligibility.models import EligibilityRule

    rows = list(session.scalars(select(EligibilityRule).where(EligibilityRule.status == "active")
                                .order_by(EligibilityRule.program_code)))
    out = []
    for r in rows:
        if r.id not in _RULES:
            _RULES[r.id] = eligibility.Rule.from_spec(r.spec)
        out.append((r, _RULES[r.id]))
    return out


def _explain(session: Session, rule_id: int, rule: eligibility.Rule, household_id: int, model_id: int,
             payroll: str | None, lang: str) -> list[eligibility.Decision]:
    """:func:`isps.targeting.eligibility.rules.explain` for one household, with the rule compiled once."""
    today = date.today()
    key = (rule_id, session.get_bind().dialect.name, today)
    compiled = _COMPILED.get(key)
    if compiled is None:
        if len(_COMPILED) > 200:
            _COMPILED.clear()
        compiled = _COMPILED[key] = eligibility.compile_rule(session, rule, household_id=household_id, on=today)
    params = {**compiled.params, "hid": household_id, "on_date": today.isoformat(), "model_id": model_id}
    rows = session.execute(text(compiled.select_sql + " ORDER BY individual_id"), params).mappings().all()
    return [eligibility.Decision(rule.code, r["household_id"], r["individual_id"] or None, r["full_name"],
                                 int(r["failed"]) == 0,
                                 eligibility.sentences(rule, int(r["failed"]), {
                                     "pmt": r["pmt"], "members": r["members"], "monthly_income": r["monthly_income"],
                                     "age": r["age"], "payroll": payroll}, None, lang))
            for r in rows]


def _when(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))

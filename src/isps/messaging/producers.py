"""Messages the system composes from other modules' rows, queued set-based (one ``INSERT …
SELECT`` each, idempotent by key):

* :func:`pickup`: the pickup slot of every pull-channel beneficiary of a payroll
  (``payments/pickup.py`` composes the text per slot; key ``pickup:<slot>``, the slot being its
  payment instruction);
* :func:`credited`: every payment a bank's status file confirmed paid on or after a day (key
  ``paid:<instruction>``), in Urdu or English (``messaging/data/texts.json``).

The phone is the recipient's (the enrolment's recipient, else its member, else the household's
head) ``individual.phone``, normalised in SQL to ``923001234567``; a person without a valid mobile
gets no message and is counted (``no_phone``). A phone that opted out gets a ``suppressed`` row.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from isps.messaging.texts import text as fixed_text


def digits_sql(expr: str) -> str:
    """``expr`` without the separators people write in numbers."""
    for ch in (" ", "-", "+", "(", ")", "."):
        expr = f"REPLACE({expr}, '{ch}', '')"
    return expr


def _only_digits(expr: str) -> str:
    """A condition: ``expr`` is made of digits only (portable: no regular expressions in SQLite)."""
    stripped = expr
    for d in "0123456789":
        stripped = f"REPLACE({stripped}, '{d}', '')"
    return f"{stripped} = ''"


NORMALISED = """CASE WHEN LENGTH(digits) = 11 AND SUBSTR(digits, 1, 1) = '0' THEN '92' || SUBSTR(digits, 2)
    WHEN LENGTH(digits) = 14 AND SUBSTR(digits, 1, 4) = '0092' THEN SUBSTR(digits, 3)
    WHEN LENGTH(digits) = 12 AND SUBSTR(digits, 1, 2) = '92' THEN digits
    WHEN LENGTH(digits) = 10 AND SUBSTR(digits, 1, 1) = '3' THEN '92' || digits END"""
VALID = f"phone IS NOT NULL AND SUBSTR(phone, 3, 1) = '3' AND {_only_digits('phone')}"
RECIPIENT = """COALESCE(e.recipient_id, NULLIF(e.individual_id, 0),
    (SELECT h.id FROM individual h WHERE h.household_id = e.household_id AND h.roster_line = 1))"""


def queue_from_select(session: Session, source: str, params: dict, kind: str, lang: str) -> dict:
    """Queue one message per row of the SQL ``source`` (columns: key, body, individual_id,
    household_id, district_id, digits: the phone as written, see :func:`digits_sql`) with a valid
    mobile, in one ``INSERT … SELECT``, idempotent by key; an opted-out phone gets a ``suppressed``
    row. The counts: queued (now), already (a row with the key existed), no_phone (rows without a
    valid mobile: nothing queued). Any module's batch messages go through here."""
    # derived tables, not a WITH: SQLite's driver counts the rows of a statement only when it starts with INSERT
    norm = f"(SELECT src.*, {NORMALISED} AS phone FROM ({source}) src) norm"
    now = datetime.now()
    counts = dict(session.execute(text(f"""SELECT
            COALESCE(SUM(CASE WHEN {VALID} THEN 0 ELSE 1 END), 0) AS no_phone,
            COALESCE(SUM(CASE WHEN {VALID} AND EXISTS (SELECT 1 FROM sms_message m WHERE m.key = norm.key)
                         THEN 1 ELSE 0 END), 0) AS already
        FROM {norm}"""), params).mappings().one())
    queued = session.execute(text(f"""INSERT INTO sms_message (key, kind, phone, text, lang, status, attempts, individual_id, household_id,
                                 district_id, send_after, created_at)
        SELECT norm.key, :kind, norm.phone, norm.body, :lang,
               CASE WHEN EXISTS (SELECT 1 FROM sms_opt_out o WHERE o.phone = norm.phone AND o.opted_out)
                    THEN 'suppressed' ELSE 'queued' END,
               0, norm.individual_id, norm.household_id, norm.district_id, :now, :now
        FROM {norm} WHERE {VALID} AND NOT EXISTS (SELECT 1 FROM sms_message m WHERE m.key = norm.key)
        ON CONFLICT (key) DO NOTHING"""), {**params, "kind": kind, "lang": lang, "now": now}).rowcount
    return {"queued": int(queued), "already": int(counts["already"]), "no_phone": int(counts["no_phone"])}


def pickup_counts(session: Session, payroll_id: int, lang: str = "en") -> dict:
    """Queue the pickup message of every slot of the payroll; the counts: queued, already (queued by
    an earlier run), no_phone (no valid mobile: nobody to tell). In English the text is the one
    ``payments/pickup.py`` composed for the slot; in Urdu (``lang="ur"``) it is composed here from
    the same slot (outlet, day, hour, token) with ``texts.json``'s template."""
    params: dict = {"payroll": payroll_id}
    if lang == "ur":
        slot = "CAST(s.slot_start AS VARCHAR(30))"  # '2026-07-06 09:00:00' on both databases
        body = template_sql(fixed_text("pickup", "ur"), {
            "program": _program_names(session, "ur", params, "SELECT DISTINCT program_code FROM payment_instruction "
                                                             "WHERE payroll_id = :payroll"),
            "amount": "CAST(CAST(ROUND(i.amount) AS BIGINT) AS VARCHAR(20))", "outlet": "o.name",
            "day": f"SUBSTR({slot}, 1, 10)", "start": f"SUBSTR({slot}, 12, 5)",
            "seat": "CAST(s.seat AS VARCHAR(10))"}, params)
    else:
        body = "s.sms"
    source = f"""SELECT 'pickup:' || CAST(s.instruction_id AS VARCHAR(20)) AS key, {body} AS body,
            p.id AS individual_id, e.household_id AS household_id, i.district_id AS district_id,
            {digits_sql('p.phone')} AS digits
        FROM pickup_slot s JOIN payment_instruction i ON i.id = s.instruction_id
        JOIN cash_outlet o ON o.id = s.outlet_id
        JOIN enrolment e ON e.id = i.enrolment_id
        LEFT JOIN individual p ON p.id = {RECIPIENT}
        WHERE i.payroll_id = :payroll"""
    return queue_from_select(session, source, params, "pickup", "ur" if lang == "ur" else "en")


def pickup(session: Session, payroll_id: int, lang: str = "en") -> int:
    """The number of pickup messages queued now for the payroll's slots (see :func:`pickup_counts`)."""
    return pickup_counts(session, payroll_id, lang)["queued"]


def _program_names(session: Session, lang: str, params: dict, codes_sql: str) -> str:
    """The programs' display names in ``lang`` as one SQL CASE over ``i.program_code`` (the few
    codes found by ``codes_sql``, names as bind parameters)."""
    from isps.catalogue import display_name

    codes = [c for (c,) in session.execute(text(codes_sql), params)]
    if not codes:
        return "i.program_code"
    whens = []
    for k, code in enumerate(codes):
        params[f"c{k}"], params[f"n{k}"] = code, display_name(code, lang)[:120]
        whens.append(f"WHEN CAST(:c{k} AS VARCHAR(40)) THEN CAST(:n{k} AS VARCHAR(120))")
    return f"CASE i.program_code {' '.join(whens)} ELSE i.program_code END"


def template_sql(template: str, exprs: dict[str, str], params: dict, prefix: str = "") -> str:
    """A text template as one SQL string expression: literal pieces as bind parameters (named
    ``<prefix>t<n>``: give each template of one statement its own prefix), each ``{name}`` as its
    column expression."""
    pieces = []
    for i, part in enumerate(re.split(r"(\{\w+\})", template)):
        if not part:
            continue
        if part.startswith("{") and part[1:-1] in exprs:
            pieces.append(exprs[part[1:-1]])
        else:
            params[f"{prefix}t{i}"] = part
            pieces.append(f"CAST(:{prefix}t{i} AS VARCHAR(400))")
    return " || ".join(pieces)


def credited_counts(session: Session, since: date | datetime, lang: str = "ur") -> dict:
    """Queue a "payment credited" message for every instruction confirmed paid by a bank's status
    on or after ``since`` (a transfer credited, or cash collected at an agent: the citizen who did
    not get the full amount is told where to complain). Counts as :func:`pickup_counts`."""
    day = since.date() if isinstance(since, datetime) else since
    params: dict = {"since": day}
    names = _program_names(session, lang, params, "SELECT DISTINCT program_code FROM payment_instruction "
                                                  "WHERE status = 'paid' AND status_on >= :since")
    body = template_sql(fixed_text("paid", lang), {
        "program": names, "amount": "CAST(CAST(ROUND(i.amount) AS BIGINT) AS VARCHAR(20))",
        "day": "CAST(i.status_on AS VARCHAR(10))"}, params)
    source = f"""SELECT 'paid:' || CAST(i.id AS VARCHAR(20)) AS key, {body} AS body,
            p.id AS individual_id, e.household_id AS household_id, i.district_id AS district_id,
            {digits_sql('p.phone')} AS digits
        FROM payment_instruction i JOIN enrolment e ON e.id = i.enrolment_id
        LEFT JOIN individual p ON p.id = {RECIPIENT}
        WHERE i.status = 'paid' AND i.status_on >= :since"""
    return queue_from_select(session, source, params, "paid", lang)


def credited(session: Session, since: date | datetime, lang: str = "ur") -> int:
    """The number of payment-credited messages queued now (see :func:`credited_counts`)."""
    return credited_counts(session, since, lang)["queued"]


__all__ = ["pickup", "pickup_counts", "credited", "credited_counts", "queue_from_select", "digits_sql", "template_sql"]

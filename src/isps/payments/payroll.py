"""Payroll, instruction files, status files and the ledger: every entitlement paid once, none lost.

The life of a payment::

    approved cycle ──generate──▶ payroll (draft) ──approve (2nd person)──▶ approved ──export──▶ files
        instruction: pending ──export──▶ sent ──status──▶ paid | failed | unclaimed ; paid ──▶ reversed
        failed / reversed ──retry (next channel)──▶ a new instruction (attempt + 1)
        unclaimed for N days ──return──▶ returned (the money goes back to the program's fund)
        pending, not yet sent, beneficiary dead ──stop──▶ stopped (the money goes back to the fund)

Every step is one transaction of set-based SQL, and is idempotent by database constraint (see
:mod:`isps.payments.models`): generating a payroll twice, importing the same status file twice, or
running any step again after a crash (kill -9) changes nothing that was done already. An
instruction is "sent" once its id is at or below its payroll's ``exported_upto`` (export moves one
number, not a million rows). The ledger is a double-entry journal, one posting per movement, keyed
by the instruction, so it balances after every commit:

=========  ==========  ==========
movement   debit       credit
=========  ==========  ==========
released   fund        treasury
issued     clearing    fund
paid       disbursed   clearing
failed     payable     clearing
reversed   payable     disbursed
retried    clearing    payable
returned   fund        clearing
=========  ==========  ==========

A program pays only what was released into its fund (:func:`release_funds`): a payroll is approved
only when the fund holds its total (:func:`fund`).

A status line applies only to an instruction that was sent (its payroll exported and the instruction
in a file: id at or below ``exported_upto``) and only for the amount sent; every other line is
rejected with a reason, row by row (:func:`reconcile`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from isps.payments.models import Payroll, StatusImport
from isps.programs.enrolment import PULL, best_accounts, refresh_channels
from isps.registry.bulk import insert_arrow

# a failed or reversed payment is retried on the next channel (a bank payment goes to the mobile
# wallet only if the recipient has one: see retry_failed)
ALTERNATE = {"bank": "mobile_wallet", "mobile_wallet": "agent", "agent": "post", "cash_outlet": "post",
             "post": "agent"}
STATUSES = ("paid", "failed", "unclaimed", "reversed")
# what may precede each status (anything else in a status file is rejected and kept for review)
FROM = {"unclaimed": ("pending",), "paid": ("pending", "unclaimed"),
        "failed": ("pending", "unclaimed"), "reversed": ("paid",)}
# the posting of each movement: (kind, debit, credit)
POSTING = {"released": ("rel", "fund", "treasury"), "issued": ("snd", "clearing", "fund"),
           "paid": ("pd", "disbursed", "clearing"), "failed": ("fl", "payable", "clearing"),
           "reversed": ("rv", "payable", "disbursed"),
           "retried": ("rty", "clearing", "payable"), "returned": ("rt", "fund", "clearing")}
DEBTOR = {"name": "Benazir Income Support Programme", "iban": "PK36SBPP0000001234567890", "bic": "SBPPPKKA"}
E2E = "'E' || CAST({t}.entitlement_id AS VARCHAR(20)) || '-' || CAST({t}.attempt AS VARCHAR(5))"


class PaymentError(ValueError):
    """A request the payment rules refuse; the message is safe to show."""


class PaymentConflict(PaymentError):
    """A request that collides with the state of what it acts on: done already or under way, its
    maker approving, a step out of order (the doors answer 409)."""


def e2e(entitlement_id: int, attempt: int) -> str:
    """The ISO 20022 EndToEndId of an instruction."""
    return f"E{entitlement_id}-{attempt}"


def _post(session: Session, movement: str, select_sql: str, params: dict) -> None:
    """One posting per row of ``select_sql`` (columns ref_id, program_code, enrolment_id, amount),
    set-based; a movement already posted for that instruction is not posted again."""
    kind, debit, credit = POSTING[movement]
    session.execute(text(f"""INSERT INTO ledger_entry (kind, ref_id, debit, credit, program_code, enrolment_id,
                                                      amount, posted_at)
        SELECT '{kind}', x.ref_id, '{debit}', '{credit}', x.program_code, x.enrolment_id, x.amount, CURRENT_TIMESTAMP
        FROM ({select_sql}) x WHERE 1 = 1 ON CONFLICT DO NOTHING"""), params)


def _lock(session: Session, payroll_ids: str, params: dict) -> None:
    """Serialise work on the same payrolls (export, retry, reconciliation) on PostgreSQL; SQLite has
    one writer at a time anyway."""
    if session.bind.dialect.name == "postgresql":
        session.execute(text(f"SELECT id FROM payroll WHERE id IN ({payroll_ids}) ORDER BY id FOR UPDATE"), params)


# ---------------------------------------------------------------- the program's fund

def _fund_movements(session: Session, program_code: str | None) -> tuple[float, float, float]:
    """What was released into the fund, issued from it and returned to it, from the ledger (for one
    program, or all): the figures both :func:`fund` and :func:`ledger_check` stand on."""
    where = "AND program_code = :c" if program_code else ""
    row = session.execute(text(f"""SELECT
            COALESCE(SUM(CASE WHEN kind = 'rel' THEN amount END), 0),
            COALESCE(SUM(CASE WHEN kind = 'snd' THEN amount END), 0),
            COALESCE(SUM(CASE WHEN kind = 'rt' THEN amount END), 0)
        FROM ledger_entry WHERE kind IN ('rel', 'snd', 'rt') {where}"""), {"c": program_code}).one()
    return float(row[0]), float(row[1]), float(row[2])


def release_funds(session: Session, program_code: str, amount: float, reference: str, released_by: str) -> dict:
    """Record money released from the treasury into a program's fund (the treasury's release order
    ``reference``) and post it to the ledger (``released``: fund ← treasury). Recording the same
    reference again for the program changes nothing and returns the first release."""
    reference = (reference or "").strip()
    if not reference or len(reference) > 80:
        raise PaymentError("a fund release needs the treasury's reference (1 to 80 characters)")
    if not isinstance(amount, (int, float)) or not (0 < float(amount) < 1e13):
        raise PaymentError(f"a fund release is a positive amount below 10 trillion, not {amount!r}")
    known = session.execute(text("""SELECT 1 FROM program WHERE code = :c
        UNION SELECT 1 FROM enrolment_policy WHERE program_code = :c"""), {"c": program_code}).first()
    if known is None:
        raise PaymentError(f"no program {program_code!r}")
    p = {"c": program_code, "a": round(float(amount), 2), "r": reference, "by": released_by}
    session.execute(text("""INSERT INTO fund_release (program_code, amount, reference, released_by, released_at)
        VALUES (:c, :a, :r, :by, CURRENT_TIMESTAMP) ON CONFLICT DO NOTHING"""), p)
    row = session.execute(text("""SELECT id, amount, released_by, released_at FROM fund_release
        WHERE program_code = :c AND reference = :r"""), p).one()
    _post(session, "released", """SELECT f.id AS ref_id, f.program_code, 0 AS enrolment_id, f.amount
                                  FROM fund_release f WHERE f.id = :id""", {"id": row.id})
    return {"release_id": int(row.id), "program": program_code, "amount": float(row.amount), "reference": reference,
            "released_by": row.released_by, "released_at": row.released_at, "fund": fund(session, program_code)}


def fund(session: Session, program_code: str) -> dict:
    """A program's fund from the ledger: ``released`` into it, ``issued`` from it to payrolls,
    ``returned`` to it (unclaimed or stopped payments); ``available`` = released − issued + returned.
    A payroll's instructions are issued when it is generated, so a draft payroll holds its money
    already; ``shortfall`` is how much was issued beyond what was released (0 when funded)."""
    rel, snd, rt = _fund_movements(session, program_code)
    available = round(rel - snd + rt, 2)
    return {"released": round(rel, 2), "issued": round(snd, 2), "returned": round(rt, 2),
            "available": max(available, 0.0), "shortfall": max(-available, 0.0)}


# ---------------------------------------------------------------- payroll

def generate(session: Session, cycle_id: int, maker: str) -> Payroll:
    """The payroll of an approved cycle: one instruction per entitlement. Generating it again returns
    the same payroll and adds only what is missing (nothing, unless a crash interrupted it)."""
    cycle = session.execute(text("SELECT program_code, status FROM benefit_cycle WHERE id = :c"),
                            {"c": cycle_id}).one_or_none()
    if cycle is None:
        raise PaymentError(f"no cycle {cycle_id}")
    if cycle.status != "approved":
        raise PaymentConflict("a payroll is made only from an approved (frozen) cycle")
    session.execute(text("""INSERT INTO payroll (cycle_id, program_code, status, instructions, total, made_by, made_at,
                                               exported_upto)
        VALUES (:c, :p, 'draft', 0, 0, :m, CURRENT_TIMESTAMP, 0) ON CONFLICT DO NOTHING"""),
                    {"c": cycle_id, "p": cycle.program_code, "m": maker})
    payroll = session.scalar(select(Payroll).where(Payroll.cycle_id == cycle_id))
    p = {"payroll": payroll.id, "cycle": cycle_id, "yes": True, "no": False}
    # the channel the money goes by is read now, from the recipients' current accounts (the accounts
    # feed writes no registry events; a new or closed account counts from the next payroll on)
    refresh_channels(session, """e.id IN (SELECT t.enrolment_id FROM entitlement t WHERE t.cycle_id = :cycle
        AND NOT EXISTS (SELECT 1 FROM payment_instruction i WHERE i.entitlement_id = t.id))""", {"cycle": cycle_id})
    pull = ", ".join(f"'{c}'" for c in PULL)
    mark = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM payment_instruction")).scalar_one()
    session.execute(text(f"""INSERT INTO payment_instruction (payroll_id, entitlement_id, attempt,
            enrolment_id, program_code, district_id, channel, biometric, amount, status)
        SELECT :payroll, t.id, 1, t.enrolment_id, t.program_code,
               t.district_id, e.channel, CASE WHEN e.channel IN ({pull}) THEN :yes ELSE :no END, t.amount, 'pending'
        FROM entitlement t JOIN enrolment e ON e.id = t.enrolment_id
        WHERE t.cycle_id = :cycle ON CONFLICT DO NOTHING"""), p)
    if session.bind.dialect.name == "postgresql":  # a payroll adds up to millions of rows: fresh statistics
        session.execute(text("ANALYZE payment_instruction"))
    _post(session, "issued", """SELECT i.id AS ref_id, i.program_code, i.enrolment_id, i.amount
                                FROM payment_instruction i WHERE i.id > :mark AND i.payroll_id = :payroll""",
          {**p, "mark": mark})
    n, total = session.execute(text("""SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM payment_instruction
        WHERE payroll_id = :payroll AND attempt = 1"""), p).one()
    session.execute(text("UPDATE payroll SET instructions = :n, total = :t WHERE id = :payroll"),
                    {**p, "n": int(n), "t": float(total)})
    session.refresh(payroll)
    return payroll


def approve(session: Session, payroll_id: int, approver: str) -> Payroll:
    """Maker-checker: a second person approves a draft payroll. One compare-and-set statement, so of
    two approvers at once exactly one succeeds and the other is told it was approved already."""
    payroll = session.get(Payroll, payroll_id)
    if payroll is None:
        raise PaymentError(f"no payroll {payroll_id}")
    if payroll.made_by == approver:
        raise PaymentConflict(f"a second person must approve: {approver} made this payroll")
    if payroll.status == "draft":
        _require_funds(session, payroll)
    res = session.execute(text("""UPDATE payroll SET status = 'approved', approved_by = :a, approved_at = :t
        WHERE id = :p AND status = 'draft' AND made_by <> :a"""), {"a": approver, "t": datetime.now(), "p": payroll_id})
    session.refresh(payroll)
    if res.rowcount != 1:
        raise PaymentConflict(f"payroll {payroll_id} is {payroll.status} (approved by {payroll.approved_by}); "
                           "only a draft can be approved")
    return payroll


def _require_funds(session: Session, payroll: Payroll) -> None:
    """A payroll is approved only when its program's fund holds its total: what was released, less
    what the other payrolls issued, plus what came back. A draft's instructions are issued already
    (at generation, for its total), so this is: no shortfall in the fund."""
    f = fund(session, payroll.program_code)
    others = round(f["issued"] - payroll.total, 2)
    available = round(f["released"] - others + f["returned"], 2)
    if f["shortfall"] > 0.005:
        raise PaymentError(f"program {payroll.program_code} has Rs {max(available, 0):,.2f} available in its fund "
                           f"(released {f['released']:,.2f}, issued to other payrolls {others:,.2f}, "
                           f"returned {f['returned']:,.2f}); payroll {payroll.id} needs Rs {payroll.total:,.2f}: "
                           "release funds to the program first")


def _xml(s: object) -> str:
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _sql_xml(expr: str) -> str:
    return f"REPLACE(REPLACE(REPLACE(COALESCE({expr}, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"


def _sql_csv_text(expr: str) -> str:
    """A name as a CSV cell that a spreadsheet opens safely, the rule of
    :func:`isps.registry.transfer.cells.spreadsheet_safe` written in SQL: no double quote, and a
    single quote before text that would start a formula (``=``, ``+``, ``-``, ``@``). Imports refuse
    such names, but older data may hold them, and a bank clerk opens these files in Excel."""
    clean = f"REPLACE(COALESCE({expr}, ''), '\"', '')"
    return f"CASE WHEN SUBSTR({clean}, 1, 1) IN ('=', '+', '-', '@') THEN '''' || {clean} ELSE {clean} END"


def _pg_lines(session: Session, select_sql: str, params: dict, out) -> None:
    """Stream one text column of a query to a file with COPY: PostgreSQL formats, Python only copies."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        query = re.sub(r":(p|upto)\b", lambda m: str(int(params[m.group(1)])), select_sql)  # integers only
        with cur.copy(f"COPY ({query}) TO STDOUT") as copy:
            for chunk in copy:
                out.write(bytes(chunk))


def export(session: Session, payroll_id: int, folder: Path | str, formats: tuple[str, ...] = ("pain.001", "csv"),
           on: date | None = None) -> dict:
    """Write the instructions not yet sent as ISO 20022 pain.001.001.09 (XML) and CSV; they are sent
    from then on (the payroll's ``exported_upto`` moves past them). Files are written whole then
    renamed, so a crash leaves no half file; they are readable by their owner only (mode 0600, in a
    folder made 0700), as they hold CNICs and phone numbers; exporting again after a crash writes the
    same instructions with the same EndToEndIds, which banks de-duplicate."""
    payroll = session.get(Payroll, payroll_id)
    if payroll is None:
        raise PaymentError(f"no payroll {payroll_id}")
    if payroll.status not in ("approved", "exported"):
        raise PaymentConflict("a payroll is exported only after a second person approved it")
    _lock(session, ":p", {"p": payroll_id})
    stop_for_deaths(session, payroll_id)  # nothing leaves for a person the registry knows has died
    session.refresh(payroll)
    on = on or date.today()
    folder = Path(folder)
    if not folder.exists():  # files hold CNICs and phone numbers: the folder is the owner's alone
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    p = {"p": payroll_id, "upto": payroll.exported_upto}
    n, total, upto, batch = session.execute(text("""SELECT COUNT(*), COALESCE(SUM(amount), 0), MAX(id),
        COALESCE(MAX(attempt), 1) FROM payment_instruction WHERE payroll_id = :p AND id > :upto
        AND status = 'pending'"""), p).one()
    n, total = int(n), float(total)
    stem = f"payroll-{payroll_id}-{payroll.program_code}-a{batch}-{payroll.exported_upto}"
    # the account of the instruction's own channel: the enrolment's when it is the enrolment's channel,
    # else (a retry on another channel) the recipient's own account of that kind; none for pull channels
    account = ("CASE WHEN i.channel = e.channel THEN e.account "
               "WHEN i.channel = 'bank' THEN a.bank WHEN i.channel = 'mobile_wallet' THEN a.wallet END")
    unsent = "i.payroll_id = :p AND i.id > :upto AND i.status = 'pending'"
    retried_to = best_accounts(f"""SELECT e.recipient_id FROM payment_instruction i JOIN enrolment e
        ON e.id = i.enrolment_id WHERE {unsent} AND i.channel <> e.channel""")
    base = f"""FROM payment_instruction i JOIN enrolment e ON e.id = i.enrolment_id
        LEFT JOIN individual r ON r.id = e.recipient_id
        LEFT JOIN ({retried_to}) a ON a.individual_id = e.recipient_id
        WHERE {unsent} ORDER BY i.id"""
    pg = session.bind.dialect.name == "postgresql"
    amount = _money_text(pg, "i.amount")
    bio = "CASE WHEN i.biometric THEN ' BIOMETRIC' ELSE '' END"
    tx_sql = (f"SELECT '<CdtTrfTxInf><PmtId><EndToEndId>' || {E2E.format(t='i')} || '</EndToEndId></PmtId>"
              f"<Amt><InstdAmt Ccy=\"PKR\">' || {amount} || '</InstdAmt></Amt><Cdtr><Nm>' || {_sql_xml('r.full_name')}"
              f" || '</Nm><Id><PrvtId><Othr><Id>' || COALESCE(r.cnic, '') || '</Id><SchmeNm><Prtry>CNIC</Prtry>"
              f"</SchmeNm></Othr></PrvtId></Id></Cdtr><CdtrAcct><Id><Othr><Id>' || "
              f"{_sql_xml(f'COALESCE({account}, e.phone, r.cnic)')} || '</Id></Othr></Id><Tp><Prtry>' || i.channel || "
              f"'</Prtry></Tp></CdtrAcct><RmtInf><Ustrd>' || i.program_code || {bio} || '</Ustrd></RmtInf>"
              f"</CdtTrfTxInf>' {base}")
    csv_sql = (f"SELECT {E2E.format(t='i')} || ',' || i.channel || ',' || COALESCE({account}, '') || ',' || "
               f"COALESCE(e.phone, '') || ',\"' || {_sql_csv_text('r.full_name')} || '\",' || "
               f"COALESCE(r.cnic, '') || ',' || {amount} || ',' || CASE WHEN i.biometric THEN '1' ELSE '0' END "
               f"|| ',' || CAST(i.district_id AS VARCHAR(6)) {base}")
    paths = {}

    def write(path: Path, head: str, sql: str, tail: str) -> None:
        tmp = path.with_name(path.name + ".part")
        # readable by the owner only (CNICs, phones): created 0600, whatever the process umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a .part left by a crash keeps its old mode: set it again
        with open(fd, "wb") as f:
            f.write(head.encode())
            if pg:
                _pg_lines(session, sql, p, f)
            else:
                for part in session.execute(text(sql), p).partitions(50_000):
                    f.write("".join(r[0] + "\n" for r in part).encode())
            f.write(tail.encode())
        os.replace(tmp, path)

    if "pain.001" in formats:
        msg = f"ISPS-{payroll_id}-a{batch}-{payroll.exported_upto}"
        head = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn>'
                f"<GrpHdr><MsgId>{msg}</MsgId><CreDtTm>{datetime.now().isoformat(timespec='seconds')}</CreDtTm>"
                f"<NbOfTxs>{n}</NbOfTxs><CtrlSum>{total:.2f}</CtrlSum>"
                f"<InitgPty><Nm>{DEBTOR['name']}</Nm></InitgPty></GrpHdr>"
                f"<PmtInf><PmtInfId>{msg}</PmtInfId><PmtMtd>TRF</PmtMtd><NbOfTxs>{n}</NbOfTxs>"
                f"<CtrlSum>{total:.2f}</CtrlSum><ReqdExctnDt><Dt>{on.isoformat()}</Dt></ReqdExctnDt>"
                f"<Dbtr><Nm>{DEBTOR['name']}</Nm></Dbtr><DbtrAcct><Id><IBAN>{DEBTOR['iban']}</IBAN></Id></DbtrAcct>"
                f"<DbtrAgt><FinInstnId><BICFI>{DEBTOR['bic']}</BICFI></FinInstnId></DbtrAgt>\n")
        path = folder / (stem + ".xml")
        write(path, head, tx_sql, "</PmtInf></CstmrCdtTrfInitn></Document>\n")
        paths["pain.001"] = str(path)
    if "csv" in formats:
        path = folder / (stem + ".csv")
        write(path, "end_to_end_id,channel,account,phone,name,cnic,amount,biometric,district_id\n", csv_sql, "")
        paths["csv"] = str(path)
    if upto is not None:
        payroll.exported_upto = int(upto)
    payroll.status = "exported"
    session.flush()
    return {"payroll_id": payroll_id, "instructions": n, "total": total, "files": paths}


# ---------------------------------------------------------------- status files

def parse_status(data: bytes, default_on: date | None = None) -> tuple[str, pa.Table]:
    """A status file (CSV, pain.002 or camt.054) as columns: end_to_end_id, status, amount,
    status_on, bank_ref, biometric_ok."""
    default_on = default_on or date.today()
    if not data.strip():
        raise PaymentError("the status file is empty")
    head = data[:400].lstrip()
    if head.startswith(b"<"):
        try:
            return _parse_xml(data, default_on)
        except ET.ParseError as exc:
            raise PaymentError(f"the status file is not well-formed XML (pain.002 or camt.054 expected): {exc}") from None
    try:
        table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(column_types={
            "end_to_end_id": pa.string(), "status": pa.string(), "amount": pa.float64(), "status_on": pa.string(),
            "bank_ref": pa.string(), "biometric_ok": pa.string()}, strings_can_be_null=True))
    except pa.ArrowInvalid as exc:
        raise PaymentError(f"the status file is neither pain.002, camt.054 nor a readable CSV: {exc}") from None
    if "end_to_end_id" not in table.column_names or "status" not in table.column_names:
        raise PaymentError("a CSV status file needs the columns end_to_end_id and status "
                           f"(found: {', '.join(table.column_names)})")
    cols = {c: table[c] if c in table.column_names else pa.nulls(table.num_rows, pa.string())
            for c in ("end_to_end_id", "status", "amount", "status_on", "bank_ref", "biometric_ok")}
    return "csv", pa.table(cols)


def _parse_xml(data: bytes, default_on: date) -> tuple[str, pa.Table]:
    out = {k: [] for k in ("end_to_end_id", "status", "amount", "status_on", "bank_ref", "biometric_ok")}
    fmt = "camt.054" if b"camt.054" in data[:1000] else "pain.002"
    root = ET.fromstring(data)

    def local(el):
        return el.tag.rsplit("}", 1)[-1]

    def find(el, *path):
        for name in path:
            el = next((c for c in el if local(c) == name), None)
            if el is None:
                return None
        return el

    def txt(el, *path):
        found = find(el, *path)
        return found.text.strip() if found is not None and found.text else None

    if fmt == "pain.002":
        code = {"ACSC": "paid", "ACCC": "paid", "RJCT": "failed", "PDNG": "unclaimed"}
        for tx in root.iter():
            if local(tx) != "TxInfAndSts":
                continue
            status = code.get(txt(tx, "TxSts") or "", None)
            reason = txt(tx, "StsRsnInf", "Rsn", "Prtry") or ""
            if reason.upper() == "REVERSED":
                status = "reversed"
            out["end_to_end_id"].append(txt(tx, "OrgnlEndToEndId"))
            out["status"].append(status)
            amt = txt(tx, "OrgnlTxRef", "Amt", "InstdAmt")
            out["amount"].append(float(amt) if amt else None)
            out["status_on"].append(txt(tx, "AccptncDtTm") or default_on.isoformat())
            out["bank_ref"].append(txt(tx, "StsId") or txt(tx, "AcctSvcrRef") or "")
            out["biometric_ok"].append("1" if "BIOMETRIC" in (txt(tx, "StsRsnInf", "AddtlInf") or "").upper() else None)
    else:
        for ntry in root.iter():
            if local(ntry) != "Ntry":
                continue
            reversal = (txt(ntry, "RvslInd") or "").lower() == "true"
            info = (txt(ntry, "AddtlNtryInf") or "").upper()
            booked = txt(ntry, "Sts", "Cd") or txt(ntry, "Sts") or "BOOK"
            status = ("reversed" if reversal else "unclaimed" if "UNCLAIMED" in info
                      else "failed" if "FAILED" in info or booked == "RJCT" else "paid")
            on = txt(ntry, "BookgDt", "Dt") or default_on.isoformat()
            for tx in ntry.iter():
                if local(tx) != "TxDtls":
                    continue
                out["end_to_end_id"].append(txt(tx, "Refs", "EndToEndId"))
                out["status"].append(status)
                amt = txt(tx, "Amt") or txt(ntry, "Amt")
                out["amount"].append(float(amt) if amt else None)
                out["status_on"].append(on)
                out["bank_ref"].append(txt(tx, "Refs", "AcctSvcrRef") or txt(ntry, "AcctSvcrRef") or "")
                out["biometric_ok"].append("1" if "BIOMETRIC" in info else None)
    return fmt, pa.table({"end_to_end_id": pa.array(out["end_to_end_id"], pa.string()),
                          "status": pa.array(out["status"], pa.string()),
                          "amount": pa.array(out["amount"], pa.float64()),
                          "status_on": pa.array(out["status_on"], pa.string()),
                          "bank_ref": pa.array(out["bank_ref"], pa.string()),
                          "biometric_ok": pa.array(out["biometric_ok"], pa.string())})


REJECTED_SHOWN = 1000  # rejected lines returned with an import's result (all are kept in payment_status_line)


def _money_text(pg: bool, expr: str) -> str:
    """SQL for an amount as text with two decimals (the same on both backends)."""
    return f"CAST(CAST({expr} AS DECIMAL(14, 2)) AS VARCHAR(20))" if pg else f"PRINTF('%.2f', {expr})"


def _claim_file(session: Session, sha: str) -> None:
    """One import per status file: refuse (409) a file that another upload is applying right now
    (PostgreSQL: a transaction lock on the file's hash, tried without waiting) or that was imported
    already. The unique index on ``file_sha256`` holds it on both backends whatever happens."""
    if session.bind.dialect.name == "postgresql":
        got = session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext('isps.status_file'), hashtext(:h))"),
                              {"h": sha}).scalar_one()
        if not got:
            earlier = _earlier_import(session, sha)
            raise PaymentConflict("this status file is being applied by another upload"
                                  + (f" (import {earlier.id})" if earlier else "") + ": nothing was changed")
    earlier = _earlier_import(session, sha)
    if earlier is not None:
        raise PaymentConflict(f"this status file was already imported as import {earlier.id} on "
                              f"{str(earlier.imported_at)[:16]} by {earlier.actor}: nothing was changed")


def _earlier_import(session: Session, sha: str):
    return session.execute(text("SELECT id, imported_at, actor FROM payment_status_import WHERE file_sha256 = :h"),
                           {"h": sha}).one_or_none()


def _calendar_day(value: str, on: date) -> bool:
    """Is ``value`` a real day (YYYY-MM-DD) a bank could report: from 1900 to the end of next year?"""
    try:
        return 1900 <= date.fromisoformat(value).year <= on.year + 1 and len(value) == 10
    except ValueError:
        return False


def reconcile(session: Session, data: bytes, file_name: str, actor: str, on: date | None = None) -> dict:
    """Import a status file and apply it, set-based, in one transaction.

    A file is imported once: the same bytes again, or at the same time by another upload, raise
    :class:`PaymentConflict` naming the earlier import (the API answers 409, the CLI says so) and
    change nothing. Each line's idempotency key is (EndToEndId, status, bank reference): a line
    applied before, from another file, is counted as a duplicate and changes nothing.

    A line applies only to an instruction that was sent (its payroll exported and the instruction in
    a file: id at or below ``exported_upto``), for the amount sent. Every other line is rejected with
    a reason and kept in ``payment_status_line``: a date that is not a date, an unknown status, no
    amount, an unknown EndToEndId, an instruction never sent (draft or approved payroll, or not yet
    in a file), a different amount, paid twice, a pull channel paid without the fingerprint match, a
    transition the instruction's status does not allow. The result lists the first
    :data:`REJECTED_SHOWN` rejected lines (``line``: the n-th status line of the file, 1-based, a
    CSV's header not counted) and their reasons."""
    import pyarrow.compute as pc

    on = on or date.today()
    fmt, table = parse_status(data, on)
    sha = hashlib.sha256(data).hexdigest()
    _claim_file(session, sha)
    imp = StatusImport(file_name=file_name[:200], file_sha256=sha, format=fmt, lines=table.num_rows, actor=actor)
    try:
        with session.begin_nested():
            session.add(imp)
            session.flush()
    except IntegrityError:
        _claim_file(session, sha)  # names the import that won
        raise PaymentConflict("this status file is being applied by another upload: nothing was changed") from None
    n = table.num_rows
    status = pc.utf8_lower(pc.fill_null(table["status"], ""))
    bank_ref = pc.fill_null(table["bank_ref"], "")
    e2e_col = pc.utf8_slice_codeunits(pc.fill_null(table["end_to_end_id"], ""), 0, 35)
    idem = pc.utf8_slice_codeunits(pc.binary_join_element_wise(e2e_col, status, bank_ref, ":"), 0, 80)
    parts = pc.extract_regex(e2e_col, r"^E(?P<ent>[0-9]{1,18})-(?P<att>[0-9]{1,4})$")
    bio = pc.is_in(pc.utf8_lower(pc.fill_null(table["biometric_ok"], "")), pa.array(["1", "true", "y", "yes"]))
    # a date is a real calendar day YYYY-MM-DD (a time may follow), from 1900 to next year; anything
    # else rejects the line and never reaches a DATE column (checked once per distinct value)
    raw_on = pc.fill_null(table["status_on"], on.isoformat())
    day = pc.utf8_slice_codeunits(raw_on, 0, 10)
    valid_days = [d for d in pc.unique(day).to_pylist() if _calendar_day(d, on)]
    valid_day = pc.and_(pc.is_in(day, pa.array(valid_days, pa.string())),
                        pc.match_substring_regex(raw_on, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.+Z-]{0,30})?$"))
    amount = table["amount"]
    amount = pc.if_else(pc.fill_null(pc.is_finite(amount), False), amount, pa.nulls(n, pa.float64()))
    stage = pa.table({"line_no": pa.array(range(n), pa.int64()), "idem_key": idem,
                      "end_to_end_id": e2e_col,
                      "entitlement_id": pc.cast(pc.struct_field(parts, "ent"), pa.int64()),
                      "attempt": pc.cast(pc.struct_field(parts, "att"), pa.int64()),
                      "status": pc.utf8_slice_codeunits(status, 0, 10), "amount": amount,
                      "raw_on": pc.utf8_slice_codeunits(raw_on, 0, 40),
                      "status_on": pc.if_else(valid_day, day, pa.nulls(n, pa.string())),
                      "biometric_ok": bio})
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    conn.execute(text("DROP TABLE IF EXISTS payment_status_stage"))
    conn.execute(text(f"""CREATE TEMPORARY TABLE payment_status_stage (line_no BIGINT, idem_key VARCHAR(80),
        end_to_end_id VARCHAR(35), entitlement_id BIGINT, attempt BIGINT, status VARCHAR(10), amount FLOAT,
        raw_on VARCHAR(40), status_on VARCHAR(10), biometric_ok BOOLEAN, outcome VARCHAR(12), reason VARCHAR(200))
        {'ON COMMIT DROP' if pg else ''}"""))
    insert_arrow(conn, "payment_status_stage", stage)
    # the same line twice in this file counts once; a line applied by an earlier import is a duplicate
    conn.execute(text("""DELETE FROM payment_status_stage WHERE line_no NOT IN
        (SELECT MIN(line_no) FROM payment_status_stage GROUP BY idem_key)"""))
    if pg:
        conn.execute(text("ANALYZE payment_status_stage"))
    conn.execute(text("""UPDATE payment_status_stage SET outcome = 'duplicate' WHERE EXISTS
        (SELECT 1 FROM payment_status_line p WHERE p.idem_key = payment_status_stage.idem_key
         AND p.outcome = 'applied')"""))
    p = {"imp": imp.id, "yes": True, "no": False}
    _lock(session, """SELECT DISTINCT i.payroll_id FROM payment_status_stage a JOIN payment_instruction i
        ON i.entitlement_id = a.entitlement_id AND i.attempt = a.attempt""", p)
    # lines that cannot apply whatever else the file holds, each with its reason; the WHERE repeats the
    # CASE's conditions so that only failing lines are written (a million good lines are read, not rewritten)
    statuses = ", ".join(f"'{x}'" for x in STATUSES)
    conn.execute(text(f"""UPDATE payment_status_stage SET reason = CASE
            WHEN status_on IS NULL THEN 'status_on ''' || raw_on || ''' is not a date (YYYY-MM-DD)'
            WHEN status NOT IN ({statuses}) THEN 'status ''' || status || ''' is not one of {", ".join(STATUSES)}'
            WHEN entitlement_id IS NULL THEN 'unknown EndToEndId'
            WHEN amount IS NULL THEN 'amount missing' END
        WHERE outcome IS NULL AND (status_on IS NULL OR status NOT IN ({statuses}) OR entitlement_id IS NULL
                                   OR amount IS NULL)"""))
    never_sent = ("'instruction ' || payment_status_stage.end_to_end_id || ' was never sent: payroll ' || "
                  "CAST(y.id AS VARCHAR(20)) || ")
    conn.execute(text(f"""UPDATE payment_status_stage SET reason = CASE
            WHEN y.status = 'draft' THEN {never_sent} ' is still draft'
            WHEN y.status <> 'exported' THEN {never_sent} ' is ' || y.status || ' but not exported'
            WHEN i.id > y.exported_upto THEN {never_sent} ' has not exported it yet'
            WHEN ABS(payment_status_stage.amount - i.amount) >= 0.005 THEN 'amount '
                 || {_money_text(pg, 'payment_status_stage.amount')} || ' differs from the '
                 || {_money_text(pg, 'i.amount')} || ' sent' END
        FROM payment_instruction i JOIN payroll y ON y.id = i.payroll_id
        WHERE i.entitlement_id = payment_status_stage.entitlement_id AND i.attempt = payment_status_stage.attempt
        AND payment_status_stage.outcome IS NULL AND payment_status_stage.reason IS NULL
        AND (y.status <> 'exported' OR i.id > y.exported_upto
             OR ABS(payment_status_stage.amount - i.amount) >= 0.005)"""))
    conn.execute(text("""UPDATE payment_status_stage SET reason = 'unknown EndToEndId' WHERE outcome IS NULL
        AND reason IS NULL AND NOT EXISTS (SELECT 1 FROM payment_instruction i
        WHERE i.entitlement_id = payment_status_stage.entitlement_id AND i.attempt = payment_status_stage.attempt)"""))
    conn.execute(text("UPDATE payment_status_stage SET outcome = 'rejected' "
                      "WHERE outcome IS NULL AND reason IS NOT NULL"))
    applied = 0
    match = "i.entitlement_id = a.entitlement_id AND i.attempt = a.attempt"
    sent = "JOIN payroll y ON y.id = i.payroll_id AND y.status = 'exported' AND i.id <= y.exported_upto"
    day_sql = "CAST(a.status_on AS DATE)" if pg else "a.status_on"
    for st in ("unclaimed", "paid", "failed", "reversed"):
        allowed = ", ".join(f"'{x}'" for x in FROM[st])
        bio_rule = "AND (i.biometric = :no OR a.biometric_ok = :yes)" if st == "paid" else ""
        # one line per instruction per status: the first in the file
        conn.execute(text(f"""UPDATE payment_status_stage SET outcome = 'applied' WHERE line_no IN (
            SELECT MIN(a.line_no) FROM payment_status_stage a JOIN payment_instruction i ON {match} {sent}
            WHERE a.status = '{st}' AND a.outcome IS NULL AND i.status IN ({allowed}) {bio_rule}
            AND ABS(a.amount - i.amount) < 0.005
            GROUP BY a.entitlement_id, a.attempt)"""), p)
        applied_sql = f"""FROM payment_instruction i JOIN payment_status_stage a ON {match}
            WHERE a.status = '{st}' AND a.outcome = 'applied' AND i.status IN ({allowed})"""
        if st != "unclaimed":
            _post(session, st, f"SELECT i.id AS ref_id, i.program_code, i.enrolment_id, i.amount {applied_sql}", p)
        applied += conn.execute(text(f"""UPDATE payment_instruction SET status = '{st}', status_on = {day_sql}
            FROM payment_status_stage a WHERE a.entitlement_id = payment_instruction.entitlement_id
            AND a.attempt = payment_instruction.attempt AND a.status = '{st}' AND a.outcome = 'applied'
            AND payment_instruction.status IN ({allowed})"""), p).rowcount
    # what stopped the rest: the instruction's status (after this file's own changes)
    now = "CASE i.status WHEN 'pending' THEN 'sent' ELSE i.status END"
    conn.execute(text(f"""UPDATE payment_status_stage SET outcome = 'rejected', reason = CASE
            WHEN i.status = 'paid' AND payment_status_stage.status = 'paid' THEN 'paid twice'
            WHEN i.status = payment_status_stage.status THEN 'already ' || i.status
            WHEN payment_status_stage.status = 'paid' AND i.status IN ('pending', 'unclaimed') AND i.biometric = :yes
                 AND payment_status_stage.biometric_ok = :no THEN 'pull channel paid without fingerprint match'
            ELSE 'instruction ' || payment_status_stage.end_to_end_id || ' is ' || {now} || ': it cannot become '
                 || payment_status_stage.status END
        FROM payment_instruction i WHERE i.entitlement_id = payment_status_stage.entitlement_id
        AND i.attempt = payment_status_stage.attempt AND payment_status_stage.outcome IS NULL"""), p)
    conn.execute(text("UPDATE payment_status_stage SET outcome = 'rejected', reason = 'not applied' "
                      "WHERE outcome IS NULL"))
    # a line rejected before (say, while its payroll was a draft) is recorded again with what happened now
    conn.execute(text(f"""INSERT INTO payment_status_line (import_id, idem_key, end_to_end_id, status, amount,
                                                         status_on, biometric_ok, outcome, reason)
        SELECT :imp, a.idem_key, a.end_to_end_id, a.status, a.amount, {day_sql}, a.biometric_ok, a.outcome, a.reason
        FROM payment_status_stage a WHERE a.outcome <> 'duplicate'
        ON CONFLICT (idem_key) DO UPDATE SET import_id = excluded.import_id, amount = excluded.amount,
            status_on = excluded.status_on, biometric_ok = excluded.biometric_ok, outcome = excluded.outcome,
            reason = excluded.reason
        WHERE payment_status_line.outcome <> 'applied'"""), p)
    counts = dict(conn.execute(text("SELECT outcome, COUNT(*) FROM payment_status_stage GROUP BY outcome")).all())
    rejected_lines = [{"line": int(k) + 1, "end_to_end_id": e, "status": st, "reason": why}
                      for k, e, st, why in conn.execute(text(f"""SELECT line_no, end_to_end_id, status, reason
                          FROM payment_status_stage WHERE outcome = 'rejected' ORDER BY line_no
                          LIMIT {REJECTED_SHOWN}"""))]
    conn.execute(text("DROP TABLE IF EXISTS payment_status_stage") if not pg else text("SELECT 1"))
    imp.applied = int(applied)
    imp.duplicates = n - int(counts.get("applied", 0)) - int(counts.get("rejected", 0))
    imp.rejected = int(counts.get("rejected", 0))
    session.flush()
    return {"import_id": imp.id, "format": fmt, "lines": n, "applied": imp.applied,
            "duplicates": imp.duplicates, "rejected": imp.rejected, "rejected_lines": rejected_lines}


def _dead_sql(payroll_filter: str) -> str:
    """Live, unsettled instructions whose beneficiary has died: the enrolment ended by a death, or
    its recipient (the person who would collect) has a date of death. It starts from the dead (few,
    found through the partial index on deceased individuals), never joins every instruction of a
    payroll to every enrolment."""
    dead_enrolments = """SELECT e.id FROM enrolment e WHERE e.status = 'deceased'
        UNION SELECT e.id FROM enrolment e WHERE e.status IN ('waiting','enrolled','suspended')
        AND e.recipient_id IN (SELECT d.id FROM individual d WHERE d.date_of_death IS NOT NULL)"""
    return f"""SELECT i.id FROM payment_instruction i JOIN payroll p ON p.id = i.payroll_id
        WHERE i.status = 'pending' {payroll_filter} AND i.enrolment_id IN ({dead_enrolments})"""


def stop_for_deaths(session: Session, payroll_id: int | None = None, on: date | None = None) -> dict:
    """Act on deaths before money moves. The programs first read the registry's ``member.deceased``
    events (:func:`isps.programs.enrolment.process_events`: the deceased's enrolments end, a household
    benefit passes to another adult member, freed places are filled); then every instruction not yet
    sent to a bank whose beneficiary is dead is ``stopped`` and its money returned to the program's
    fund (one ``returned`` posting each, so the ledger balances). Instructions already sent cannot be
    unsent: they are counted in ``to_recall`` (listed by :func:`payments_to_recall`) for the channel
    to recall; a pull channel will not pay them anyway without the dead person's fingerprint.

    Set-based and idempotent: running it again stops nothing more."""
    from isps.programs import enrolment

    on = on or date.today()
    programs = enrolment.process_events(session, on)
    where = "AND i.payroll_id = :p" if payroll_id is not None else ""
    p = {"p": payroll_id, "on": on}
    unsent = f"SELECT x.id FROM ({_dead_sql(where)} AND i.id > p.exported_upto) x"
    _post(session, "returned", f"""SELECT i.id AS ref_id, i.program_code, i.enrolment_id, i.amount
                                   FROM payment_instruction i WHERE i.id IN ({unsent})""", p)
    stopped = session.execute(text(f"UPDATE payment_instruction SET status = 'stopped', status_on = :on "
                                   f"WHERE id IN ({unsent})"), p).rowcount or 0
    recall = session.execute(text(f"SELECT COUNT(*) FROM ({_dead_sql(where)} AND i.id <= p.exported_upto) x"),
                             p).scalar_one()
    return {"stopped": int(stopped), "to_recall": int(recall), "enrolments_ended": programs["ended"],
            "promoted": programs["promoted"]}


def payments_to_recall(session: Session, payroll_id: int | None = None) -> list[dict]:
    """Instructions sent to a channel whose beneficiary has since died (the channel is asked to recall)."""
    where = "AND i.payroll_id = :p" if payroll_id is not None else ""
    rows = session.execute(text(f"""SELECT i.id, i.entitlement_id, i.attempt, i.payroll_id, i.channel, i.amount,
            i.district_id FROM payment_instruction i WHERE i.id IN (SELECT x.id FROM ({_dead_sql(where)}
            AND i.id <= p.exported_upto) x) ORDER BY i.id"""), {"p": payroll_id})
    return [{"end_to_end_id": e2e(ent, att), "instruction_id": iid, "payroll_id": pid, "channel": ch,
             "amount": float(a), "district_id": d} for iid, ent, att, pid, ch, a, d in rows]


def retry_failed(session: Session, payroll_id: int) -> int:
    """A new instruction on the next channel for every entitlement whose last attempt failed or was
    reversed: the next channel of :data:`ALTERNATE` the recipient actually has (a failed bank payment
    goes to their mobile wallet only if the accounts feed reported one, else to a branchless agent).
    A retry of the same attempt is the same (entitlement, attempt) row, so a second retry
    is a no-op; the partial unique index on live instructions forbids two live ones."""
    p = {"p": payroll_id, "yes": True, "no": False}
    _lock(session, ":p", p)
    mark = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM payment_instruction")).scalar_one()
    alt = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in ALTERNATE.items())
    pull = ", ".join(f"'{c}'" for c in PULL)
    failed = "i.status IN ('failed', 'reversed') AND i.payroll_id = :p"
    session.execute(text(f"""INSERT INTO payment_instruction (payroll_id, entitlement_id, attempt,
            enrolment_id, program_code, district_id, channel, biometric, amount, status)
        SELECT x.payroll_id, x.entitlement_id, x.attempt + 1, x.enrolment_id, x.program_code, x.district_id,
               x.channel, CASE WHEN x.channel IN ({pull}) THEN :yes ELSE :no END, x.amount, 'pending'
        FROM (SELECT i.payroll_id, i.entitlement_id, i.attempt, i.enrolment_id, i.program_code, i.district_id,
                     CASE WHEN i.channel = 'bank' AND a.wallet IS NULL
                          THEN '{ALTERNATE["mobile_wallet"]}' ELSE CASE i.channel {alt} ELSE 'post' END END AS channel,
                     i.amount
              FROM payment_instruction i JOIN enrolment e ON e.id = i.enrolment_id
              LEFT JOIN ({best_accounts(f"SELECT e.recipient_id FROM payment_instruction i JOIN enrolment e ON e.id = i.enrolment_id WHERE {failed}")}) a
                ON a.individual_id = e.recipient_id
              WHERE {failed}
              AND NOT EXISTS (SELECT 1 FROM payment_instruction j WHERE j.entitlement_id = i.entitlement_id
                              AND j.attempt > i.attempt)
             ) x WHERE 1 = 1 ON CONFLICT DO NOTHING"""), p)
    _post(session, "retried", """SELECT i.id AS ref_id, i.program_code, i.enrolment_id, i.amount
                                 FROM payment_instruction i WHERE i.id > :mark AND i.payroll_id = :p""",
          {**p, "mark": mark})
    return int(session.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE id > :mark AND payroll_id = :p"),
                               {**p, "mark": mark}).scalar_one())


def return_unclaimed(session: Session, on: date | None = None, days: int = 90) -> int:
    """Instructions unclaimed for ``days`` are closed and their money goes back to the program's fund."""
    if not 1 <= days <= 36_500:
        raise PaymentError(f"days must be a number of days from 1 to 36,500, not {days}")
    on = on or date.today()
    p = {"cut": on - timedelta(days=days), "on": on}
    sel = "SELECT id FROM payment_instruction WHERE status = 'unclaimed' AND status_on <= :cut"
    _post(session, "returned", f"""SELECT i.id AS ref_id, i.program_code, i.enrolment_id, i.amount
                                   FROM payment_instruction i WHERE i.id IN ({sel})""", p)
    return int(session.execute(text(f"UPDATE payment_instruction SET status = 'returned', status_on = :on "
                                    f"WHERE id IN ({sel})"), p).rowcount or 0)


# ---------------------------------------------------------------- checks

def balances(session: Session, program_code: str | None = None, enrolment_id: int | None = None) -> dict[str, float]:
    """Each account's balance (debits minus credits), for a program or one beneficiary."""
    where, p = [], {"c": program_code, "e": enrolment_id}
    if program_code:
        where.append("program_code = :c")
    if enrolment_id is not None:
        where.append("enrolment_id = :e")
    w = ("WHERE " + " AND ".join(where)) if where else ""
    out: dict[str, float] = {}
    for account, amount in session.execute(text(f"""SELECT account, SUM(amount) FROM (
            SELECT debit AS account, amount FROM ledger_entry {w}
            UNION ALL SELECT credit AS account, -amount FROM ledger_entry {w}) x GROUP BY account ORDER BY account"""), p):
        out[account] = round(float(amount), 2)
    return out


def ledger_check(session: Session, program_code: str | None = None) -> dict:
    """Does the ledger balance? Every posting moves a positive amount between two different accounts,
    every beneficiary's accounts and the program's sum to zero, what was issued is accounted for
    (clearing + disbursed + payable = issued − returned), and the fund holds what was released and not
    issued (fund = released − issued + returned, the treasury = − released)."""
    where = "WHERE program_code = :c" if program_code else ""
    p = {"c": program_code}
    bad = session.execute(text(f"""SELECT COUNT(*) FROM ledger_entry {where}
        {'AND' if where else 'WHERE'} (amount <= 0 OR debit = credit)"""), p).scalar_one()
    accounts = balances(session, program_code)
    released, issued, returned = _fund_movements(session, program_code)
    held = sum(accounts.get(a, 0.0) for a in ("clearing", "disbursed", "payable"))
    total = sum(accounts.values())
    ok = (bad == 0 and abs(total) < 0.005 and abs(held - (issued - returned)) < 0.005
          and abs(accounts.get("fund", 0.0) - (released - issued + returned)) < 0.005
          and abs(accounts.get("treasury", 0.0) + released) < 0.005)
    return {"balanced": ok, "bad_postings": int(bad), "accounts": accounts, "released": released, "issued": issued,
            "returned": returned}


def exactly_once(session: Session, cycle_id: int) -> dict:
    """For a cycle: entitlements paid more than once (``double_paid``: two paid instructions, or more
    disbursed than owed), entitlements of the payroll with no instruction at all (``lost``), and those
    whose every attempt failed or was reversed (``awaiting_retry``: :func:`retry_failed` takes them)."""
    p = {"c": cycle_id}
    has_payroll = session.execute(text("SELECT COUNT(*) FROM payroll WHERE cycle_id = :c"), p).scalar_one()
    double = session.execute(text("""SELECT COUNT(*) FROM (SELECT t.id FROM entitlement t
        JOIN payment_instruction i ON i.entitlement_id = t.id WHERE t.cycle_id = :c AND i.status = 'paid'
        GROUP BY t.id HAVING COUNT(*) > 1) x"""), p).scalar_one()
    over = session.execute(text("""SELECT COUNT(*) FROM (SELECT t.id FROM entitlement t
        JOIN payment_instruction i ON i.entitlement_id = t.id
        JOIN ledger_entry l ON l.ref_id = i.id AND l.kind IN ('pd', 'rv')
        WHERE t.cycle_id = :c GROUP BY t.id, t.amount
        HAVING SUM(CASE WHEN l.kind = 'pd' THEN l.amount ELSE -l.amount END) > t.amount + 0.005) x"""),
                           p).scalar_one()
    lost = session.execute(text("""SELECT COUNT(*) FROM entitlement t WHERE t.cycle_id = :c AND NOT EXISTS (
        SELECT 1 FROM payment_instruction i WHERE i.entitlement_id = t.id)"""), p).scalar_one() if has_payroll else 0
    waiting = session.execute(text("""SELECT COUNT(*) FROM entitlement t WHERE t.cycle_id = :c
        AND EXISTS (SELECT 1 FROM payment_instruction i WHERE i.entitlement_id = t.id) AND NOT EXISTS (
        SELECT 1 FROM payment_instruction i WHERE i.entitlement_id = t.id
        AND i.status IN ('pending', 'paid', 'unclaimed', 'returned', 'stopped'))"""), p).scalar_one()
    return {"double_paid": int(double) + int(over), "lost": int(lost), "awaiting_retry": int(waiting)}


def payroll_summary(session: Session, payroll_id: int) -> dict:
    """A payroll whose lines add up: ``by_status`` counts each entitlement once, by the status of its
    latest attempt (``sent``: exported, not yet settled), so its counts and amounts sum to the
    payroll's instructions and total; ``attempts`` counts every instruction (a failed payment and its
    retry are two), by status and how many are retries; ``fund`` is the program's fund (:func:`fund`)."""
    payroll = session.get(Payroll, payroll_id)
    if payroll is None:
        raise PaymentError(f"no payroll {payroll_id}")
    p = {"p": payroll_id, "upto": payroll.exported_upto}
    st = "CASE WHEN i.status = 'pending' AND i.id <= :upto THEN 'sent' ELSE i.status END"
    latest = """NOT EXISTS (SELECT 1 FROM payment_instruction j WHERE j.entitlement_id = i.entitlement_id
                AND j.attempt > i.attempt)"""
    by, attempts, retries = {}, {}, 0
    for s_, last, retry, n, a in session.execute(text(f"""SELECT {st}, CASE WHEN {latest} THEN 1 ELSE 0 END,
            CASE WHEN i.attempt > 1 THEN 1 ELSE 0 END, COUNT(*), SUM(i.amount)
            FROM payment_instruction i WHERE i.payroll_id = :p GROUP BY 1, 2, 3"""), p):
        if last:
            cur = by.setdefault(s_, {"n": 0, "amount": 0.0})
            cur["n"] += int(n)
            cur["amount"] += float(a)
        cur = attempts.setdefault(s_, {"n": 0, "amount": 0.0})
        cur["n"] += int(n)
        cur["amount"] += float(a)
        retries += int(n) if retry else 0
    channels = {c: int(n) for c, n in session.execute(text(
        "SELECT channel, COUNT(*) FROM payment_instruction WHERE payroll_id = :p GROUP BY channel"), p)}
    return {"id": payroll.id, "cycle_id": payroll.cycle_id, "program": payroll.program_code, "status": payroll.status,
            "instructions": payroll.instructions, "total": payroll.total, "made_by": payroll.made_by,
            "approved_by": payroll.approved_by, "by_status": dict(sorted(by.items())),
            "attempts": {"n": sum(v["n"] for v in attempts.values()), "retries": retries,
                         "by_status": dict(sorted(attempts.items()))},
            "by_channel": channels, "fund": fund(session, payroll.program_code)}


def payrolls(session: Session, program_code: str | None = None, limit: int = 20) -> list[dict]:
    """The newest payrolls (of one program, or all), for the payments page."""
    stmt = select(Payroll)
    if program_code:
        stmt = stmt.where(Payroll.program_code == program_code)
    return [{"id": p.id, "cycle_id": p.cycle_id, "program": p.program_code, "status": p.status,
             "instructions": p.instructions, "total": p.total, "made_by": p.made_by, "approved_by": p.approved_by,
             "made_at": p.made_at} for p in session.scalars(stmt.order_by(Payroll.id.desc()).limit(limit))]


def bank_status_csv(session: Session, payroll_id: int, seed: int = 0, paid: float = 0.9, failed: float = 0.05,
                    unclaimed: float = 0.05, on: date | None = None) -> bytes:
    """What a bank would send back for the sent instructions of a payroll (for tests, demos and the
    benchmark): a deterministic mix of paid, failed and unclaimed, with fingerprint matches."""
    on = on or date.today()
    rows = session.execute(text("""SELECT entitlement_id, attempt, amount, id FROM payment_instruction
        WHERE payroll_id = :p AND status = 'pending' AND id <= (SELECT exported_upto FROM payroll WHERE id = :p)
        ORDER BY id"""), {"p": payroll_id})
    out = io.StringIO()
    out.write("end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\n")
    for part in rows.partitions(100_000):
        for ent, att, amount, iid in part:
            u = ((iid * 2654435761 + seed * 97) % 10_000) / 10_000
            st = "paid" if u < paid else "failed" if u < paid + failed else "unclaimed"
            out.write(f"E{ent}-{att},{st},{amount:.2f},{on.isoformat()},B{iid},1\n")
    return out.getvalue().encode()


def sent_instructions(session: Session, payroll_id: int | None = None, attempt: int | None = None,
                      status: str = "sent", limit: int | None = None) -> list[tuple[str, float]]:
    """(EndToEndId, amount) of instructions in a status ('sent' = exported and not yet settled)."""
    where = ["i.status = 'pending' AND i.id <= p.exported_upto" if status == "sent" else "i.status = :st"]
    if payroll_id is not None:
        where.append("i.payroll_id = :p")
    if attempt is not None:
        where.append("i.attempt = :a")
    sql = (f"SELECT i.entitlement_id, i.attempt, i.amount FROM payment_instruction i JOIN payroll p "
           f"ON p.id = i.payroll_id WHERE {' AND '.join(where)} ORDER BY i.id" + (f" LIMIT {int(limit)}" if limit else ""))
    return [(e2e(e, a), float(m)) for e, a, m in session.execute(text(sql), {"p": payroll_id, "a": attempt,
                                                                              "st": status})]


def status_pain002(rows: list[tuple[str, str, float]], on: date | None = None) -> bytes:
    """A pain.002.001.10 status report for (EndToEndId, status, amount) rows."""
    on = on or date.today()
    code = {"paid": "ACSC", "failed": "RJCT", "unclaimed": "PDNG", "reversed": "RJCT"}
    tx = "".join(f"<TxInfAndSts><StsId>S{k}</StsId><OrgnlEndToEndId>{e}</OrgnlEndToEndId><TxSts>{code[s]}</TxSts>"
                 + ("<StsRsnInf><Rsn><Prtry>REVERSED</Prtry></Rsn></StsRsnInf>" if s == "reversed" else
                    "<StsRsnInf><AddtlInf>BIOMETRIC OK</AddtlInf></StsRsnInf>")
                 + f"<AccptncDtTm>{on.isoformat()}T10:00:00</AccptncDtTm>"
                 f"<OrgnlTxRef><Amt><InstdAmt Ccy=\"PKR\">{a:.2f}</InstdAmt></Amt></OrgnlTxRef></TxInfAndSts>"
                 for k, (e, s, a) in enumerate(rows))
    return ('<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">'
            f"<CstmrPmtStsRpt><GrpHdr><MsgId>STS-{on.isoformat()}</MsgId><CreDtTm>{on.isoformat()}T10:00:00</CreDtTm>"
            f"</GrpHdr><OrgnlPmtInfAndSts>{tx}</OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>").encode()


def status_camt054(rows: list[tuple[str, str, float]], on: date | None = None) -> bytes:
    """A camt.054.001.08 debit notification for (EndToEndId, status, amount) rows."""
    on = on or date.today()
    entries = "".join(
        f"<Ntry><Amt Ccy=\"PKR\">{a:.2f}</Amt><CdtDbtInd>DBIT</CdtDbtInd>"
        f"<RvslInd>{'true' if s == 'reversed' else 'false'}</RvslInd><Sts><Cd>BOOK</Cd></Sts>"
        f"<BookgDt><Dt>{on.isoformat()}</Dt></BookgDt><AcctSvcrRef>C{k}</AcctSvcrRef>"
        f"<NtryDtls><TxDtls><Refs><EndToEndId>{e}</EndToEndId></Refs></TxDtls></NtryDtls>"
        f"<AddtlNtryInf>{s.upper()} BIOMETRIC</AddtlNtryInf></Ntry>"
        for k, (e, s, a) in enumerate(rows))
    return ('<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">'
            f"<BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>NTF-{on.isoformat()}</MsgId></GrpHdr><Ntfctn>"
            f"<Id>N1</Id>{entries}</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>").encode()


__all__ = ["PaymentError", "PaymentConflict", "release_funds", "fund", "generate", "approve",
           "export", "parse_status", "reconcile", "retry_failed",
           "return_unclaimed", "ledger_check", "balances", "exactly_once", "e2e", "sent_instructions", "payroll_summary", "bank_status_csv",
           "status_pain002", "status_camt054", "ALTERNATE"]

"""Payroll, files, reconciliation, retries, the ledger and pickup slots: exactly once on both backends."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from datetime import date

import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.payments import payroll as pr, pickup
from isps.programs import cycles, enrolment as en
from isps.targeting.eligibility import rules

ON = date(2026, 6, 1)


def balanced(s) -> None:
    check = pr.ledger_check(s)
    assert check["balanced"], check


def approved_kafaalat_cycle(engine) -> int:
    """Enrol bisp_kafaalat's eligible households and approve their first cycle (nothing released
    into the program's fund yet); the cycle's id."""
    with transaction(engine) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=ON)
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", ON)
        cycle = cycles.open_cycle(s, "bisp_kafaalat", date(2026, 7, 1), "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        return cycle.id


def exported_payroll(s, cycle_id: int, folder):
    """The cycle's payroll, made by 'maker', approved by 'checker' and exported to ``folder``."""
    p = pr.generate(s, cycle_id, "maker")
    pr.approve(s, p.id, "checker")
    pr.export(s, p.id, folder)
    return p


@pytest.fixture
def unfunded_cycle(province):
    """An approved cycle of bisp_kafaalat; nothing released into the program's fund yet."""
    return province, approved_kafaalat_cycle(province)


@pytest.fixture
def approved_cycle(unfunded_cycle):
    """An approved cycle whose program has Rs 100 million released into its fund."""
    with transaction(unfunded_cycle[0]) as s:
        pr.release_funds(s, "bisp_kafaalat", 100_000_000, "RO-2026-07", "treasury")
    return unfunded_cycle


def test_payroll_exactly_once_end_to_end(approved_cycle, tmp_path):
    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        with pytest.raises(pr.PaymentError):
            pr.generate(s, 10_000, "maker")
        p = pr.generate(s, cycle_id, "maker")
        n = p.instructions
        assert n > 100 and p.total == 8500 * n
        balanced(s)
    with transaction(engine) as s:  # generating twice: the same payroll, nothing added
        p2 = pr.generate(s, cycle_id, "maker")
        assert p2.id == p.id and s.execute(text("SELECT COUNT(*) FROM payment_instruction")).scalar_one() == n
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'snd'")).scalar_one() == n  # one each
        with pytest.raises(pr.PaymentError):
            pr.export(s, p.id, tmp_path)  # not approved yet
        with pytest.raises(pr.PaymentError):
            pr.approve(s, p.id, "maker")  # maker-checker
        pr.approve(s, p.id, "checker")
        with pytest.raises(pr.PaymentError):
            pr.approve(s, p.id, "another")
        out = pr.export(s, p.id, tmp_path, on=date(2026, 7, 5))
        assert out["instructions"] == n
        balanced(s)
    doc = ET.parse(out["files"]["pain.001"]).getroot()
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
    assert doc.find("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", ns).text == str(n)
    assert len(doc.findall(".//p:CdtTrfTxInf", ns)) == n
    assert float(doc.find("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", ns).text) == 8500 * n
    assert open(out["files"]["csv"]).read().count("\n") == n + 1

    with transaction(engine) as s:
        status = pr.bank_status_csv(s, p.id, paid=0.8, failed=0.1, unclaimed=0.1, on=date(2026, 7, 10))
        first = pr.reconcile(s, status, "status-1.csv", "recon", on=date(2026, 7, 10))
        assert first["applied"] == n and first["rejected"] == 0
        balanced(s)
    with transaction(engine) as s:  # the same file again is refused, naming the import that applied it
        with pytest.raises(pr.PaymentConflict, match=f"already imported as import {first['import_id']} .* by recon"):
            pr.reconcile(s, status, "status-1-again.csv", "recon")
    with transaction(engine) as s:  # the same lines in another file: every line a duplicate, nothing moves
        again = pr.reconcile(s, status.replace(b"\n", b"\r\n"), "status-1-again.csv", "recon")
        assert again["applied"] == 0 and again["duplicates"] == n
        balanced(s)
        state = pr.exactly_once(s, cycle_id)
        assert state["double_paid"] == 0 and state["lost"] == 0 and state["awaiting_retry"] > 0
        failed = dict(s.execute(text("SELECT entitlement_id, channel FROM payment_instruction WHERE status = 'failed'")).all())
        retried = pr.retry_failed(s, p.id)
        assert retried == len(failed) and pr.retry_failed(s, p.id) == 0
        for eid, channel in s.execute(text("SELECT entitlement_id, channel FROM payment_instruction WHERE attempt = 2")):
            assert channel == pr.ALTERNATE[failed[eid]]  # another channel
        balanced(s)
        assert pr.exactly_once(s, cycle_id)["awaiting_retry"] == 0
        second = pr.export(s, p.id, tmp_path)
        assert second["instructions"] == retried
        # pain.002 for the retries: all paid
        rows = [(e, "paid", a) for e, a in pr.sent_instructions(s, p.id, attempt=2)]
        assert len(rows) == retried
        assert pr.reconcile(s, pr.status_pain002(rows), "sts.xml", "recon")["applied"] == retried
        # a paid one cannot be paid again, under another bank reference
        dup = [(rows[0][0], "paid", rows[0][2])]
        assert pr.reconcile(s, pr.status_camt054(dup), "camt-dup.xml", "recon")["rejected"] == 1
        # a reversal (camt.054) puts the money back as owed, and a retry pays it once more
        rev = pr.reconcile(s, pr.status_camt054([(rows[0][0], "reversed", rows[0][2])]), "camt.xml", "recon")
        assert rev["applied"] == 1
        assert pr.retry_failed(s, p.id) == 1
        balanced(s)
        # unclaimed money goes back to the fund after 90 days
        unclaimed = s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE status = 'unclaimed'")).scalar_one()
        assert pr.return_unclaimed(s, date(2026, 8, 1), 90) == 0
        assert pr.return_unclaimed(s, date(2026, 10, 9), 90) == unclaimed > 0
        balanced(s)
        state = pr.exactly_once(s, cycle_id)
        assert state == {"double_paid": 0, "lost": 0, "awaiting_retry": 0}
        acc = pr.ledger_check(s)["accounts"]
        paid = s.execute(text("SELECT COALESCE(SUM(amount), 0) FROM payment_instruction WHERE status = 'paid'")).scalar_one()
        assert acc["disbursed"] == paid
        # what is owed, in flight, paid and returned adds up to what was released
        assert acc["payable"] + acc["clearing"] + acc["disbursed"] + acc["fund"] == pytest.approx(100_000_000)
        assert acc["treasury"] == -100_000_000


def test_pickup_schedule_never_exceeds_outlet_capacity(approved_cycle):
    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        p = pr.generate(s, cycle_id, "maker")
        district = s.execute(text("""SELECT district_id FROM payment_instruction WHERE channel IN ('agent', 'cash_outlet')
            GROUP BY district_id ORDER BY COUNT(*) DESC LIMIT 1""")).scalar_one()
        people = s.execute(text("""SELECT COUNT(*) FROM payment_instruction WHERE district_id = :d
            AND channel IN ('agent', 'cash_outlet')"""), {"d": district}).scalar_one()
        assert pickup.seed_outlets(s, district, per_tehsil=1, capacity=2) > 0
        # a short horizon forces overflow to other tehsils and then to later days
        out = pickup.schedule(s, p.id, district, date(2026, 7, 6), slots_per_day=2, days=1)
        assert out["scheduled"] == people
        occ = pickup.occupancy(s, district)
        assert occ and all(o["people"] <= o["capacity"] for o in occ)
        assert sum(o["people"] for o in occ) == people
        assert pickup.schedule(s, p.id, district, date(2026, 7, 6))["scheduled"] == 0  # idempotent
        iid = s.execute(text("SELECT instruction_id FROM pickup_slot LIMIT 1")).scalar_one()
        sms = pickup.slot_of(s, iid)["sms"]
        assert "Rs 8,500" in sms and "CNIC" in sms and "between" in sms


@pytest.mark.parametrize("second_first_day", [date(2026, 7, 6), date(2026, 7, 7), date(2026, 7, 8)])
def test_a_second_payroll_gets_the_free_seats_of_the_district(approved_cycle, second_first_day):
    """Another payroll in the same district (the next quarter's, scheduled on an earlier, the same or a
    later first day) fills only what the first left free: no slot over capacity, no clash of seats."""
    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        first = pr.generate(s, cycle_id, "maker")
        q4 = cycles.open_cycle(s, "bisp_kafaalat", date(2026, 10, 1), "maker")
        cycles.generate_entitlements(s, q4.id)
        cycles.approve_cycle(s, q4.id, "checker")
        second = pr.generate(s, q4.id, "maker")
        district = s.execute(text("""SELECT district_id FROM payment_instruction WHERE channel IN ('agent', 'cash_outlet')
            GROUP BY district_id ORDER BY COUNT(*) DESC LIMIT 1""")).scalar_one()
        per_payroll = s.execute(text("""SELECT COUNT(*) FROM payment_instruction WHERE district_id = :d
            AND payroll_id = :p AND channel IN ('agent', 'cash_outlet')"""), {"d": district, "p": first.id}).scalar_one()
        assert per_payroll > 4
        pickup.seed_outlets(s, district, per_tehsil=1, capacity=2)
        a = pickup.schedule(s, first.id, district, date(2026, 7, 7), slots_per_day=2, days=3)
        b = pickup.schedule(s, second.id, district, second_first_day, slots_per_day=2, days=3)
        assert a["scheduled"] == b["scheduled"] == per_payroll
        occ = pickup.occupancy(s, district)
        assert all(o["people"] <= o["capacity"] for o in occ), occ
        assert sum(o["people"] for o in occ) == 2 * per_payroll
        over = s.execute(text("""SELECT COUNT(*) FROM pickup_slot s JOIN cash_outlet o ON o.id = s.outlet_id
            WHERE s.seat < 1 OR s.seat > o.capacity_per_slot""")).scalar_one()
        assert over == 0
        # the second payroll's people take the free seats first: a slot it uses before the first
        # payroll's last one is one the first payroll left room in
        span = s.execute(text("""SELECT MIN(s.slot_start), MAX(s.slot_start) FROM pickup_slot s
            JOIN payment_instruction i ON i.id = s.instruction_id WHERE i.payroll_id = :p"""), {"p": second.id}).one()
        assert str(span[0]) >= str(second_first_day)
        if second_first_day < date(2026, 7, 7):
            assert str(span[0]).startswith(str(second_first_day))  # the empty day is used


def test_two_approvers_at_once_one_wins(approved_cycle):
    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        pid = pr.generate(s, cycle_id, "maker").id
    results: list[str] = []
    barrier = threading.Barrier(2)

    def approve(who: str) -> None:
        barrier.wait()
        try:
            with transaction(engine) as s:
                pr.approve(s, pid, who)
            results.append("ok")
        except Exception as exc:  # noqa: BLE001 - the loser is refused or finds the database busy
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=approve, args=(w,)) for w in ("checker_a", "checker_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1
    with transaction(engine) as s:
        assert pr.payroll_summary(s, pid)["approved_by"] in ("checker_a", "checker_b")


def test_pull_payment_needs_a_fingerprint(approved_cycle, tmp_path):
    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        p = exported_payroll(s, cycle_id, tmp_path)
        ent, att, amount = s.execute(text("SELECT entitlement_id, attempt, amount FROM payment_instruction "
                                          "WHERE biometric = :y LIMIT 1"), {"y": True}).one()
        e2e = pr.e2e(ent, att)
        csv = f"end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\n{e2e},paid,{amount},2026-07-10,X1,0\n"
        assert pr.reconcile(s, csv.encode(), "nofinger.csv", "recon")["rejected"] == 1
        csv = f"end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\n{e2e},paid,{amount + 1},2026-07-10,X2,1\n"
        assert pr.reconcile(s, csv.encode(), "wrongamount.csv", "recon")["rejected"] == 1
        csv = f"end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\n{e2e},paid,{amount},2026-07-10,X3,1\n"
        assert pr.reconcile(s, csv.encode(), "ok.csv", "recon")["applied"] == 1
        balanced(s)


def test_payroll_generated_twice_at_once_and_reconciled_twice_at_once(approved_cycle, tmp_path):
    engine, cycle_id = approved_cycle
    errors: list[str] = []
    barrier = threading.Barrier(2)

    def generate(who: str) -> None:
        barrier.wait()
        try:
            with transaction(engine) as s:
                pr.generate(s, cycle_id, who)
        except Exception as exc:  # noqa: BLE001 - SQLite may refuse the second writer; PostgreSQL waits
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=generate, args=(w,)) for w in ("maker_a", "maker_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with transaction(engine) as s:
        n = s.execute(text("SELECT COUNT(*) FROM entitlement WHERE cycle_id = :c"), {"c": cycle_id}).scalar_one()
        assert s.execute(text("SELECT COUNT(*) FROM payroll")).scalar_one() == 1
        assert s.execute(text("SELECT COUNT(*) FROM payment_instruction")).scalar_one() == n
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'snd'")).scalar_one() == n
        pid = s.execute(text("SELECT id, made_by FROM payroll")).one()
        pr.approve(s, pid[0], "checker")
        pr.export(s, pid[0], tmp_path)
        status = pr.bank_status_csv(s, pid[0], paid=1.0, failed=0, unclaimed=0)
    barrier = threading.Barrier(2)

    def reconcile(name: str) -> None:
        barrier.wait()
        try:
            with transaction(engine) as s:
                pr.reconcile(s, status, name, "recon")
        except Exception as exc:  # noqa: BLE001
            errors.append(type(exc).__name__)

    threads = [threading.Thread(target=reconcile, args=(f"copy-{k}.csv",)) for k in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with transaction(engine) as s:
        if s.execute(text("SELECT COUNT(*) FROM payment_status_import")).scalar_one() == 0:
            pr.reconcile(s, status, "again.csv", "recon")  # both refused (SQLite's one writer): import it now
        else:  # importing the same file again is refused and changes nothing
            with pytest.raises(pr.PaymentConflict, match="already imported"):
                pr.reconcile(s, status, "again.csv", "recon")
    with transaction(engine) as s:
        assert s.execute(text("SELECT COUNT(*) FROM payment_status_import")).scalar_one() == 1
        state = pr.exactly_once(s, cycle_id)
        assert state == {"double_paid": 0, "lost": 0, "awaiting_retry": 0}
        assert s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE status = 'paid'")).scalar_one() == n
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'pd'")).scalar_one() == n
        balanced(s)


HEAD = "end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\n"


def _all_paid(s, ref: str) -> bytes:
    """A status file marking every instruction of every payroll paid, sent or not."""
    rows = s.execute(text("SELECT entitlement_id, attempt, amount FROM payment_instruction ORDER BY id")).all()
    return (HEAD + "".join(f"E{e}-{a},paid,{m:.2f},2026-07-10,{ref}{k},1\n"
                           for k, (e, a, m) in enumerate(rows))).encode()


def _untouched(s) -> None:
    assert s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE status <> 'pending'")).scalar_one() == 0
    assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind NOT IN ('rel', 'snd')")).scalar_one() == 0
    balanced(s)


def test_a_status_file_cannot_pay_a_payroll_that_was_never_sent(approved_cycle, tmp_path):
    """The review's finding: a status file marked a draft payroll's instructions paid, and an
    approved one's never exported; the export then left those people out of the bank file."""
    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        p = pr.generate(s, cycle_id, "maker")
        n = p.instructions
        out = pr.reconcile(s, _all_paid(s, "D"), "draft.csv", "maker")  # the payroll's own maker
        assert out["applied"] == 0 and out["rejected"] == n
        first = out["rejected_lines"][0]
        assert first["line"] == 1 and first["end_to_end_id"].startswith("E")
        assert first["reason"] == f"instruction {first['end_to_end_id']} was never sent: payroll {p.id} is still draft"
        _untouched(s)
        assert pr.payroll_summary(s, p.id)["status"] == "draft"
    with transaction(engine) as s:
        pr.approve(s, p.id, "checker")
        out = pr.reconcile(s, _all_paid(s, "A"), "approved.csv", "maker")
        assert out["applied"] == 0 and out["rejected"] == n
        assert {x["reason"].split(": ", 1)[1] for x in out["rejected_lines"]} == {
            f"payroll {p.id} is approved but not exported"}
        _untouched(s)
        reasons = s.execute(text("SELECT COUNT(*) FROM payment_status_line WHERE outcome = 'rejected' "
                                 "AND reason LIKE '%was never sent%'")).scalar_one()
        assert reasons == 2 * n  # both files kept, with the reason, for review
    with transaction(engine) as s:
        assert pr.export(s, p.id, tmp_path)["instructions"] == n  # everyone is in the bank file
        again = pr.reconcile(s, _all_paid(s, "D") + b"\n", "draft-again.csv", "bank")  # now sent: it applies
        assert again["applied"] == n and again["rejected"] == 0
        assert s.execute(text("SELECT COUNT(*) FROM payment_status_line WHERE outcome = 'rejected'")).scalar_one() == n
        balanced(s)


def test_status_lines_are_refused_row_by_row_with_a_reason(approved_cycle, tmp_path):
    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        p = exported_payroll(s, cycle_id, tmp_path)
        (e1, m1), (e2, m2), (e3, m3), (e4, m4) = pr.sent_instructions(s, p.id, limit=4)
        pull = pr.e2e(*s.execute(text("SELECT entitlement_id, attempt FROM payment_instruction "
                                      "WHERE biometric = :y LIMIT 1"), {"y": True}).one())
        body = (HEAD + f"{e1},paid,,2026-07-10,R1,1\n"               # no amount: never skips the check
                f"{e2},paid,8000.00,2026-07-10,R2,1\n"                # another amount
                "E999999-1,paid,8500.00,2026-07-10,R3,1\n"           # no such instruction
                f"{e3},paid,{m3:.2f},notadate!,R4,1\n"               # not a date
                f"{e4},paid,{m4:.2f},2026-07-10,R5,1\n"              # applies
                f"{e4},paid,{m4:.2f},2026-07-10,R6,1\n"              # the same payment again
                f"{pull},paid,8500.00,2026-07-10,R7,0\n"             # a pull channel without a fingerprint
                f"{e3},sleeping,{m3:.2f},2026-07-10,R8,1\n").encode()
        out = pr.reconcile(s, body, "mixed.csv", "recon")
        assert out["applied"] == 1 and out["rejected"] == 7
        assert [(x["line"], x["end_to_end_id"], x["reason"]) for x in out["rejected_lines"]] == [
            (1, e1, "amount missing"), (2, e2, f"amount 8000.00 differs from the {m2:.2f} sent"),
            (3, "E999999-1", "unknown EndToEndId"), (4, e3, "status_on 'notadate!' is not a date (YYYY-MM-DD)"),
            (6, e4, "paid twice"), (7, pull, "pull channel paid without fingerprint match"),
            (8, e3, "status 'sleeping' is not one of paid, failed, unclaimed, reversed")]
        kept = dict(s.execute(text("SELECT idem_key, reason FROM payment_status_line WHERE status_on IS NULL")).all())
        assert kept == {f"{e3}:paid:R4": "status_on 'notadate!' is not a date (YYYY-MM-DD)"}
        # days that look like dates but are none never reach a DATE column either (PostgreSQL would refuse)
        bad = HEAD + "".join(f"{e3},paid,{m3:.2f},{d},Q{k},1\n" for k, d in enumerate(
            ("2026-02-30", "0000-01-01", "2026-13-01", "99999-01-01", "2026-07-10junk")))
        out = pr.reconcile(s, bad.encode(), "days.csv", "recon")
        assert out["rejected"] == 5 and all("is not a date" in x["reason"] for x in out["rejected_lines"])
        assert s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE status = 'paid'")).scalar_one() == 1
        balanced(s)


def test_a_program_pays_only_what_was_released_into_its_fund(unfunded_cycle):
    engine, cycle_id = unfunded_cycle
    with transaction(engine) as s:
        p = pr.generate(s, cycle_id, "maker")
        with pytest.raises(pr.PaymentError, match=rf"has Rs 0.00 available .* payroll {p.id} needs Rs {p.total:,.2f}"):
            pr.approve(s, p.id, "checker")
        with pytest.raises(pr.PaymentError, match="no program"):
            pr.release_funds(s, "no_such_program", 10, "R", "treasury")
        with pytest.raises(pr.PaymentError, match="positive amount"):
            pr.release_funds(s, "bisp_kafaalat", -5, "R", "treasury")
        pr.release_funds(s, "bisp_kafaalat", p.total - 8500, "RO-1", "treasury")
        with pytest.raises(pr.PaymentError, match=rf"has Rs {p.total - 8500:,.2f} available"):
            pr.approve(s, p.id, "checker")
        again = pr.release_funds(s, "bisp_kafaalat", p.total - 8500, "RO-1", "treasury")  # the same order: once
        assert again["fund"]["released"] == p.total - 8500
        assert pr.release_funds(s, "bisp_kafaalat", 8500, "RO-2", "treasury")["fund"] == {
            "released": p.total, "issued": p.total, "returned": 0.0, "available": 0.0, "shortfall": 0.0}
        assert pr.approve(s, p.id, "checker").status == "approved"
        check = pr.ledger_check(s, "bisp_kafaalat")
        assert check["balanced"] and check["accounts"]["fund"] == 0 and check["accounts"]["treasury"] == -p.total
        assert check["released"] == p.total


def test_a_payroll_adds_up_by_entitlement_after_a_failure_and_its_retry(approved_cycle, tmp_path):
    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        p = exported_payroll(s, cycle_id, tmp_path)
        pr.reconcile(s, pr.bank_status_csv(s, p.id, paid=0.8, failed=0.2, unclaimed=0), "s.csv", "recon")
        retried = pr.retry_failed(s, p.id)
        assert retried > 0
        summary = pr.payroll_summary(s, p.id)
        by = summary["by_status"]
        assert sum(v["n"] for v in by.values()) == summary["instructions"] == p.instructions
        assert sum(v["amount"] for v in by.values()) == pytest.approx(summary["total"])
        assert by["paid"]["n"] + by["pending"]["n"] == p.instructions and "failed" not in by
        assert summary["attempts"]["n"] == p.instructions + retried and summary["attempts"]["retries"] == retried
        assert summary["attempts"]["by_status"]["failed"]["n"] == retried
        assert summary["fund"] == {"released": 100_000_000, "issued": p.total, "returned": 0.0,
                                   "available": 100_000_000 - p.total, "shortfall": 0.0}


def test_payment_files_are_readable_by_their_owner_only(approved_cycle, tmp_path):
    import os
    import stat

    engine, cycle_id = approved_cycle
    old = os.umask(0o022)  # the usual umask: files would be world-readable
    try:
        with transaction(engine) as s:
            p = pr.generate(s, cycle_id, "maker")
            pr.approve(s, p.id, "checker")
            out = pr.export(s, p.id, tmp_path / "payments")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "payments").st_mode) == 0o700
    for path in out["files"].values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_the_bank_csv_never_carries_a_live_formula(approved_cycle, tmp_path):
    """A recipient's name that a spreadsheet would run as a formula (held from before imports refused
    such names) reaches the bank's CSV quoted, and the XML file as the plain text it is."""
    import csv

    engine, cycle_id = approved_cycle
    with transaction(engine) as s:
        p = pr.generate(s, cycle_id, "maker")
        recipient = s.execute(text("""SELECT e.recipient_id FROM payment_instruction i JOIN enrolment e
            ON e.id = i.enrolment_id WHERE i.payroll_id = :p ORDER BY i.id LIMIT 1"""), {"p": p.id}).scalar_one()
        s.execute(text("UPDATE individual SET full_name = :n WHERE id = :i"),
                  {"n": '=HYPERLINK("http://evil.example","x")', "i": recipient})
        pr.approve(s, p.id, "checker")
        out = pr.export(s, p.id, tmp_path)
    with open(out["files"]["csv"], newline="") as f:
        names = [row["name"] for row in csv.DictReader(f)]
    assert "'=HYPERLINK(http://evil.example,x)" in names
    assert not any(n[:1] in "=+-@" for n in names if n)
    with open(out["files"]["pain.001"]) as f:
        assert '<Nm>=HYPERLINK("http://evil.example","x")</Nm>' in f.read()

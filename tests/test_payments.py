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


@pytest.fixture
def approved_cycle(province):
    with transaction(province) as s:
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run = rules.run(s, row, "test", on=ON)
        en.enrol_from_run(s, "bisp_kafaalat", run.id, "test", ON)
        cycle = cycles.open_cycle(s, "bisp_kafaalat", date(2026, 7, 1), "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        return province, cycle.id


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
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry")).scalar_one() == n  # one posting each
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
    with transaction(engine) as s:  # the same file again: every line a duplicate, nothing moves
        again = pr.reconcile(s, status, "status-1-again.csv", "recon")
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
        # what is owed, in flight, paid and returned adds up to the payroll
        assert acc["payable"] + acc["clearing"] + acc["disbursed"] + acc["fund"] == pytest.approx(0)


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
        p = pr.generate(s, cycle_id, "maker")
        pr.approve(s, p.id, "checker")
        pr.export(s, p.id, tmp_path)
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
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry")).scalar_one() == n
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
        if errors:  # whoever was refused imports again: harmless
            pr.reconcile(s, status, "again.csv", "recon")
        state = pr.exactly_once(s, cycle_id)
        assert state == {"double_paid": 0, "lost": 0, "awaiting_retry": 0}
        assert s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE status = 'paid'")).scalar_one() == n
        assert s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'pd'")).scalar_one() == n
        balanced(s)

"""A death reported by NADRA stops that person's payments: the unsent ones go back to the fund, the
household benefits pass to another adult, future cycles leave them out, and the ledger balances.
Also: a status file the bank mangled gets a clear refusal, not a crash."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select, text

from isps.db import transaction
from isps.payments import payroll as pr
from isps.programs import cycles, enrolment as en
from isps.registry.cnic import formatted
from isps.registry.models import Individual
from isps.targeting.eligibility import rules
from tests.conftest import token_for

ON = date(2026, 6, 1)
PROGRAM = "pbm_financial_assistance"  # a member program: the person is the beneficiary


def _payroll(engine, code: str, starts_on: date) -> tuple[int, int]:
    """Enrol a program's eligible people, open and approve a cycle, generate and approve its payroll."""
    with transaction(engine) as s:
        row, _ = rules.active_rule(s, code)
        run = rules.run(s, row, "test", on=ON)
        en.enrol_from_run(s, code, run.id, "test", ON)
        cycle = cycles.open_cycle(s, code, starts_on, "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        payroll = pr.generate(s, cycle.id, "maker")
        pr.release_funds(s, code, payroll.total, f"RO-{cycle.id}", "treasury")
        pr.approve(s, payroll.id, "checker")
        return cycle.id, payroll.id


def _enrolled_with_cnic(s, code: str, k: int) -> list[tuple[int, int, str]]:
    """(enrolment id, individual id, CNIC) of recipients enrolled in a program who hold a CNIC (for a
    member program, people who are their own recipient)."""
    return [tuple(r) for r in s.execute(text(
        """SELECT e.id, i.id, i.cnic FROM enrolment e JOIN individual i ON i.id = e.recipient_id
        WHERE e.program_code = :c AND e.status = 'enrolled' AND i.id_document = 'cnic'
        AND (e.individual_id = 0 OR e.individual_id = e.recipient_id)
        AND (SELECT COUNT(*) FROM individual j WHERE j.cnic = i.cnic) = 1 ORDER BY e.id LIMIT :k"""),
        {"c": code, "k": k})]


def _report_deaths(client, people, reference: str) -> None:
    importer = token_for(client, "admin")
    records = [{"record_ref": f"D{pid}", "event": "death", "event_date": "2026-06-20", "cnic": formatted(cnic)}
               for _, pid, cnic in people]
    r = client.post("/api/v1/feeds/nadra/deliveries", json={"reference": reference, "records": records},
                    headers=importer)
    assert r.status_code == 200 and r.json()["accepted"] == len(people), r.text


def test_a_death_reported_after_the_payroll_stops_the_unsent_payment(client, province, tmp_path):
    cycle_id, payroll_id = _payroll(province, PROGRAM, date(2026, 7, 1))
    with transaction(province) as s:
        dead = _enrolled_with_cnic(s, PROGRAM, 2)
        instructions = s.execute(text("SELECT COUNT(*), SUM(amount) FROM payment_instruction WHERE payroll_id = :p"),
                                 {"p": payroll_id}).one()
    assert len(dead) == 2
    _report_deaths(client, dead, "NADRA-2026-06-20")  # the API acts on the events after the delivery
    with transaction(province) as s:
        assert {en.get(s, eid)["status"] for eid, _, _ in dead} == {"deceased"}
        out = pr.export(s, payroll_id, tmp_path)
        stopped = s.execute(text("""SELECT i.enrolment_id, i.status FROM payment_instruction i
            WHERE i.payroll_id = :p AND i.status = 'stopped'"""), {"p": payroll_id}).all()
        assert sorted(e for e, _ in stopped) == sorted(eid for eid, _, _ in dead)
        assert out["instructions"] == instructions[0] - 2
        check = pr.ledger_check(s, PROGRAM)
        assert check["balanced"], check
        assert check["returned"] == sum(a for (a,) in s.execute(text(
            "SELECT amount FROM payment_instruction WHERE status = 'stopped'")))
        once = pr.exactly_once(s, cycle_id)
        assert once == {"double_paid": 0, "lost": 0, "awaiting_retry": 0}
        summary = pr.payroll_summary(s, payroll_id)
        assert summary["by_status"]["stopped"]["n"] == 2
    csv_text = open(out["files"]["csv"]).read()
    for _, _, cnic in dead:
        assert cnic not in csv_text  # no instruction left for them
    # the bank cannot pay a stopped instruction, even if it says so
    with transaction(province) as s:
        e2e = s.execute(text("""SELECT entitlement_id, attempt, amount FROM payment_instruction
            WHERE status = 'stopped' ORDER BY id LIMIT 1""")).one()
        line = f"end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\nE{e2e[0]}-{e2e[1]},paid,{e2e[2]},2026-07-10,X1,1\n"
        assert pr.reconcile(s, line.encode(), "late.csv", "recon")["rejected"] == 1
        assert pr.ledger_check(s, PROGRAM)["balanced"]
    # the next cycle leaves them out
    with transaction(province) as s:
        nxt = cycles.open_cycle(s, PROGRAM, date(2026, 10, 1), "maker")
        cycles.generate_entitlements(s, nxt.id)
        ids = {e["enrolment_id"] for e in cycles.entitlements_of(s, nxt.id, limit=100_000)}
    assert not ids & {eid for eid, _, _ in dead}


def test_a_death_after_the_file_was_sent_is_listed_for_recall(province, tmp_path):
    _, payroll_id = _payroll(province, PROGRAM, date(2026, 7, 1))
    with transaction(province) as s:
        pr.export(s, payroll_id, tmp_path)
        (eid, pid, cnic), = _enrolled_with_cnic(s, PROGRAM, 1)
    from isps.interop import feeds
    from isps.services.events import drain

    feeds.apply_delivery(province, "nadra", [{"record_ref": "R1", "event": "death", "event_date": "2026-07-02",
                                              "cnic": formatted(cnic)}], reference="NADRA-late", actor="nadra")
    out = drain(province)
    assert (out["stopped"], out["to_recall"], out["enrolments_ended"]) == (0, 1, 1)
    with transaction(province) as s:
        recall = pr.payments_to_recall(s, payroll_id)
        assert [r["instruction_id"] for r in recall] == list(s.scalars(text(
            "SELECT id FROM payment_instruction WHERE enrolment_id = :e"), {"e": eid}))
        assert pr.ledger_check(s, PROGRAM)["balanced"]
    assert drain(province)["stopped"] == 0  # running it again changes nothing
    # the finance officer sees it on the payroll's page
    from fastapi.testclient import TestClient

    from isps.api.app import create_app
    from tests.test_web import sign_in

    with TestClient(create_app(province, secret="test-secret")) as web:
        sign_in(web, "manager")
        page = web.get(f"/payments/payrolls/{payroll_id}").text
    assert 'id="to-recall"' in page and recall[0]["end_to_end_id"] in page


def test_a_household_benefit_passes_to_another_adult_when_the_recipient_dies(province, tmp_path):
    _, payroll_id = _payroll(province, "bisp_kafaalat", date(2026, 7, 1))
    with transaction(province) as s:
        eid, pid, cnic = next(r for r in _enrolled_with_cnic(s, "bisp_kafaalat", 50)
                              if s.scalar(text("""SELECT COUNT(*) FROM individual w JOIN individual d
                                  ON d.household_id = w.household_id WHERE d.id = :d AND w.id <> d.id
                                  AND w.cnic IS NOT NULL AND w.date_of_birth < '2000-01-01'"""), {"d": r[1]}))
    from isps.interop import feeds
    from isps.services.events import drain

    feeds.apply_delivery(province, "nadra", [{"record_ref": "K1", "event": "death", "event_date": "2026-06-25",
                                              "cnic": formatted(cnic)}], reference="NADRA-k", actor="nadra")
    assert drain(province)["stopped"] == 0
    with transaction(province) as s:
        after = en.get(s, eid)
        heir = s.get(Individual, after["recipient_id"])
        assert after["status"] == "enrolled" and heir.id != pid and heir.date_of_death is None
        out = pr.export(s, payroll_id, tmp_path)
    csv_text = open(out["files"]["csv"]).read()
    assert heir.cnic in csv_text and cnic not in csv_text


def test_a_mangled_status_file_is_refused_with_a_reason(client, province):
    manager = token_for(client, "manager")
    for body, words in ((b"<notxml", "not well-formed XML"), (b"", "empty"),
                        (b"foo,bar\n1,2\n", "end_to_end_id and status")):
        r = client.post("/api/v1/payments/status-files?name=bad", content=body, headers=manager)
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    with transaction(province) as s:
        assert s.execute(text("SELECT COUNT(*) FROM payment_status_import")).scalar_one() == 0


def _guardian_collected(s, k: int) -> list[tuple[int, int, int, int]]:
    """(enrolment id, beneficiary, recipient, household) of member benefits a guardian collects for
    a child, the guardian holding a CNIC of their own."""
    return [tuple(r) for r in s.execute(text(
        """SELECT e.id, e.individual_id, e.recipient_id, e.household_id FROM enrolment e
        JOIN individual b ON b.id = e.individual_id JOIN individual g ON g.id = e.recipient_id
        WHERE e.program_code = :c AND e.status = 'enrolled' AND e.individual_id <> e.recipient_id
        AND b.date_of_birth > :minor AND g.id_document = 'cnic'
        AND (SELECT COUNT(*) FROM individual j WHERE j.cnic = g.cnic) = 1 ORDER BY e.id LIMIT :k"""),
        {"c": PROGRAM, "k": k, "minor": date(2008, 7, 1)})]


def _adults(s, household_id: int, but: set[int]) -> list[Individual]:
    return [p for p in s.scalars(select(Individual).where(Individual.household_id == household_id)
                                 .order_by(Individual.id))
            if p.id not in but and p.date_of_death is None and p.date_of_birth <= date(ON.year - 18, ON.month, ON.day)]


def test_a_member_benefit_passes_to_another_adult_when_the_guardian_who_collects_it_dies(province, tmp_path):
    _, payroll_id = _payroll(province, PROGRAM, date(2026, 7, 1))
    with transaction(province) as s:
        def heir(r):  # another adult of the household, a woman first
            others = _adults(s, r[3], {r[1], r[2]})
            return ([p for p in others if p.sex == "female"] or others or [None])[0]

        (eid, child, guardian, hid), expected = next((r, heir(r)) for r in _guardian_collected(s, 100)
                                                     if heir(r) is not None and heir(r).cnic)
        dead = s.get(Individual, guardian)
    from isps.interop import feeds
    from isps.services.events import drain

    feeds.apply_delivery(province, "nadra", [{"record_ref": "G1", "event": "death", "event_date": "2026-06-20",
                                              "cnic": formatted(dead.cnic)}], reference="NADRA-g", actor="nadra")
    assert drain(province, on=ON)["stopped"] == 0
    with transaction(province) as s:
        after = en.get(s, eid)
        assert after["status"] == "enrolled" and after["recipient_id"] == expected.id
        last = after["history"][-1]
        assert last["status"] == "recipient"
        assert f"recipient {guardian} died" in last["reason"] and f"now collected by {expected.id}" in last["reason"]
        assert ("an adult woman of the household" if expected.sex == "female" else "an adult of the household") \
            in last["reason"]
        out = pr.export(s, payroll_id, tmp_path)
        assert s.execute(text("SELECT status FROM payment_instruction WHERE enrolment_id = :e"),
                         {"e": eid}).scalar_one() == "pending"  # not stopped: the heir collects it
    csv_text = open(out["files"]["csv"]).read()
    assert expected.cnic in csv_text and dead.cnic not in csv_text


def test_a_child_left_with_no_adult_to_collect_is_flagged_and_not_paid(province, tmp_path):
    from isps.programs import reassessment
    from isps.registry import service as registry
    from isps.services.events import drain

    _, payroll_id = _payroll(province, PROGRAM, date(2026, 7, 1))
    with transaction(province) as s:
        eid, child, guardian, hid = _guardian_collected(s, 1)[0]
        adults = [p.id for p in _adults(s, hid, {child})]
    assert guardian in adults
    with transaction(province) as s:
        for pid in adults:  # the household's adults all die (a flood): nobody is left to collect
            registry.change_individual(s, pid, {"date_of_death": "2026-06-20"},
                                       registry.Provenance(source="nadra", source_ref=f"death-{pid}",
                                                           effective_date=date(2026, 6, 20), actor="nadra-feed"))
    drain(province, on=ON)
    with transaction(province) as s:
        after = en.get(s, eid)
        assert after["status"] == "enrolled" and after["recipient_id"] == guardian  # nobody else to hand it to
        flagged = {r["enrolment_id"]: r for r in reassessment.reviews(s, PROGRAM)}
        assert eid in flagged and "name a guardian" in flagged[eid]["reason"]
        pr.export(s, payroll_id, tmp_path)
        assert s.execute(text("SELECT status FROM payment_instruction WHERE enrolment_id = :e"),
                         {"e": eid}).scalar_one() == "stopped"  # no money goes to the dead guardian
        assert pr.ledger_check(s, PROGRAM)["balanced"]

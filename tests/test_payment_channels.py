"""Payment channels come from the accounts the banks and wallet providers reported (the accounts
feed), not from the household's number: a bank account, else a mobile wallet, else a pull channel.
A new account is used from the next payroll on, and a failed payment is retried only on a channel
the person actually has (never a wallet payment to an IBAN)."""

from __future__ import annotations

import csv
from datetime import date

from sqlalchemy import text

from isps.db import transaction
from isps.interop import feeds
from isps.payments import payroll as pr
from isps.programs import cycles, enrolment as en
from isps.registry.cnic import formatted
from isps.targeting.eligibility import rules

ON = date(2026, 6, 1)
CODE = "bisp_kafaalat"
IBAN_A, IBAN_B, IBAN_B_OLD = "PK36HABB0000001234567801", "PK52MUCB0000009876543202", "PK11UNIL0000005555555503"
WALLET_B, WALLET_C = "03001234502", "03451234503"
# who receives a household benefit: the first living adult woman, else the first living member
RECIPIENT = """COALESCE((SELECT MIN(w.id) FROM individual w WHERE w.household_id = r.household_id AND w.sex = 'female'
    AND w.date_of_death IS NULL AND w.date_of_birth <= :adult),
    (SELECT MIN(w.id) FROM individual w WHERE w.household_id = r.household_id AND w.date_of_death IS NULL))"""


def _accounts(engine, reference: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    records = [{"record_ref": f"{reference}-{k}", "cnic": formatted(cnic), "kind": kind, "provider": provider,
                "account_number": number, "opened_on": "2025-01-15", "status": status}
               for k, (cnic, kind, provider, number, status) in enumerate(rows)]
    report = feeds.apply_delivery(engine, "accounts", records, reference=reference, actor="sbp")
    assert report.counts()["accepted"] == len(records), report.summary()


def _three_recipients(engine) -> tuple[int, list[tuple[int, int, str]]]:
    """A run of the program and three of its eligible households whose recipient holds a CNIC of
    their own: (household, recipient, CNIC)."""
    with transaction(engine) as s:
        row, _ = rules.active_rule(s, CODE)
        run = rules.run(s, row, "test", on=ON)
        people = s.execute(text(f"""SELECT x.household_id, i.id, i.cnic FROM (SELECT r.household_id,
                {RECIPIENT} AS recipient FROM eligibility_result r WHERE r.run_id = :r AND r.eligible = :y) x
            JOIN individual i ON i.id = x.recipient WHERE i.id_document = 'cnic'
            AND (SELECT COUNT(*) FROM individual j WHERE j.cnic = i.cnic) = 1 ORDER BY x.household_id LIMIT 3"""),
                           {"r": run.id, "y": True, "adult": date(2008, 6, 1)}).all()
        return run.id, [tuple(p) for p in people]


def _enrolment(s, household_id: int):
    return s.execute(text("SELECT id, recipient_id, channel, account FROM enrolment WHERE program_code = :c "
                          "AND household_id = :h"), {"c": CODE, "h": household_id}).one()


def _lines(path: str) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {r["cnic"]: r for r in csv.DictReader(f)}


def test_the_channel_is_the_recipients_bank_account_else_wallet_else_a_pull_channel(province):
    run_id, (a, b, c) = _three_recipients(province)
    _accounts(province, "SBP-1", [(a[2], "bank", "HBL", IBAN_A, "active"),
                                  (b[2], "bank", "UBL", IBAN_B_OLD, "closed"),  # closed: not used
                                  (b[2], "wallet", "JazzCash", WALLET_B, "active")])
    with transaction(province) as s:
        en.enrol_from_run(s, CODE, run_id, "test", ON)
        ea, eb, ec = _enrolment(s, a[0]), _enrolment(s, b[0]), _enrolment(s, c[0])
        assert (ea.recipient_id, ea.channel, ea.account) == (a[1], "bank", IBAN_A)
        assert (eb.recipient_id, eb.channel, eb.account) == (b[1], "mobile_wallet", WALLET_B)
        assert ec.channel in en.PULL and ec.account is None
        # nobody without an account gets an invented one; pull channels by place: an agent in towns,
        # a cash outlet in villages, Pakistan Post for a recipient without a phone for the pickup SMS
        rows = s.execute(text("""SELECT e.channel, e.account, h.urban, p.phone FROM enrolment e
            JOIN household h ON h.id = e.household_id LEFT JOIN individual p ON p.id = e.recipient_id
            WHERE e.program_code = :c AND e.household_id NOT IN (:a, :b)"""), {"c": CODE, "a": a[0], "b": b[0]}).all()
        assert rows and all(acct is None for _, acct, _, _ in rows)
        for channel, _, urban, phone in rows:
            assert channel == ("agent" if urban else "cash_outlet" if phone else "post")
        assert s.execute(text("SELECT COUNT(*) FROM enrolment WHERE account LIKE 'PK36ISPS%'")).scalar_one() == 0


def test_a_new_account_counts_from_the_next_payroll_and_a_retry_goes_where_the_person_has_an_account(
        province, tmp_path):
    run_id, (a, b, c) = _three_recipients(province)
    _accounts(province, "SBP-1", [(a[2], "bank", "HBL", IBAN_A, "active"),
                                  (b[2], "bank", "MCB", IBAN_B, "active"),
                                  (b[2], "wallet", "JazzCash", WALLET_B, "active")])
    with transaction(province) as s:
        en.enrol_from_run(s, CODE, run_id, "test", ON)
        assert _enrolment(s, c[0]).channel in en.PULL
    _accounts(province, "SBP-2", [(c[2], "wallet", "Easypaisa", WALLET_C, "active")])  # after enrolment
    with transaction(province) as s:
        cycle = cycles.open_cycle(s, CODE, date(2026, 7, 1), "maker")
        cycles.generate_entitlements(s, cycle.id)
        cycles.approve_cycle(s, cycle.id, "checker")
        payroll = pr.generate(s, cycle.id, "maker")
        pr.release_funds(s, CODE, payroll.total, "RO-1", "treasury")
        pr.approve(s, payroll.id, "checker")
        assert tuple(_enrolment(s, c[0]))[2:] == ("mobile_wallet", WALLET_C)  # the enrolment follows
        first = _lines(pr.export(s, payroll.id, tmp_path / "1")["files"]["csv"])
    assert (first[a[2]]["channel"], first[a[2]]["account"]) == ("bank", IBAN_A)
    assert (first[b[2]]["channel"], first[b[2]]["account"]) == ("bank", IBAN_B)
    assert (first[c[2]]["channel"], first[c[2]]["account"]) == ("mobile_wallet", WALLET_C)

    # the banks reject A's and B's transfers: A has no wallet, B has one
    status = "end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\n" + "".join(
        f"{first[p[2]]['end_to_end_id']},failed,{first[p[2]]['amount']},2026-07-10,R{k},1\n" for k, p in enumerate((a, b)))
    with transaction(province) as s:
        assert pr.reconcile(s, status.encode(), "status.csv", "recon")["applied"] == 2
        assert pr.retry_failed(s, payroll.id) == 2
        second = _lines(pr.export(s, payroll.id, tmp_path / "2")["files"]["csv"])
        assert pr.ledger_check(s, CODE)["balanced"]
    assert set(second) == {a[2], b[2]}
    assert (second[a[2]]["channel"], second[a[2]]["account"]) == ("agent", "")  # no wallet: an agent, by CNIC
    assert second[a[2]]["biometric"] == "1"
    assert (second[b[2]]["channel"], second[b[2]]["account"]) == ("mobile_wallet", WALLET_B)  # never the IBAN

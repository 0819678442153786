"""The isps command as an operator runs it, on the embedded SQLite default."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from isps.cli.main import DEMO_PASSWORD, app

runner = CliRunner()


@pytest.fixture
def sqlite_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ISPS_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ISPS_VAR_DIR", str(tmp_path / "var"))
    from isps.cli.main import console
    from isps.db import engine_for
    engine_for.cache_clear()
    monkeypatch.setattr(console, "width", 200)  # tables as on an operator's wide terminal
    return tmp_path


def test_synth_loads_and_scores(sqlite_env):
    r = runner.invoke(app, ["synth", "--households", "300", "--seed", "4"])
    assert r.exit_code == 0, r.output
    assert "loaded 300 households" in r.output
    assert "scored 300 households with PMT 'NSER PMT' v1" in r.output


def test_synth_refuses_the_same_seed_twice(sqlite_env):
    assert runner.invoke(app, ["synth", "-n", "50", "--seed", "4"]).exit_code == 0
    r = runner.invoke(app, ["synth", "-n", "50", "--seed", "4"])
    assert r.exit_code == 1 and "already loaded" in r.output


def test_demo_builds_runs_the_flows_and_prints_sign_in(sqlite_env):
    r = runner.invoke(app, ["demo", "--households", "400", "--no-serve"])
    assert r.exit_code == 0, r.output
    for user in ("admin", "policy", "lahore.officer", "kasur.counter", "auditor"):
        assert user in r.output
    assert DEMO_PASSWORD in r.output
    assert "recorded a counter visit" in r.output
    assert "BISP Kafaalat:" in r.output and "eligible of 400 considered" in r.output
    assert "2,000 vulnerability scores" in r.output
    # the flows that fill the other pages: feeds, a partner list, Kafaalat's money, a death
    assert "registry feeds: records accepted (electricity" in r.output
    assert "Pakistan Bait-ul-Mal (pbm_financial_assistance)" in r.output and "by CNIC" in r.output
    assert "Punjab Zakat and Ushr Department (zakat_guzara_allowance)" in r.output
    assert "kept off because of another program they receive" in r.output
    assert "later list demo-zakat-guzara-2026-q4" in r.output
    assert "bisp_kafaalat:" in r.output and "approved by a second person" in r.output
    assert "ledger balances" in r.output
    assert "NADRA reported the death of" in r.output and "*****" in r.output
    assert "sector workers from employers' files" in r.output and "daily wagers at 4 booths" in r.output
    assert "given to kasur.enumerator; see /field" in r.output and "/openrosa/key/" in r.output
    assert list((sqlite_env / "var" / "payments").glob("payroll-*.xml"))
    again = runner.invoke(app, ["demo", "--households", "400", "--no-serve"])
    assert again.exit_code == 0 and "already holds 400 households" in again.output
    assert "demo deliveries applied already" in again.output and "payroll #1 exported" in again.output
    assert "labour registries: the demo's uploads, booths, shops and job board are in already" in again.output
    assert "device kasur-demo-1 of kasur.enumerator registered already" in again.output


def test_users_create_validates_role_and_district(sqlite_env):
    r = runner.invoke(app, ["users", "create", "okara.officer", "--role", "district_officer", "--password", "x1-long-enough"])
    assert r.exit_code == 1 and "needs a district" in r.output
    r = runner.invoke(app, ["users", "create", "o2", "--role", "district_officer", "--password", "x1-long-enough",
                            "--district", "Atlantis"])
    assert r.exit_code == 1 and "no district 'Atlantis'" in r.output
    r = runner.invoke(app, ["users", "create", "o3", "--role", "district_officer", "--password", "x1-long-enough",
                            "--district", "Okara"])
    assert r.exit_code == 0, r.output


def test_eligibility_and_simulation_from_the_command_line(sqlite_env):
    assert runner.invoke(app, ["synth", "-n", "400", "--seed", "3"]).exit_code == 0
    r = runner.invoke(app, ["eligibility", "run", "bisp_kafaalat"])
    assert r.exit_code == 0 and "of 400 eligible" in r.output
    r = runner.invoke(app, ["eligibility", "explain", "bisp_kafaalat", "10000000001"])
    assert r.exit_code == 0 and "eligible" in r.output and "PMT score" in r.output
    r = runner.invoke(app, ["simulate", "bisp_kafaalat", "--cutoff", "30", "--cutoff", "35"])
    assert r.exit_code == 0, r.output
    assert "cut-off 30" in r.output and "cut-off 35" in r.output and "Punjab" in r.output
    r = runner.invoke(app, ["eligibility", "count", "no_such_program"])
    assert r.exit_code == 1 and "there is no program 'no_such_program'" in r.output


def test_pmt_evaluate_fit_approve_activate(sqlite_env):
    assert runner.invoke(app, ["synth", "-n", "1500", "--seed", "8"]).exit_code == 0
    r = runner.invoke(app, ["pmt", "evaluate"])
    assert r.exit_code == 0, r.output
    assert "held-out households" in r.output and "OLS" in r.output and "NSER PMT v1 (in force)" in r.output
    r = runner.invoke(app, ["pmt", "fit", "--estimator", "ols", "--actor", "maker"])
    assert r.exit_code == 0 and "stored as draft model 2" in r.output
    r = runner.invoke(app, ["score", "--activate", "2"])
    assert r.exit_code == 1 and "not approved" in r.output
    assert runner.invoke(app, ["pmt", "approve", "2", "--approver", "maker"]).exit_code == 1
    assert runner.invoke(app, ["pmt", "approve", "2", "--approver", "checker"]).exit_code == 0
    r = runner.invoke(app, ["score", "--activate", "2"])
    assert r.exit_code == 0 and "scored 1,500 households" in r.output
    assert "active" in runner.invoke(app, ["pmt", "models"]).output


def test_export_then_import_round_trips_with_a_report(sqlite_env, tmp_path):
    assert runner.invoke(app, ["synth", "-n", "120", "--seed", "6"]).exit_code == 0
    out = tmp_path / "kasur.csv"
    r = runner.invoke(app, ["export", str(out)])
    assert r.exit_code == 0, r.output
    households = tmp_path / "kasur_households.csv"
    members = tmp_path / "kasur_members.csv"
    assert households.exists() and members.exists()
    r = runner.invoke(app, ["import", str(households), str(members), "--actor", "dept"])
    assert r.exit_code == 0, r.output
    assert "120 unchanged" in r.output.replace(",", "")
    import csv
    with members.open(newline="") as f:
        rows = list(csv.reader(f))
    rows[1][rows[0].index("sex")] = "alien"
    with members.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    errors = tmp_path / "rejected.csv"
    r = runner.invoke(app, ["import", str(households), str(members), "--errors", str(errors)])
    assert r.exit_code == 0 and "members row 2" in r.output and "sex: must be one of male, female, transgender" in r.output
    assert "sex" in errors.read_text()


def test_vulnerability_and_means_tests_from_the_command_line(sqlite_env):
    assert runner.invoke(app, ["synth", "-n", "600", "--seed", "5"]).exit_code == 0
    r = runner.invoke(app, ["vulnerability", "compute"])
    assert r.exit_code == 0 and "3,000 vulnerability scores" in r.output
    r = runner.invoke(app, ["vulnerability", "risk", "--shock", "flood"])
    assert r.exit_code == 0 and "Rajanpur" in r.output
    r = runner.invoke(app, ["alt", "generate", "--through", "2026-03"])
    assert r.exit_code == 0 and "electricity readings" in r.output
    r = runner.invoke(app, ["alt", "means-test", "--method", "electricity", "--through", "2026-03"])
    assert r.exit_code == 0 and "at or below 50" in r.output
    r = runner.invoke(app, ["alt", "evaluate", "--through", "2026-03"])
    assert r.exit_code == 0 and "exclusion error" in r.output
    assert runner.invoke(app, ["alt", "means-test", "--method", "gas", "--through", "2026-03"]).exit_code == 1


def test_partners_register_key_and_agreement(sqlite_env, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = tmp_path / "bop.pem"
    pem.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    r = runner.invoke(app, ["partners", "register", "bop.pk", "--name", "Bank of Punjab"])
    assert r.exit_code == 0 and "client_secret" in r.output
    assert runner.invoke(app, ["partners", "register", "bop.pk", "--name", "again"]).exit_code == 1
    r = runner.invoke(app, ["partners", "key", "bop.pk", "--kid", "k1", "--pem", str(pem)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["partners", "agreement", "bop.pk", "--reference", "DSA-7", "--purpose", "payments",
                            "--fields", "name,wealth"])
    assert r.exit_code == 1 and "unknown fields wealth" in r.output


def test_feeds_sample_apply_again_and_recertification(sqlite_env, tmp_path):
    assert runner.invoke(app, ["synth", "-n", "300", "--seed", "12"]).exit_code == 0
    out = tmp_path / "nadra.csv"
    r = runner.invoke(app, ["feeds", "sample", "nadra", str(out), "-n", "40"])
    assert r.exit_code == 0 and "40 nadra records" in r.output, r.output
    r = runner.invoke(app, ["feeds", "apply", "nadra", str(out), "--reference", "NADRA-2026-11"])
    assert r.exit_code == 0 and "re-scored" in r.output, r.output
    again = runner.invoke(app, ["feeds", "apply", "nadra", str(out), "--reference", "NADRA-2026-11"])
    assert again.exit_code == 0 and "nothing changed" in again.output
    assert runner.invoke(app, ["feeds", "apply", "nonsense", str(out)]).exit_code == 1
    r = runner.invoke(app, ["recert", "due", "--older-than-days", "30"])
    assert r.exit_code == 0 and "households due" in r.output and "last verified" in r.output


def test_users_unlock_opens_a_locked_account(sqlite_env):
    from isps.access import service as access
    from isps.db import default_engine, transaction

    assert runner.invoke(app, ["users", "create", "okara.officer", "--role", "administrator",
                               "--password", "pw-okara-1"]).exit_code == 0
    engine = default_engine()
    for _ in range(access.ACCOUNT_FAILURES):
        with transaction(engine) as s, pytest.raises(access.AuthError):
            access.sign_in(s, "okara.officer", "wrong", "10.0.0.1", "web")
    with transaction(engine) as s:
        assert access.is_locked(s, "okara.officer")
    r = runner.invoke(app, ["users", "unlock", "okara.officer"])
    assert r.exit_code == 0 and "okara.officer: unlocked" in r.output
    with transaction(engine) as s:
        assert access.sign_in(s, "okara.officer", "pw-okara-1", "10.0.0.1", "web").username == "okara.officer"
    assert runner.invoke(app, ["users", "unlock", "nobody"]).exit_code == 1


def test_cli_words_help_status_explain_and_simulate(sqlite_env):
    """The words an operator reads: every promised command exists and says what it does, tables and
    status read as tables, a missing household is named as missing, the poor share is a percent."""
    r = runner.invoke(app, ["pmt", "--help"])
    assert r.exit_code == 0 and "activate" in r.output
    assert "Make an approved PMT model the active one" in r.output
    r = runner.invoke(app, ["benefits", "--help"])
    line = next(x for x in r.output.splitlines() if "return-unclaimed" in x)
    assert "Return to each program's fund" in line
    assert runner.invoke(app, ["synth", "-n", "400", "--seed", "3"]).exit_code == 0
    r = runner.invoke(app, ["pmt", "activate", "99"])
    assert r.exit_code == 1 and "there is no PMT model 99" in r.output
    r = runner.invoke(app, ["pmt", "activate", "1"])
    assert r.exit_code == 0 and "scored 400 households" in r.output, r.output
    r = runner.invoke(app, ["benefits", "status", "bisp_kafaalat"])
    assert r.exit_code == 0, r.output
    assert "{" not in r.output and "places" in r.output and "not combined with" in r.output
    r = runner.invoke(app, ["eligibility", "explain", "bisp_kafaalat", "99999999999"])
    assert r.exit_code == 1 and "there is no household 99999999999" in r.output
    assert "considers" not in r.output
    assert runner.invoke(app, ["eligibility", "run", "bisp_taleemi_wazaif"]).exit_code == 0
    r = runner.invoke(app, ["simulate", "bisp_kafaalat", "--poor-share", "25"])
    assert r.exit_code == 0, r.output
    assert "poorest 25% of households" in r.output
    assert "bisp_taleemi_wazaif" not in r.output and ": 0" not in r.output
    assert "BISP Benazir Taleemi Wazaif" in r.output or "no household eligible here" in r.output
    assert runner.invoke(app, ["simulate", "bisp_kafaalat", "--poor-share", "0.2"]).exit_code != 0


def test_cli_tables_fold_instead_of_cutting_at_80_columns(sqlite_env, monkeypatch):
    from isps.cli.main import console
    monkeypatch.setattr(console, "width", 80)
    r = runner.invoke(app, ["sbr", "catalogue"])
    assert r.exit_code == 0, r.output
    assert "…" not in r.output
    assert "Kafaalat" in r.output  # a long cell wraps onto the next line instead

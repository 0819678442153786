"""``isps benefits`` from the command line: enrol, exit with promotion, cycle, payroll, files, reconcile."""

from __future__ import annotations

import json
from datetime import date

from typer.testing import CliRunner

from isps.cli.main import app  # the real ``isps`` command: ``isps benefits`` must be registered on it

runner = CliRunner()


def _json(r):
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_benefits_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("ISPS_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ISPS_VAR_DIR", str(tmp_path / "var"))
    from isps.cli.main import console
    from isps.db import default_engine, engine_for, transaction
    from isps.migrate import upgrade
    from isps.synth.load import load_synthetic
    from isps.targeting import pmt
    from isps.targeting.eligibility import rules

    engine_for.cache_clear()
    monkeypatch.setattr(console, "width", 200)
    engine = default_engine()
    upgrade(engine)
    load_synthetic(engine, 300, seed=4)
    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s))
        rules.install_shipped_rules(s)
        row, _ = rules.active_rule(s, "bisp_kafaalat")
        run_id = rules.run(s, row, "cli").id
    _json(runner.invoke(app, ["benefits", "capacity", "bisp_kafaalat", "--slots", "6"]))
    out = _json(runner.invoke(app, ["benefits", "enrol", "bisp_kafaalat", str(run_id)]))
    assert out["enrolled"] == 6
    first = _json(runner.invoke(app, ["benefits", "waiting", "bisp_kafaalat", "--limit", "1"]))[0]
    from isps.programs import enrolment as en
    with transaction(engine) as s:
        target = en.listing(s, "bisp_kafaalat", "enrolled", limit=1)[0]["id"]
    out = _json(runner.invoke(app, ["benefits", "exit", str(target), "moved away"]))
    assert out["promoted_ids"] == [first["id"]]
    cyc = _json(runner.invoke(app, ["benefits", "cycle", "bisp_kafaalat", date.today().isoformat(), "--as", "maker"]))
    assert cyc["entitlements"] == 6
    assert runner.invoke(app, ["benefits", "approve-cycle", str(cyc["cycle_id"]), "--as", "maker"]).exit_code == 1
    _json(runner.invoke(app, ["benefits", "approve-cycle", str(cyc["cycle_id"]), "--as", "checker"]))
    p = _json(runner.invoke(app, ["benefits", "payroll", str(cyc["cycle_id"]), "--as", "maker"]))
    refused = runner.invoke(app, ["benefits", "approve-payroll", str(p["id"]), "--as", "checker"])
    assert refused.exit_code == 1 and "needs Rs 51,000.00" in refused.output
    fund = _json(runner.invoke(app, ["benefits", "fund", "bisp_kafaalat", "51000", "--reference", "RO-7"]))
    assert fund["fund"] == {"released": 51_000, "issued": 51_000, "returned": 0, "available": 0, "shortfall": 0}
    _json(runner.invoke(app, ["benefits", "approve-payroll", str(p["id"]), "--as", "checker"]))
    files = _json(runner.invoke(app, ["benefits", "export", str(p["id"]), "--folder", str(tmp_path / "out")]))["files"]
    lines = open(files["csv"]).read().splitlines()[1:]
    status = tmp_path / "status.csv"
    status.write_text("end_to_end_id,status,amount,status_on,bank_ref,biometric_ok\n" + "".join(
        f"{ln.split(',')[0]},paid,8500,2026-07-10,R{k},1\n" for k, ln in enumerate(lines)))
    assert _json(runner.invoke(app, ["benefits", "reconcile", str(status)]))["applied"] == 6
    again = runner.invoke(app, ["benefits", "reconcile", str(status)])
    assert again.exit_code == 1 and "already imported as import" in again.output
    ledger = _json(runner.invoke(app, ["benefits", "ledger"]))
    assert ledger["balanced"] and ledger["accounts"]["disbursed"] == 51_000

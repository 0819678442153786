"""``isps sbr`` commands, through the real ``isps`` command."""

from __future__ import annotations

from typer.testing import CliRunner


def test_sbr_cli(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("ISPS_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    import isps.cli.main as main

    monkeypatch.setattr(main, "_engine", lambda: engine)
    monkeypatch.setattr(main.console, "width", 400)
    app = main.app
    run = CliRunner().invoke
    r = run(app, ["sbr", "catalogue", "--pillar", "social_insurance"])
    assert r.exit_code == 0 and "eobi_old_age_pension" in r.output
    path = tmp_path / "zakat.csv"
    path.write_text("partner_ref,full_name,cnic,date_of_birth,district\nZ1,Rubina Bibi,35202-1234567-2,1970-01-05,Lahore\n"
                    "Z2,,,,\n")
    r = run(app, ["sbr", "ingest", "zakat_guzara_allowance", str(path), "--partner", "Zakat Lahore",
                  "--report", str(tmp_path / "r.csv")])
    assert r.exit_code == 0, r.output
    assert "1 inserted" in r.output and "full_name" in (tmp_path / "r.csv").read_text()
    r = run(app, ["sbr", "resolve"])
    assert r.exit_code == 0 and "1 lines" in r.output, r.output
    r = run(app, ["sbr", "report", "by_district_program", "--csv", str(tmp_path / "d.csv")])
    assert r.exit_code == 0 and "zakat_guzara_allowance" in (tmp_path / "d.csv").read_text()
    assert run(app, ["sbr", "report", "nonsense"]).exit_code != 0

"""The ``isps`` command: a thin Typer adapter over the domain modules.

The database comes from ``ISPS_DATABASE_URL`` (SQLite in ./var/ by default); every
command brings the schema up to date before it starts.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from isps.cli.common import Table, _engine, _fail, console
from isps.db import transaction

app = typer.Typer(help="ISPS: the Integrated Social Protection System.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
users_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")
from isps.cli.targeting import (alt_app, eligibility_app, pmt_app, simulate as _simulate,  # noqa: E402
                                vulnerability_app)

app.add_typer(eligibility_app, name="eligibility")
app.add_typer(pmt_app, name="pmt")
app.add_typer(vulnerability_app, name="vulnerability")
app.add_typer(alt_app, name="alt")
from isps.cli.applications import applications_app  # noqa: E402

app.add_typer(applications_app, name="applications")
from isps.cli.partners import partners_app  # noqa: E402

app.add_typer(partners_app, name="partners")
from isps.cli.feeds import feeds_app, recert_app  # noqa: E402

app.add_typer(feeds_app, name="feeds")
app.add_typer(recert_app, name="recert")
from isps.cli.linkage import linkage_app  # noqa: E402
from isps.cli.programs import benefits_app  # noqa: E402

app.add_typer(linkage_app, name="sbr")
app.add_typer(benefits_app, name="benefits")
from isps.cli.labour import labour_app  # noqa: E402

app.add_typer(labour_app, name="labour")
from isps.cli.worker import worker as _worker  # noqa: E402

app.command("worker")(_worker)
from isps.cli.sms import sms_app  # noqa: E402

app.add_typer(sms_app, name="sms")
from isps.cli.field import field_app  # noqa: E402

app.add_typer(field_app, name="field")
app.command("simulate")(_simulate)

DEMO_PASSWORD = "isps-demo-2026"
DEMO_USERS = [
    ("admin", "administrator", None, "System administrator"),
    ("policy", "program_manager", None, "Program manager, PSPA"),
    ("lahore.officer", "district_officer", "Lahore", "District officer, Lahore"),
    ("kasur.counter", "counter_operator", "Kasur", "One Window counter, Kasur"),
    ("kasur.officer", "district_officer", "Kasur", "District officer, Kasur (verifies the counter's applications)"),
    ("kasur.grievance", "grievance_officer", "Kasur", "Grievance officer, Kasur"),
    ("kasur.supervisor", "field_supervisor", "Kasur", "Field supervisor, Kasur (devices, assignments, refusals)"),
    ("kasur.enumerator", "enumerator", "Kasur", "Enumerator, Kasur (ODK Collect, distribution site)"),
    ("auditor", "auditor", None, "Internal auditor"),
]


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic) and seed the geography and PMT v1."""
    engine = _engine()
    console.print(f"database ready: {engine.url.render_as_string(hide_password=True)}")


@app.command()
def synth(households: Annotated[int, typer.Option("--households", "-n", min=1)] = 10_000,
          seed: Annotated[int, typer.Option(help="the same seed gives the same province")] = 1,
          duplicates: Annotated[float, typer.Option(help="share of households registered twice (linkage work)")] = 0.0,
          missing_cnic: Annotated[float, typer.Option(help="share of adults whose CNIC was not recorded")] = 0.0,
          score: Annotated[bool, typer.Option(help="score the new households with the active PMT")] = True) -> None:
    """Generate a synthetic Punjab and load it into the registry."""
    from isps.synth.generator import DirtOptions
    from isps.synth.load import SynthError, load_synthetic

    engine = _engine()
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("households", total=households)
        try:
            report = load_synthetic(engine, households, seed, DirtOptions(duplicates, 0.3, missing_cnic),
                                    progress=lambda k: bar.advance(task, k))
        except SynthError as exc:
            _fail(str(exc))
    console.print(f"loaded {report.households:,} households and {report.individuals:,} people "
                  f"({report.duplicate_households:,} re-registered duplicates) in {time.perf_counter() - started:.1f}s")
    if score:
        _rescore(engine)


def _rescore(engine) -> None:
    from isps.targeting import pmt

    started = time.perf_counter()
    with console.status("scoring every household with the active PMT model"):
        with transaction(engine) as s:
            model = pmt.active_model(s)
            n = pmt.rescore_all(s, model) if model else 0
    console.print(f"scored {n:,} households with PMT '{model.name}' v{model.version} "
                  f"in {time.perf_counter() - started:.1f}s")


@app.command()
def score(pending: Annotated[bool, typer.Option(help="only households named by registry events")] = False,
          activate: Annotated[Optional[int], typer.Option(help="make this PMT model id active first")] = None) -> None:
    """Re-score households with the active PMT model (set-based, in the database)."""
    from isps.targeting import pmt

    engine = _engine()
    if activate is not None:
        from isps.cli.targeting import activate_model
        activate_model(activate)
    elif pending:
        with transaction(engine) as s:
            n = pmt.process_events(s)
        console.print(f"re-scored {n:,} households named by registry events")
    else:
        _rescore(engine)


@app.command("import")
def import_(households_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
            members_file: Annotated[Optional[Path], typer.Argument(exists=True, dir_okay=False)] = None,
            actor: Annotated[str, typer.Option(help="who is importing")] = "cli",
            source: Annotated[str, typer.Option(help="survey, partner, import ...")] = "import",
            effective_date: Annotated[Optional[str], typer.Option(help="YYYY-MM-DD the data describes")] = None,
            errors: Annotated[Optional[Path], typer.Option(help="write the rejected rows here (CSV)")] = None) -> None:
    """Import households and members from CSV, Parquet or an Excel workbook, with a row-by-row report."""
    from isps.registry.transfer import TransferError, import_households
    from isps.targeting import pmt

    engine = _engine()
    try:
        eff = date.fromisoformat(effective_date) if effective_date else None
    except ValueError:
        _fail(f"--effective-date '{effective_date}' must be written YYYY-MM-DD")
    try:
        with console.status("validating and loading"):
            report = import_households(engine, households_file, members_file, actor=actor, source=source,
                                       effective_date=eff)
    except TransferError as exc:
        _fail(str(exc))
    console.print(report.summary())
    for line in report.lines()[:200]:
        console.print(f"  [yellow]{line}[/yellow]")
    if errors:
        report.write_csv(errors)
        console.print(f"rejected rows written to {errors}")
    with transaction(engine) as s:
        n = pmt.process_events(s)
    console.print(f"re-scored {n:,} households")


@app.command()
def export(out: Annotated[Path, typer.Argument(help="file name: .csv (two files), .parquet (two files) or .xlsx")],
           district: Annotated[Optional[str], typer.Option(help="only this district, by name")] = None) -> None:
    """Export households and members in the import layout."""
    from isps.registry.geography import district_by_name
    from isps.registry.transfer import TransferError, export_households

    engine = _engine()
    district_id = None
    if district:
        info = district_by_name(district)
        if info is None:
            _fail(f"there is no district '{district}' in Punjab")
        district_id = info.id
    try:
        with console.status("exporting"):
            report = export_households(engine, out, district_id=district_id)
    except TransferError as exc:
        _fail(str(exc))
    console.print(report.summary() if hasattr(report, "summary") else str(report))


@users_app.command("unlock")
def users_unlock(username: str) -> None:
    """Unlock an account locked after too many failed sign-ins (whoever runs the CLI on the server
    is trusted as an administrator; the unlock is audited as done by 'cli')."""
    from isps.access.service import Principal, unlock

    with transaction(_engine()) as s:
        try:
            was = unlock(s, Principal("cli", "administrator", None), username, "cli")
        except ValueError as exc:
            _fail(str(exc))
    console.print(f"{username}: unlocked" if was else f"{username} was not locked (failed sign-ins cleared)")


@users_app.command("create")
def users_create(username: str, role: Annotated[str, typer.Option()],
                 password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
                 district: Annotated[Optional[str], typer.Option(help="district name, for scoped roles")] = None,
                 full_name: Annotated[str, typer.Option()] = "") -> None:
    """Create a user with a role (and a district for district officers and counter operators); audited
    as done by 'cli', with the same checks as the web's user desk."""
    from isps.access.service import Principal, add_user
    from isps.registry.geography import district_by_name

    engine = _engine()
    district_id = None
    if district:
        info = district_by_name(district)
        if info is None:
            _fail(f"there is no district '{district}' in Punjab")
        district_id = info.id
    try:
        with transaction(engine) as s:
            user, _ = add_user(s, Principal("cli", "administrator", None), "cli", username, role,
                               full_name=full_name, district_id=district_id, password=password)
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"created {user.username} ({role})")


def ensure_demo_users(engine) -> None:
    from isps.access.models import User
    from isps.access.service import create_user
    from isps.registry.geography import district_by_name

    with transaction(engine) as s:
        for username, role, district, name in DEMO_USERS:
            if s.scalar(select(User.id).where(User.username == username)) is None:
                create_user(s, username, DEMO_PASSWORD, role, name,
                            district_by_name(district).id if district else None)


@app.command()
def serve(host: Annotated[str, typer.Option()] = "127.0.0.1", port: Annotated[int, typer.Option()] = 8000,
          workers: Annotated[int, typer.Option()] = 1) -> None:
    """Serve the web app and the API."""
    import uvicorn

    engine = _engine()
    console.print(f"serving on http://{host}:{port}/  (API docs: http://{host}:{port}/api/docs)")
    if workers > 1:
        uvicorn.run("isps.api.asgi:app", host=host, port=port, workers=workers, log_level="warning")
    else:
        from isps.api.app import create_app

        uvicorn.run(create_app(engine), host=host, port=port, log_level="warning")


@app.command()
def demo(households: Annotated[int, typer.Option("--households", "-n")] = 100_000,
         seed: Annotated[int, typer.Option()] = 1,
         host: Annotated[str, typer.Option()] = "127.0.0.1", port: Annotated[int, typer.Option()] = 8000,
         serve_app: Annotated[bool, typer.Option("--serve/--no-serve")] = True) -> None:
    """Build a synthetic province, run the main flows, and serve the app with a user per role."""
    from isps.registry.models import Household

    started = time.perf_counter()
    engine = _engine()
    with transaction(engine) as s:
        have = s.scalar(select(func.count()).select_from(Household))
    if have < households:
        console.rule("1. a synthetic Punjab")
        synth(households=households - have, seed=seed + have, duplicates=0.0, missing_cnic=0.0, score=True)
    else:
        console.print(f"the registry already holds {have:,} households")
    ensure_demo_users(engine)
    console.rule("2. the main flows")
    _demo_flows(engine, f"http://{host}:{port}")
    console.rule("3. sign in")
    table = Table("role", "username", "password", "sees")
    for username, role, district, name in DEMO_USERS:
        table.add_row(name, username, DEMO_PASSWORD, district or "all of Punjab")
    console.print(table)
    console.print(f"web app: http://{host}:{port}/   API docs: http://{host}:{port}/api/docs   "
                  f"token: POST http://{host}:{port}/api/v1/auth/token")
    console.print(f"ready in {time.perf_counter() - started:.0f}s")
    if serve_app:
        from isps.cli import worker as background
        from isps.config import var_dir

        log_path = var_dir().resolve() / "worker.log"
        child = background.start_child(log_path)
        console.print(f"background worker started (pid {child.pid}); its log: {log_path}")
        try:
            serve(host=host, port=port)
        finally:
            background.stop_child(child)
            console.print(f"background worker stopped (exit {child.returncode})")


def _demo_flows(engine, base_url: str = "http://127.0.0.1:8000") -> None:
    """A counter operator's day in miniature: find a citizen by CNIC, record a visit's findings
    (kept with provenance and re-scored), and show who read what."""
    from isps.access.service import Principal
    from isps.registry.cnic import formatted, mask
    from isps.registry.models import Individual
    from isps.services import household_file as files

    who = Principal("kasur.counter", "counter_operator", 2)
    with transaction(engine) as s:
        person = s.scalars(select(Individual).where(Individual.district_id == 2, Individual.cnic.is_not(None),
                                                   Individual.relation_to_head == "head").limit(1)).first()
        if person is None:
            console.print("no household in Kasur yet")
            return
        found = files.lookup_cnic(s, who, formatted(person.cnic), "cli")[0]
        f = files.open_household(s, who, found.household_id, "cli")
        before = f.score.score if f.score else None
        changed = files.edit_household(s, who, f.household.id, {"motorcycle": not f.household.motorcycle},
                                       "operator", date.today(), "demo: counter visit", "cli")
        after = files.open_household(s, who, f.household.id, "cli").score
    console.print(f"CNIC {mask(person.cnic)} → household {f.household.id} in {f.district}; PMT {before:.1f}")
    console.print(f"recorded a counter visit ({', '.join(changed)}): PMT now {after.score:.1f}, "
                  "kept in the household's history with its source; every read above is in the audit log")
    _demo_targeting(engine)
    from isps.cli import demo as flows

    flows.feeds_flow(engine, console)
    flows.linkage_flow(engine, console)
    flows.benefits_flow(engine, console)
    flows.later_list_flow(engine, console)
    flows.labour_flow(engine, console)
    flows.grievances_flow(engine, console)
    flows.field_flow(engine, console, base_url)


def _demo_targeting(engine) -> None:
    """Program staff's side: every program's eligibility over the registry, the vulnerability
    index for the risk map, and an electricity means test from (synthetic) DISCO readings."""
    from isps.targeting import alternative, vulnerability
    from isps.targeting.eligibility import rules

    with console.status("eligibility, vulnerability and means tests over the registry"):
        with transaction(engine) as s:
            runs = [(rule.name, rules.run(s, row, "demo")) for row, rule in rules.active_rules(s)]
        with transaction(engine) as s:
            scores = vulnerability.compute_all(s)
        through = date.today().replace(day=1)
        with transaction(engine) as s:
            if alternative.latest_run(s, alternative.ELECTRICITY) is None:
                alternative.generate_electricity(s, through, months=3, seed=1)
                alternative.generate_telecom(s, through, months=3, seed=1)
            alternative.run_means_test(s, alternative.ELECTRICITY, through, actor="demo")
    for name, run in runs:
        console.print(f"{name}: {run.eligible:,} eligible of {run.evaluated:,} considered")
    console.print(f"{scores:,} vulnerability scores for the district risk map; electricity means test run")


if __name__ == "__main__":  # pragma: no cover
    app()

"""``isps labour``: the labour registries from the command line — employers' uploads, shops and
their certificates, daily wagers and the rotation of offered work, laid-off workers and the job
board, and the quarterly reports' reminders and staleness. Thin: each command calls one function of
:mod:`isps.labour` and prints what it returns.

Register with ``app.add_typer(labour_app, name="labour")`` in :mod:`isps.cli.main`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from isps.cli.common import Table
from isps.db import transaction

labour_app = typer.Typer(help="Labour registries: uploads, shops, daily wagers, job board, quarterly reports.",
                         no_args_is_help=True)

Actor = Annotated[str, typer.Option(help="who is doing it")]


def _day(raw: Optional[str]) -> date:
    from isps.cli.common import _fail

    if not raw:
        return date.today()
    try:
        return date.fromisoformat(raw)
    except ValueError:
        _fail(f"'{raw}' is not a date written YYYY-MM-DD")


@labour_app.command("doors")
def doors_cmd() -> None:
    """The prescribed upload formats, one per door."""
    from isps.cli.common import console
    from isps.labour.uploads import DOORS

    table = Table("door", "who sends it", "columns")
    for d in DOORS.values():
        table.add_row(d.name, d.title, ", ".join(f"{c.name} ({c.describe()})" for c in d.columns))
    console.print(table)


@labour_app.command("upload")
def upload_cmd(door: str, path: Path, actor: Actor = "cli",
               reference: Annotated[Optional[str], typer.Option(help="the sender's reference (default: file name)")] = None,
               report: Annotated[Optional[Path], typer.Option(help="write the row-by-row report (CSV) here")] = None) -> None:
    """Receive an employer's or contractor's file (formal, contractor or sector); a file with any bad
    row is refused whole, with every problem listed."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import uploads

    try:
        rep = uploads.upload(_engine(), door, path, actor=actor, reference=reference)
    except uploads.UploadError as exc:
        _fail(str(exc))
    console.print(rep.summary())
    for line in rep.lines()[:50]:
        console.print(f"  {line}")
    if len(rep.errors) > 50:
        console.print(f"  … and {len(rep.errors) - 50} more")
    if report:
        rep.write_csv(report)
        console.print(f"report written to {report}")
    if not rep.ok:
        raise typer.Exit(1)


@labour_app.command("shop")
def shop_cmd(cnic: str, shop_name: str, trade: str, address: str, actor: Actor = "cli",
             on: Annotated[Optional[str], typer.Option(help="registered on (YYYY-MM-DD, default today)")] = None) -> None:
    """Register a shop and print its certificate number."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import shops
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            shop = shops.register_shop(s, cnic, shop_name, trade, address, _day(on), actor)
            console.print(f"shop registered: certificate {shop.certificate_no} (print it at "
                          f"/labour/shops/{shop.certificate_no}/certificate)")
    except LabourError as exc:
        _fail(str(exc))


@labour_app.command("wager")
def wager_cmd(cnic: str, booth: str, actor: Actor = "cli",
              on: Annotated[Optional[str], typer.Option(help="registered on (default today)")] = None) -> None:
    """Register a daily wager at a booth."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import wagers
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            w = wagers.register_wager(s, cnic, booth, _day(on), actor)
            console.print(f"daily wager registered at {w.booth}: individual {w.individual_id}")
    except LabourError as exc:
        _fail(str(exc))


@labour_app.command("day")
def day_cmd(individual_id: int, actor: Actor = "cli",
            on: Annotated[Optional[str], typer.Option(help="the day worked (default today)")] = None) -> None:
    """Record a day a daily wager worked on their own (reported at the booth)."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import wagers
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            d = wagers.record_day(s, individual_id, _day(on), actor)
            console.print(f"day worked recorded: individual {d.individual_id} on {d.worked_on}")
    except LabourError as exc:
        _fail(str(exc))


@labour_app.command("offer")
def offer_cmd(district_id: int, booth: str, slots: int, employer: str, description: str, actor: Actor = "cli",
              on: Annotated[Optional[str], typer.Option(help="the day of work (default today)")] = None,
              take: Annotated[bool, typer.Option(help="record the day as worked by everyone picked")] = False) -> None:
    """Offer a day's work at a booth: the places go to the wagers idle longest."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import wagers
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            offer = wagers.offer_work(s, district_id, booth, _day(on), slots, employer, description, actor)
            if take:
                wagers.take_offer(s, offer.id)
            table = Table("rank", "individual", "name", "idle since", "days this month")
            for p in wagers.picks(s, offer.id):
                table.add_row(str(p.rank), str(p.individual_id), p.full_name, str(p.idle_since or "—"),
                              str(p.days_this_month))
            console.print(f"offer {offer.id}: {slots} places at {offer.booth} on {offer.work_on}")
            console.print(table)
    except LabourError as exc:
        _fail(str(exc))


@labour_app.command("laid-off")
def laid_off_cmd(cnic: str, skills: str, actor: Actor = "cli",
                 on: Annotated[Optional[str], typer.Option(help="laid off on (default today)")] = None) -> None:
    """Register a laid-off worker with skills (comma-separated)."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import jobs
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            w = jobs.register_laid_off(s, cnic, _day(on), skills, actor)
            console.print(f"laid-off worker registered: individual {w.individual_id}")
    except LabourError as exc:
        _fail(str(exc))


@labour_app.command("vacancy")
def vacancy_cmd(district_id: int, employer: str, title: str, skills: str, slots: int = 1, actor: Actor = "cli") -> None:
    """Post a vacancy on the job board and list the laid-off workers it matches."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import jobs
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            v = jobs.post_vacancy(s, district_id, employer, title, skills, slots, date.today(), actor)
            _print_matches(console, jobs.matches(s, v.id))
            console.print(f"vacancy {v.id} posted")
    except LabourError as exc:
        _fail(str(exc))


def _print_matches(console, found) -> None:
    table = Table("individual", "name", "CNIC", "skills matched", "same district", "laid off on")
    for m in found:
        table.add_row(str(m.individual_id), m.full_name, m.cnic, str(m.skills), "yes" if m.same_district else "no",
                      str(m.laid_off_on))
    console.print(table)


@labour_app.command("matches")
def matches_cmd(vacancy_id: int, limit: int = 20) -> None:
    """The laid-off workers a vacancy matches, best first."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import jobs
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            _print_matches(console, jobs.matches(s, vacancy_id, limit=limit))
    except LabourError as exc:
        _fail(str(exc))


@labour_app.command("report")
def report_cmd(individual_id: int, status: str, actor: Actor = "cli", channel: str = "counter",
               on: Annotated[Optional[str], typer.Option(help="reported on (default today)")] = None) -> None:
    """Record a quarterly employment-status report."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import reports
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            r = reports.report_status(s, individual_id, status, _day(on), actor, channel)
            console.print(f"report {r.id} recorded: {status}; next report due "
                          f"{reports.next_due(s, individual_id).isoformat()}")
    except LabourError as exc:
        _fail(str(exc))


@labour_app.command("quarterly")
def quarterly_cmd(on: Annotated[Optional[str], typer.Option(help="as of (default today)")] = None) -> None:
    """The daily run of the quarterly schedule: owe the reminders whose day has come, make stale the
    reports missed beyond the grace period, and print the counts."""
    from isps.cli.common import _engine, console
    from isps.labour import reports

    day = _day(on)
    with transaction(_engine()) as s:
        owed = reports.schedule_reminders(s, day)
        stale = reports.mark_stale(s, day)
        c = reports.counts(s, day)
    console.print(f"{day}: {owed} reminders owed, {stale} made stale; {c.people} people on labour registers: "
                  f"{c.employed} employed, {c.unemployed} unemployed, {c.stale} stale (not counted as employed), "
                  f"{c.due_within_14_days} reports due within 14 days")


@labour_app.command("overdue")
def overdue_cmd(on: Annotated[Optional[str], typer.Option(help="as of (default today)")] = None,
                district_id: Annotated[Optional[int], typer.Option(help="one district")] = None,
                limit: int = 50) -> None:
    """People whose quarterly report is overdue, the longest overdue first."""
    from isps.cli.common import _engine, console
    from isps.labour import reports

    day = _day(on)
    table = Table("individual", "district", "status", "status since", "report due", "days late")
    with transaction(_engine()) as s:
        for p in reports.overdue(s, day, district_id, limit):
            table.add_row(str(p.individual_id), str(p.district_id), p.status, str(p.status_on), str(p.report_due),
                          str((day - p.report_due).days))
    console.print(table)


@labour_app.command("leave")
def leave_cmd(register: str, who: Annotated[str, typer.Argument(help="the person's CNIC, or a shop's certificate number")],
              reason: Annotated[str, typer.Option(help="found_work, moved_away, stopped_working, shop_closed or other")],
              actor: Actor = "cli",
              on: Annotated[Optional[str], typer.Option(help="left on (default today)")] = None,
              now: Annotated[Optional[str], typer.Option(help="what they do now (a reportable status); "
                                                              "required for found_work")] = None,
              note: Annotated[str, typer.Option(help="a word on why")] = "") -> None:
    """Take someone off a register (daily_wager, laid_off, a sector...), or close a shop (register
    ``shopkeeper``, by certificate number): the record stays as history."""
    from isps.cli.common import _engine, _fail, console
    from isps.labour import registers, shops
    from isps.labour.status import LabourError

    try:
        with transaction(_engine()) as s:
            if register == "shopkeeper":
                left = shops.close_shop(s, who, _day(on), reason, actor, now=now, note=note)
                what = f"shop {who.strip().upper()} closed"
            else:
                left = registers.take_off_by_cnic(s, register, who, _day(on), reason, actor, now=now, note=note)
                what = f"individual {left.individual_id} taken off the {register.replace('_', ' ')} register"
            console.print(f"{what} on {left.left_on} ({reason}); kept as history (leaving {left.id})"
                          + (f"; reported now {now}" if now else ""))
    except LabourError as exc:
        _fail(str(exc))

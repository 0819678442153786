"""``isps benefits``: enrolment, waiting lists, cycles, payrolls, status files and pickup slots.

Register with ``app.add_typer(benefits_app, name="benefits")``. Every command calls
:mod:`isps.programs` or :mod:`isps.payments`; each runs in one transaction.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from isps.db import transaction

benefits_app = typer.Typer(help="Enrolment, waiting lists, cycles, payrolls, status files, pickup slots.",
                           no_args_is_help=True)

Actor = Annotated[str, typer.Option("--as", help="who does it (recorded; maker and checker must differ)")]


def _run(fn, *args, **kw):
    from isps.cli.common import _engine, _fail, console
    from isps.payments.payroll import PaymentError
    from isps.programs.cycles import CycleError
    from isps.programs.enrolment import EnrolmentError

    try:
        with transaction(_engine()) as s:
            out = fn(s, *args, **kw)
            if hasattr(out, "id") and hasattr(out, "__table__"):
                out = {c.name: getattr(out, c.name) for c in out.__table__.columns}
            console.print_json(json.dumps(out, default=str))
    except (EnrolmentError, CycleError, PaymentError, ValueError) as exc:
        _fail(str(exc))


@benefits_app.command("enrol")
def enrol(program: str, run_id: Annotated[int, typer.Argument(help="an eligibility run of the program")],
          actor: Actor = "cli") -> None:
    """Enrol a run's eligible households or people: duplication filter, capacity, quotas, waiting list."""
    from isps.programs import enrolment as en
    _run(lambda s: en.enrol_from_run(s, program, run_id, actor))


@benefits_app.command("capacity")
def capacity(program: str, slots: Optional[int] = None, budget: Optional[float] = None, actor: Actor = "cli") -> None:
    """Set slots or the budget per cycle; a larger one enrols from the waiting list at once."""
    from isps.programs import enrolment as en
    _run(lambda s: {"promoted": en.set_capacity(s, program, actor, slots=slots, budget=budget),
                    **en.summary(s, program)})


@benefits_app.command("status")
def status(program: str) -> None:
    """Places, quotas and how many are enrolled, waiting, exited..."""
    from isps.cli.common import Table, _engine, _fail, console
    from isps.programs import enrolment as en

    try:
        with transaction(_engine()) as s:
            out = en.summary(s, program)
    except (en.EnrolmentError, ValueError) as exc:
        _fail(str(exc))
    table = Table("", program, show_header=False)
    places = "no limit" if out["capacity"] is None else f"{out['capacity']:,}"
    table.add_row("unit, frequency", f"{out['unit']}, {out['frequency']}")
    table.add_row("places", places + (f" (slots {out['slots']:,})" if out["slots"] is not None else "")
                  + (f" (budget per cycle PKR {out['budget_per_cycle']:,.0f})" if out["budget_per_cycle"] is not None
                     else ""))
    for state, n in sorted(out["counts"].items()):
        table.add_row(state, f"{n:,}")
    for q in out["quotas"]:
        table.add_row("quota", ", ".join(f"{k} {v}" for k, v in q.items()))
    table.add_row("not combined with", ", ".join(out["incompatible"]) or "-")
    console.print(table)


@benefits_app.command("waiting")
def waiting(program: str, limit: int = 20) -> None:
    """The waiting list in rank order."""
    from isps.programs import enrolment as en
    _run(lambda s: en.listing(s, program, "waiting", limit=limit))


@benefits_app.command("exit")
def exit_(enrolment_id: int, reason: str, status: str = "exited", actor: Actor = "cli") -> None:
    """Exit (or graduate, suspend, reinstate) an enrolment; the next on the waiting list is enrolled."""
    from isps.programs import enrolment as en
    _run(lambda s: en.end(s, enrolment_id, status, reason, actor))


@benefits_app.command("events")
def events() -> None:
    """Act on the registry's member.deceased events since last time."""
    from isps.programs import enrolment as en
    _run(lambda s: en.process_events(s))


@benefits_app.command("graduate")
def graduate(program: str, actor: Actor = "cli") -> None:
    """Graduate everyone meeting the program's criteria and refer them on."""
    from isps.programs import graduation
    _run(lambda s: graduation.graduate(s, program, actor))


@benefits_app.command("cycle")
def cycle(program: str, starts_on: Annotated[str, typer.Argument(help="YYYY-MM-DD")], actor: Actor = "cli") -> None:
    """Open the program's cycle containing a date and compute its entitlements (a draft)."""
    from isps.programs import cycles
    def go(s):
        c = cycles.open_cycle(s, program, date.fromisoformat(starts_on), actor)
        return {"cycle_id": c.id, "period": c.period, **cycles.generate_entitlements(s, c.id)}
    _run(go)


@benefits_app.command("approve-cycle")
def approve_cycle(cycle_id: int, actor: Actor = "cli") -> None:
    """A second person approves a cycle; its entitlements are frozen."""
    from isps.programs import cycles
    _run(lambda s: cycles.approve_cycle(s, cycle_id, actor))


@benefits_app.command("payroll")
def payroll(cycle_id: int, actor: Actor = "cli") -> None:
    """The cycle's payroll (generating it again returns the same one)."""
    from isps.payments import payroll as pr
    _run(lambda s: pr.payroll_summary(s, pr.generate(s, cycle_id, actor).id))


@benefits_app.command("fund")
def fund(program: str, amount: Annotated[float, typer.Argument(help="PKR released into the program's fund")],
         reference: Annotated[str, typer.Option("--reference", help="the treasury's release order")],
         actor: Actor = "cli") -> None:
    """Record money released into a program's fund (a ledger entry); the same reference again records nothing."""
    from isps.payments import payroll as pr
    _run(lambda s: pr.release_funds(s, program, amount, reference, actor))


@benefits_app.command("approve-payroll")
def approve_payroll(payroll_id: int, actor: Actor = "cli") -> None:
    """A second person approves a draft payroll; the program's fund must hold its total."""
    from isps.payments import payroll as pr
    _run(lambda s: pr.payroll_summary(s, pr.approve(s, payroll_id, actor).id))


@benefits_app.command("export")
def export(payroll_id: int, folder: Path = Path("var/payments")) -> None:
    """Write pain.001 and CSV files for the instructions not yet sent."""
    from isps.payments import payroll as pr
    _run(lambda s: pr.export(s, payroll_id, folder))


@benefits_app.command("reconcile")
def reconcile(file: Path, actor: Actor = "cli") -> None:
    """Import a bank status file (CSV, pain.002, camt.054). A file is imported once: the same file
    again is refused (exit 1) naming the import that applied it, and changes nothing. Lines that
    cannot apply are listed with their reasons (``rejected_lines``)."""
    from isps.payments import payroll as pr
    _run(lambda s: pr.reconcile(s, file.read_bytes(), file.name, actor))


@benefits_app.command("retry")
def retry(payroll_id: int) -> None:
    """Retry failed and reversed payments on the next channel."""
    from isps.payments import payroll as pr
    _run(lambda s: {"retried": pr.retry_failed(s, payroll_id)})


@benefits_app.command("return-unclaimed")
def return_unclaimed(days: Annotated[int, typer.Option(help="unclaimed for more than this many days")] = 90) -> None:
    """Return to each program's fund the money of payments not collected within DAYS days (a ledger entry)."""
    from isps.payments import payroll as pr
    _run(lambda s: {"returned": pr.return_unclaimed(s, None, days)})


@benefits_app.command("ledger")
def ledger(program: Optional[str] = None) -> None:
    """Account balances and whether the ledger balances."""
    from isps.payments import payroll as pr
    _run(lambda s: pr.ledger_check(s, program))


@benefits_app.command("pickup")
def pickup_cmd(payroll_id: int, district_id: int, first_day: str, slots_per_day: int = 8, days: int = 5,
               seed_outlets: bool = typer.Option(False, help="create demo outlets if the district has none")) -> None:
    """Pickup slots for a district's cash-outlet beneficiaries (capacity, same tehsil first)."""
    from isps.payments import pickup
    def go(s):
        if seed_outlets:
            pickup.seed_outlets(s, district_id)
        return pickup.schedule(s, payroll_id, district_id, date.fromisoformat(first_day),
                               slots_per_day=slots_per_day, days=days)
    _run(go)



"""``isps applications``: the One Window's applications from the command line — escalate the late
steps (what the worker runs), and a receipt's status as a citizen would be told it. Thin: each
command calls one function of :mod:`isps.citizen.applications`.

Registered with ``app.add_typer(applications_app, name="applications")`` in :mod:`isps.cli.main`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import typer

from isps.cli.common import Table, _engine, _fail, console
from isps.db import transaction

applications_app = typer.Typer(help="One Window applications: escalation of late steps, status by receipt.",
                               no_args_is_help=True)


@applications_app.command("escalate")
def escalate_cmd(at: Annotated[Optional[str], typer.Option(help="the time to judge lateness at, "
                                                           "YYYY-MM-DDTHH:MM (default now)")] = None) -> None:
    """Move every open step past its due time one level up (set-based; running it twice does nothing more)."""
    from isps.citizen import applications

    try:
        now = datetime.fromisoformat(at) if at else datetime.now()
    except ValueError:
        _fail(f"--at '{at[:30]}' is not a time written YYYY-MM-DDTHH:MM")
    with transaction(_engine()) as s:
        moved = applications.escalate_late(s, now)
    console.print(f"{moved} late step{'s' if moved != 1 else ''} escalated")


@applications_app.command("status")
def status_cmd(receipt: Annotated[str, typer.Argument(help="the receipt number, e.g. OW18")]) -> None:
    """What a citizen holding the receipt is told (no personal data)."""
    from isps.citizen import applications, receipts

    try:
        kind, record = receipts.parse(receipt)
    except receipts.ReceiptError as exc:
        _fail(str(exc))
    if kind != "application":
        _fail(f"{receipt.strip()[:20]} is a grievance's receipt, not an application's")
    with transaction(_engine()) as s:
        state = applications.status_of(s, record)
    if state is None:
        _fail(f"no application has the receipt {receipt.strip()[:20]}")
    table = Table("field", "value")
    for key, value in state.items():
        table.add_row(key, "—" if value is None else str(value))
    console.print(table)

"""``isps field``: field work from the command line — devices (add, list, revoke), assigning work by
area, progress, applying received submissions (what the worker does), and the forms (list them, write
their XForms to a folder). Thin: each command calls one function of :mod:`isps.fieldwork`.

Commands act as ``--as USER`` (that user's role and district scope) or, without it, as the
administrator ``cli``. Registered with ``app.add_typer(field_app, name="field")`` in :mod:`isps.cli.main`.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from sqlalchemy import select

from isps.access.service import Principal
from isps.cli.common import Table, _engine, _fail, console
from isps.db import transaction

field_app = typer.Typer(help="Field work: devices, assignments, progress, applying submissions, the forms.",
                        no_args_is_help=True)
devices_app = typer.Typer(help="Devices registered to field users (ODK Collect, KoboCollect, laptops).",
                          no_args_is_help=True)
field_app.add_typer(devices_app, name="devices")

As = Annotated[Optional[str], typer.Option("--as", help="act as this user (their role and district)")]


def _who(session, username: str | None) -> Principal:
    if not username:
        return Principal("cli", "administrator", None)
    from isps.access.models import User

    u = session.scalar(select(User).where(User.username == username))
    if u is None or not u.active:
        _fail(f"--as: no active user '{username[:40]}'")
    return Principal(u.username, u.role, u.district_id)


@devices_app.command("add")
def devices_add(code: Annotated[str, typer.Argument(help="the device code, e.g. kasur-07 (the digest user name)")],
                user: Annotated[str, typer.Option(help="the field user who carries it")],
                label: Annotated[str, typer.Option(help="what the device is, e.g. 'Samsung A12, team 2'")] = "",
                url: Annotated[str, typer.Option(help="this server's address as the phones reach it")] =
                "http://localhost:8000", as_: As = None) -> None:
    """Register a device; prints its token (once), the server address for Collect and its settings JSON."""
    from isps.fieldwork import devices

    with transaction(_engine()) as s:
        try:
            device, token = devices.register_device(s, _who(s, as_), code=code, label=label or code, username=user)
        except (devices.DeviceError, PermissionError) as exc:
            _fail(str(exc))
        settings = devices.collect_settings(device, token, url)
    console.print(f"device {device.code} registered to {device.username} (district {device.district_id})")
    console.print(f"token (shown once): {token}")
    console.print(f"Collect server address: {settings['general']['server_url']}")
    console.print(json.dumps(settings, indent=1), markup=False, highlight=False)


@devices_app.command("list")
def devices_list(district: Annotated[Optional[int], typer.Option(help="one district's devices")] = None,
                 as_: As = None) -> None:
    """Registered devices, newest first."""
    from isps.fieldwork import lists

    with transaction(_engine()) as s:
        who = _who(s, as_)
        rows = lists.list_devices(s, district_id=who.scope if who.scope is not None else district, limit=500)
    table = Table("id", "code", "label", "user", "district", "active", "registered", "last seen")
    for d in rows:
        table.add_row(str(d["id"]), d["code"], d["label"], d["username"], str(d["district_id"]),
                      "yes" if d["active"] else "revoked", d["registered_at"], d["last_seen_at"] or "—")
    console.print(table)


@devices_app.command("revoke")
def devices_revoke(device_id: int, as_: As = None) -> None:
    """Revoke a device: its token and digest password stop working at once."""
    from isps.fieldwork import devices

    with transaction(_engine()) as s:
        try:
            d = devices.revoke_device(s, _who(s, as_), device_id)
        except (devices.DeviceError, PermissionError) as exc:
            _fail(str(exc))
        console.print(f"device {d.code} of {d.username} revoked")


@field_app.command("assign")
def assign_cmd(kind: Annotated[str, typer.Argument(help="survey | visit | site")],
               enumerator: Annotated[str, typer.Argument(help="the field user given the work")],
               tehsil: Annotated[Optional[int], typer.Option(help="every household of a tehsil")] = None,
               union_council: Annotated[Optional[str], typer.Option(help="a union council (name or id)")] = None,
               household: Annotated[Optional[list[int]], typer.Option(help="a chosen household (repeat)")] = None,
               application: Annotated[Optional[int], typer.Option(help="the application to visit")] = None,
               site: Annotated[Optional[int], typer.Option(help="the distribution site")] = None,
               due: Annotated[Optional[str], typer.Option(help="due on, YYYY-MM-DD")] = None,
               as_: As = None) -> None:
    """Give work to an enumerator (set-based by area; a household already assigned moves to them)."""
    from isps.fieldwork import assignments

    try:
        due_on = date.fromisoformat(due) if due else None
    except ValueError:
        _fail(f"--due '{due[:20]}' is not a date written YYYY-MM-DD")
    with transaction(_engine()) as s:
        try:
            n = assignments.assign(s, _who(s, as_), kind=kind, enumerator=enumerator, household_ids=household or None,
                                   tehsil_id=tehsil, union_council=union_council, application_id=application,
                                   site_id=site, due_on=due_on)
        except (assignments.AssignmentError, PermissionError) as exc:
            _fail(str(exc))
    console.print(f"{n} {kind} assignment{'s' if n != 1 else ''} given to {enumerator}")


@field_app.command("progress")
def progress_cmd(by: Annotated[str, typer.Option(help="enumerator | area")] = "enumerator",
                 kind: Annotated[Optional[str], typer.Option(help="survey | visit | site")] = None,
                 district: Annotated[Optional[int], typer.Option(help="one district (province-wide users)")] = None,
                 as_: As = None) -> None:
    """What was assigned, is still open or late, collected, accepted and refused."""
    from isps.fieldwork import assignments

    with transaction(_engine()) as s:
        try:
            rows = assignments.progress(s, _who(s, as_), by=by, kind=kind, district_id=district)
        except assignments.AssignmentError as exc:
            _fail(str(exc))
    keys = ["enumerator"] if by == "enumerator" else ["tehsil", "union_council"]
    table = Table(*keys, "assigned", "open", "late", "collected", "accepted", "refused")
    for r in rows:
        table.add_row(*[str(r[k] or "—") for k in keys], *[str(r[k]) for k in ("assigned", "open", "late", "collected",
                                                                            "accepted", "refused")])
    console.print(table)


@field_app.command("apply")
def apply_cmd(limit: Annotated[Optional[int], typer.Option(help="at most this many submissions")] = None) -> None:
    """Apply every received submission (surveys as set-based batches); what the worker's task does."""
    from isps.fieldwork import apply

    out = apply.apply_pending(_engine(), limit=limit)
    console.print(f"{out.get('accepted', 0)} submissions accepted, {out.get('refused', 0)} refused "
                  "(the refused are kept with their reason: /field/submissions?status=refused)")


@field_app.command("forms")
def forms_cmd(write: Annotated[Optional[Path], typer.Option(help="write each form's XForm to this folder")] = None
              ) -> None:
    """The forms ISPS serves (id, job, version, title), and optionally their XForms as files."""
    from isps.fieldwork import forms

    table = Table("form id", "job", "version", "title", "title (Urdu)", "media", "md5")
    for f in forms.catalogue():
        table.add_row(f.form_id, f.job, f.version, f.title, f.title_ur, ", ".join(f.media) or "—", f.md5)
        if write is not None:
            write.mkdir(parents=True, exist_ok=True)
            (write / f"{f.form_id}.xml").write_bytes(f.xml)
    console.print(table)
    if write is not None:
        console.print(f"XForms written to {write}")


__all__ = ["field_app"]

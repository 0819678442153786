"""``isps partners``: register DCI partners, their signing keys and data-sharing agreements."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from isps.db import transaction

partners_app = typer.Typer(help="DCI partners: registration, signing keys, data-sharing agreements, consents.",
                           no_args_is_help=True)


def _partner_id(s, sender_id: str) -> int:
    from sqlalchemy import select

    from isps.cli.common import _fail
    from isps.interop.dci.models import DciPartner

    pid = s.scalar(select(DciPartner.id).where(DciPartner.sender_id == sender_id))
    if pid is None:
        _fail(f"there is no partner '{sender_id}'; register it first")
    return pid


def _cli(actor: str = "cli"):
    """Whoever runs the CLI on the server is trusted as an administrator; audited under ``actor``."""
    from isps.access.service import Principal

    return Principal(actor[:60] or "cli", "administrator", None)


@partners_app.command("register")
def register(sender_id: str, name: Annotated[str, typer.Option()],
             callback: Annotated[Optional[str], typer.Option(help="base URL for on-search and notify")] = None,
             test: Annotated[bool, typer.Option("--test", help="a test partner (conformance suite); needs "
                                                "ISPS_DCI_TEST_PARTNERS=1, never in production")] = False,
             accept_unsigned: Annotated[bool, typer.Option("--accept-unsigned", help="a test partner's "
                                                           "signatures are not checked")] = False) -> None:
    """Register a partner; prints its OAuth2 client id and secret (shown once)."""
    from isps.cli.common import _engine, _fail, console
    from isps.interop.dci import partners

    try:
        with transaction(_engine()) as s:
            partner, secret = partners.register(s, _cli(), "cli", sender_id, name, callback, test, accept_unsigned)
    except partners.PartnerError as exc:
        _fail(str(exc))
    if test:
        console.print("TEST PARTNER: served only while ISPS_DCI_TEST_PARTNERS=1, every request marked in the audit"
                      + ("; its signatures are NOT checked" if accept_unsigned else ""), markup=False)
    console.print(f"registered {sender_id}: client_id {partner.client_id}")
    console.print("client_secret (shown once; store it now):")
    # on its own line and never wrapped, whatever the terminal's width: it is copied whole
    console.print(secret, soft_wrap=True, markup=False, highlight=False)


@partners_app.command("key")
def key(sender_id: str, kid: Annotated[str, typer.Option()], pem: Annotated[Path, typer.Option(exists=True)],
        algorithm: Annotated[str, typer.Option(help="ed25519 or rsa-sha256")] = "ed25519") -> None:
    """Register a partner's public key, used to verify its message signatures."""
    from isps.cli.common import _engine, _fail, console
    from isps.interop.dci import partners

    try:
        with transaction(_engine()) as s:
            partners.add_key(s, _partner_id(s, sender_id), kid, algorithm, pem.read_text())
    except partners.PartnerError as exc:
        _fail(str(exc))
    console.print(f"key {kid} ({algorithm}) registered for {sender_id}")


@partners_app.command("agreement")
def agreement(sender_id: str, reference: Annotated[str, typer.Option()], purpose: Annotated[str, typer.Option()],
              fields: Annotated[str, typer.Option(help="comma-separated fields the partner may receive")],
              consent: Annotated[bool, typer.Option("--consent/--no-consent", help="consent required")] = True,
              actor: Annotated[str, typer.Option()] = "cli") -> None:
    """Record the data-sharing agreement in force for a partner (replaces the previous one)."""
    from isps.cli.common import _engine, _fail, console
    from isps.interop.dci import partners

    try:
        with transaction(_engine()) as s:
            row = partners.make_agreement(s, _cli(actor), "cli", _partner_id(s, sender_id), reference, purpose,
                                          [f.strip() for f in fields.split(",") if f.strip()], consent)
    except partners.PartnerError as exc:
        _fail(str(exc))
    console.print(f"agreement {row.reference} for {sender_id}: {', '.join(row.fields)}"
                  f"{' (consent required)' if row.consent_required else ''}")


@partners_app.command("consent")
def consent(sender_id: str, identifier: Annotated[str, typer.Argument(help="the person's CNIC or B-form number")],
            purpose: Annotated[Optional[str], typer.Option(help="default: the purpose of the partner's agreement")] = None,
            expires: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="YYYY-MM-DD")] = None,
            evidence: Annotated[Optional[str], typer.Option(help="where the signed consent is kept")] = None,
            actor: Annotated[str, typer.Option()] = "cli") -> None:
    """Record a person's consent to share their record with a partner (agreements that require consent)."""
    from isps.cli.common import _engine, _fail, console
    from isps.interop.dci import partners

    try:
        with transaction(_engine()) as s:
            row, masked = partners.consent_at_counter(s, _cli(actor), "cli", _partner_id(s, sender_id), identifier,
                                                      purpose=purpose, expires_on=expires.date() if expires else None,
                                                      evidence=evidence)
    except partners.PartnerError as exc:
        _fail(str(exc))
    console.print(f"consent {row.id} recorded: {masked} for {sender_id} ({row.purpose})")


@partners_app.command("rotate")
def rotate(sender_id: str) -> None:
    """A new client secret for a partner (shown once); the old one stops working at once."""
    from isps.cli.common import _engine, _fail, console
    from isps.interop.dci import partners

    try:
        with transaction(_engine()) as s:
            secret = partners.rotate_secret(s, _cli(), "cli", _partner_id(s, sender_id))
    except partners.PartnerError as exc:
        _fail(str(exc))
    console.print(f"new client_secret for {sender_id} (shown once; store it now):")
    console.print(secret, soft_wrap=True, markup=False, highlight=False)


@partners_app.command("revoke")
def revoke(sender_id: str) -> None:
    """Revoke a partner: no new token, no request served (restore it from the web's partner page)."""
    from isps.cli.common import _engine, console
    from isps.interop.dci import partners

    with transaction(_engine()) as s:
        partners.set_partner_active(s, _cli(), "cli", _partner_id(s, sender_id), False)
    console.print(f"{sender_id} revoked")

"""``isps sms``: the message queue from the command line: send what is due, hand the short code a
text as a gateway would (the file gateway's inbound door), run the loopback SMSC for the demo,
queue the pickup and payment messages, requeue a failed message after checking, opt a phone out
or in. The gateway is the one ``ISPS_SMS_GATEWAY`` names (file by default: var/sms-outbox.jsonl).

Register with ``app.add_typer(sms_app, name="sms")`` in :mod:`isps.cli.main`.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Annotated, Optional

import typer

from isps.db import transaction

sms_app = typer.Typer(help="SMS: send the queue, receive a text, run a loopback SMSC.", no_args_is_help=True)


def _gateway():
    from isps.cli.common import _fail
    from isps.messaging.gateways import from_env

    try:
        return from_env()
    except ValueError as exc:
        _fail(str(exc))


@sms_app.command("send-due")
def send_due_cmd(limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
                 every: Annotated[float, typer.Option(help="repeat every N seconds until stopped (0: once)")] = 0) -> None:
    """Send the messages that are due (retries included); settle receipts and unknown outcomes."""
    from isps.cli.common import _engine, console
    from isps.messaging import dispatch

    engine, gateway = _engine(), _gateway()
    try:
        while True:
            counts = dispatch.send_due(engine, gateway, limit=limit)
            console.print(" ".join(f"{k} {v}" for k, v in counts.items()))
            if not every:
                break
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    finally:
        gateway.close()


@sms_app.command("receive")
def receive_cmd(text: Annotated[str, typer.Argument(help="what the citizen texted")],
                phone: Annotated[str, typer.Option(help="the citizen's phone, e.g. 03001234567")],
                ref: Annotated[Optional[str], typer.Option(help="the gateway's id of the text (default: new)")] = None) -> None:
    """A citizen's text to the short code, as a gateway hands it over: stored, answered, the reply sent."""
    import uuid

    from isps.cli.common import _engine, _fail, console
    from isps.messaging import dispatch, inbound
    from isps.messaging.phones import PhoneError, normalise
    from isps.services import sms

    try:
        normalise(phone)
    except PhoneError as exc:
        _fail(str(exc))
    engine = _engine()
    with transaction(engine) as s:
        result = inbound.receive(s, phone=phone, text=text, gateway_ref=ref or f"cli:{uuid.uuid4().hex}",
                                 received_at=datetime.now(), handler=sms.handler())
        reply = result.reply
        reply_id, reply_text, reply_status = (reply.id, reply.text, reply.status) if reply else (None, None, None)
    console.print(f"inbound {result.inbound_id}: {result.outcome}" + (" (received before)" if result.duplicate else ""))
    if reply_id is None:
        console.print("no reply")
        return
    sent = None
    if reply_status == "queued":
        gateway = _gateway()
        try:
            sent = dispatch.send_one(engine, gateway, reply_id)
        finally:
            gateway.close()
    console.print(f"reply {reply_id} ({sent or reply_status}): {reply_text}")


@sms_app.command("smsc")
def smsc_cmd(port: Annotated[int, typer.Option(min=1, max=65535)] = 2775,
             host: Annotated[str, typer.Option()] = "127.0.0.1",
             system_id: Annotated[str, typer.Option(help="the ESME's system id it accepts")] = "isps",
             password: Annotated[str, typer.Option(help="the ESME's password it accepts (8 characters at most)")] = "isps2026") -> None:
    """Run the loopback SMSC (an SMPP 3.4 message centre for the demo and tests) in the foreground.
    Point ISPS at it with ISPS_SMS_GATEWAY=smpp ISPS_SMPP_HOST=127.0.0.1 ISPS_SMPP_PORT=<port>
    ISPS_SMPP_SYSTEM_ID=<system id> ISPS_SMPP_PASSWORD=<password>."""
    from isps.cli.common import console
    from isps.messaging.smsc import LoopbackSMSC

    smsc = LoopbackSMSC(host, port, system_id=system_id, password=password).start()
    console.print(f"loopback SMSC listening on {host}:{smsc.port} (system id {system_id}); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        smsc.close()


@sms_app.command("queue-pickup")
def queue_pickup_cmd(payroll_id: int, lang: Annotated[str, typer.Option(help="en or ur")] = "en") -> None:
    """Queue the pickup-slot message of every scheduled beneficiary of a payroll (once each)."""
    from isps.cli.common import _engine, _fail, console
    from isps.messaging import producers

    if lang not in ("ur", "en"):
        _fail("--lang must be ur or en")
    with transaction(_engine()) as s:
        counts = producers.pickup_counts(s, payroll_id, lang)
    console.print(f"queued {counts['queued']}, queued before {counts['already']}, no mobile {counts['no_phone']}")


@sms_app.command("queue-credited")
def queue_credited_cmd(since: Annotated[str, typer.Option(help="paid on or after this day, YYYY-MM-DD")],
                       lang: Annotated[str, typer.Option(help="ur or en")] = "ur") -> None:
    """Queue a payment message for every payment a bank confirmed paid since a day (once each)."""
    from isps.cli.common import _engine, _fail, console
    from isps.messaging import producers

    try:
        day = date.fromisoformat(since)
    except ValueError:
        _fail(f"--since: '{since}' is not a date written YYYY-MM-DD")
    if lang not in ("ur", "en"):
        _fail("--lang must be ur or en")
    with transaction(_engine()) as s:
        counts = producers.credited_counts(s, day, lang)
    console.print(f"queued {counts['queued']}, queued before {counts['already']}, no mobile {counts['no_phone']}")


@sms_app.command("requeue")
def requeue_cmd(message_id: int) -> None:
    """Send a failed message again (after checking that the citizen did not get it)."""
    from isps.cli.common import _engine, _fail, console
    from isps.messaging import queue

    with transaction(_engine()) as s:
        if not queue.requeue(s, message_id):
            _fail(f"message {message_id} is not a failed message: nothing was changed")
    console.print(f"message {message_id} queued again")


@sms_app.command("opt")
def opt_cmd(phone: str, choice: Annotated[str, typer.Argument(help="out or in")]) -> None:
    """Opt a phone out of ISPS messages, or back in (as a citizen's STOP or START would)."""
    from isps.cli.common import _engine, _fail, console
    from isps.messaging import optout
    from isps.messaging.phones import PhoneError, mask

    if choice not in ("out", "in"):
        _fail("choose out or in")
    try:
        with transaction(_engine()) as s:
            changed = (optout.opt_out if choice == "out" else optout.opt_in)(s, phone, "cli")
    except PhoneError as exc:
        _fail(str(exc))
    from isps.messaging.phones import normalise

    console.print(f"{mask(normalise(phone))} opted {choice}" + ("" if changed else " already"))

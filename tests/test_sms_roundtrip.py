"""The short code over a real SMPP 3.4 connection on loopback: the loopback SMSC (the tests' peer),
the SMPP gateway bound to it as a transceiver, wired as ``isps worker`` wires it
(``messaging.dispatch.callbacks``: each inbound text stored and answered by
``messaging.inbound.receive(handler=citizen.shortcode.answer)``, the reply sent at once). A
simulated phone texts; what it receives is checked. Both backends."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
from sqlalchemy import func, select

from isps.citizen import shortcode
from isps.citizen.receipts import make as receipt_of
from isps.db import transaction
from isps.labour.models import LabourReport
from isps.messaging import dispatch, inbound
from isps.messaging.gateways.smpp import SmppGateway
from isps.messaging.models import Inbound, Message
from isps.messaging.smsc import LoopbackSMSC
from isps.registry import cnic as cnic_rules
from isps.registry.models import Individual

STRANGER = "923551234567"


@pytest.fixture
def line(province):
    """The SMSC and the gateway answering over it with the short code: ``(smsc, gateway)``."""
    with LoopbackSMSC() as smsc:
        gateway = SmppGateway("127.0.0.1", smsc.port, smsc.system_id, smsc.password)
        gateway.start(*dispatch.callbacks(province, gateway, shortcode.answer))
        try:
            assert smsc.wait_bound(10)
            yield smsc, gateway
        finally:
            gateway.close()


def _holder(s) -> Individual:
    return s.scalars(select(Individual).where(
        Individual.cnic.is_not(None), Individual.phone.is_not(None), Individual.date_of_death.is_(None),
        Individual.phone.in_(select(Individual.phone).group_by(Individual.phone).having(func.count() == 1)))
        .order_by(Individual.id)).first()


def _text(smsc, phone: str, text: str, n: int) -> str:
    """Text from ``phone`` and wait for the ``n``-th message it receives: that message's text."""
    smsc.inject(phone, text)
    got = smsc.wait_for(phone, n, timeout=60)
    assert len(got) >= n, f"no reply to {text!r} from {phone} within a minute"
    return got[n - 1].text


def test_a_cnic_texted_over_smpp_gets_the_households_status(line, province):
    smsc, _ = line
    with transaction(province) as s:
        p = _holder(s)
        phone, number = "92" + p.phone[1:], p.cnic
        expected = shortcode.answer(s, phone, number, datetime.now())  # what the short code says (not stored)
        s.rollback()
    reply = _text(smsc, phone, cnic_rules.formatted(number), 1)
    assert reply == expected and reply.startswith(f"CNIC {cnic_rules.mask(number)}: registered.")
    urdu = _text(smsc, phone, "شناختی " + number, 2)
    assert "رجسٹرڈ" in urdu and cnic_rules.mask(number) in urdu
    with transaction(province) as s:
        rows = s.scalars(select(Inbound).where(Inbound.phone == phone).order_by(Inbound.id)).all()
    assert [r.outcome for r in rows] == ["answered", "answered"]
    assert all(status in ("sent", "delivered") for status in _settled(province, phone))


def _settled(engine, phone: str, timeout: float = 10.0) -> list[str]:
    """The statuses of the messages to ``phone`` once none is still being sent (the SMSC has the
    text before the sender records it as sent)."""
    deadline = time.monotonic() + timeout
    while True:
        with transaction(engine) as s:
            statuses = list(s.scalars(select(Message.status).where(Message.phone == phone).order_by(Message.id)))
        if not {"queued", "sending"} & set(statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.1)


def test_bad_input_over_smpp_gets_clear_replies_and_stores_nothing_wrong(line, province):
    smsc, _ = line
    with transaction(province) as s:
        p = _holder(s)
        phone, number = "92" + p.phone[1:], p.cnic
        reports = s.scalar(select(func.count()).select_from(LabourReport))
    assert _text(smsc, phone, "35202-123456-1", 1).startswith("That CNIC has 12 digits.")
    assert _text(smsc, phone, "EMPLOY ME PLEASE", 2) == shortcode.say("en", "help")
    assert _text(smsc, phone, "OW10237", 3).startswith("OW10237 is not a valid receipt number")
    unknown = _text(smsc, phone, receipt_of("grievance", 99999), 4)
    assert unknown == f"No application or grievance has receipt {receipt_of('grievance', 99999)}. Please check the number."
    assert _text(smsc, STRANGER, number, 1) == shortcode.say("en", "not_here", cnic=cnic_rules.mask(number))
    assert _text(smsc, phone, "EMP flying", 5) == shortcode.say("en", "emp.status_missing")
    with transaction(province) as s:
        assert s.scalar(select(func.count()).select_from(LabourReport)) == reports
        outcomes = [r.outcome for r in s.scalars(select(Inbound).order_by(Inbound.id))]
    assert outcomes == ["answered"] * 6


def test_a_flood_from_one_number_is_answered_up_to_the_limit_then_told_once_then_silenced(line, province):
    smsc, _ = line
    with transaction(province) as s:
        p = _holder(s)
        phone, number = "92" + p.phone[1:], p.cnic
    for i in range(inbound.RATE_LIMIT):
        _text(smsc, phone, number, i + 1)
    told = _text(smsc, phone, number, inbound.RATE_LIMIT + 1)
    assert "CNIC" not in told  # the "too many messages" reply, not a status
    for _ in range(5):
        smsc.inject(phone, number)
    threading.Event().wait(1.5)
    assert len(smsc.texts_to(phone)) == inbound.RATE_LIMIT + 1
    with transaction(province) as s:
        outcomes = [r.outcome for r in s.scalars(select(Inbound).where(Inbound.phone == phone).order_by(Inbound.id))]
        reads = s.scalar(select(func.count()).select_from(Inbound).where(Inbound.phone == phone))
    assert outcomes.count("answered") == inbound.RATE_LIMIT and outcomes.count("limited") == 1
    assert outcomes.count("silenced") == 5 and reads == inbound.RATE_LIMIT + 6

"""SMS over a real SMPP 3.4 connection on loopback: ISPS's SMPP gateway (smpplib, an ESME bound as
a transceiver) against the loopback SMSC the test starts. A citizen's text goes in as deliver_sm,
is stored and answered through the queue, and the answer comes back as submit_sm; Urdu survives
UCS-2, a long text is split and joined, receipts settle the messages, a throttled submission is
retried, and a dropped connection is re-bound."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.messaging import dispatch, queue
from isps.messaging.gateways.smpp import SmppGateway
from isps.messaging.models import Message
from isps.messaging.smsc import LoopbackSMSC

URDU_REPLY = "ISPS: آپ کا پیغام ملا۔ آپ کی درخواست زیرِ غور ہے، فیصلہ ہونے پر آپ کو پیغام بھیجا جائے گا۔ " * 2


def echo(session, phone, body, at):
    if body.startswith("long"):
        return URDU_REPLY
    return f"ISPS: {body}"


@pytest.fixture
def line(engine):
    smsc = LoopbackSMSC(system_id="isps", password="pw-8123").start()
    gw = SmppGateway("127.0.0.1", smsc.port, "isps", "pw-8123", timeout=3, enquire_every=1.0)
    gw.start(*dispatch.callbacks(engine, gw, echo))
    assert smsc.wait_bound()
    yield engine, smsc, gw
    gw.close()
    smsc.close()


def wait_until(check, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


def statuses(engine, gw=None) -> dict[str, int]:
    """The messages by status (after a dispatcher pass, as the worker makes every second, when
    ``gw`` is given: a receipt that outran its message's update is applied by the next pass)."""
    if gw is not None:
        dispatch.send_due(engine, gw)
    with transaction(engine) as s:
        return dict(s.execute(text("SELECT status, COUNT(*) FROM sms_message GROUP BY status")).all())


def test_a_text_is_answered_over_smpp_in_urdu_and_the_receipt_settles_it(line):
    engine, smsc, gw = line
    smsc.inject("923001234567", "شناختی کارڈ 35202")
    got = smsc.wait_for("923001234567")
    assert [s.text for s in got] == ["ISPS: شناختی کارڈ 35202"]
    assert got[0].data_coding == 8 and got[0].source == "8123"
    assert wait_until(lambda: statuses(engine, gw) == {"delivered": 1})
    with transaction(engine) as s:
        m = s.query(Message).one()
        assert m.kind == "reply" and m.gateway == "smpp" and m.gateway_id == got[0].message_id
        assert s.execute(text("SELECT text, phone FROM sms_inbound")).one() == ("شناختی کارڈ 35202", "923001234567")


def test_a_long_urdu_reply_is_split_into_parts_and_joined_whole(line):
    engine, smsc, gw = line
    smsc.inject("923011111111", "long please")
    got = smsc.wait_for("923011111111")
    assert got and got[0].text == URDU_REPLY.strip() and got[0].parts == 3 and got[0].data_coding == 8
    # one receipt (asked for on the last part only) settles the one message
    assert wait_until(lambda: statuses(engine, gw) == {"delivered": 1})


def test_a_long_urdu_text_from_a_phone_is_joined_before_it_is_answered(line):
    engine, smsc, gw = line
    complaint = "شکایت: ایجنٹ نے میری رقم میں سے ایک ہزار روپے کاٹ لیے اور رسید بھی نہیں دی۔ " * 3
    smsc.inject("923081111111", complaint)
    got = smsc.wait_for("923081111111")
    assert len(got) == 1 and got[0].text == "ISPS: " + complaint.strip()
    with transaction(engine) as s:
        assert s.execute(text("SELECT text FROM sms_inbound")).scalars().all() == [complaint.strip()]


def test_plain_text_goes_in_the_gsm_alphabet(line):
    engine, smsc, gw = line
    smsc.inject("923021111111", "STATUS [OW10236] ok?")
    got = smsc.wait_for("923021111111")
    assert got[0].text == "ISPS: STATUS [OW10236] ok?" and got[0].data_coding == 0


def test_stop_over_smpp_confirms_and_suppresses_later_messages(line):
    engine, smsc, gw = line
    smsc.inject("923031111111", "STOP")
    got = smsc.wait_for("923031111111")
    assert "START" in got[0].text
    with transaction(engine) as s:
        later = queue.enqueue(s, kind="paid", phone="923031111111", text="paid", key="paid:1")
        assert later.status == "suppressed"
    assert dispatch.send_due(engine, gw)["claimed"] == 0


def test_queued_messages_go_out_with_retries_when_the_smsc_throttles(line):
    engine, smsc, gw = line
    with transaction(engine) as s:
        ids = [queue.enqueue(s, kind="status", phone=f"0300555000{k}", text=f"ISPS: message {k}", key=f"m{k}").id
               for k in range(3)]
    smsc.refuse(1)  # 0x58 throttled: temporary
    first = dispatch.send_due(engine, gw)
    assert first == {**first, "claimed": 3, "sent": 2, "retried": 1}
    later = datetime.now() + timedelta(minutes=1)
    assert dispatch.send_due(engine, gw, now=later)["sent"] == 1
    assert wait_until(lambda: statuses(engine, gw) == {"delivered": 3})
    assert sorted(s.phone for s in smsc.sent) == ["923005550000", "923005550001", "923005550002"]
    with transaction(engine) as s:
        assert [s.get(Message, i).attempts for i in ids].count(2) == 1


def test_undeliverable_receipt_and_silence_are_recorded(line):
    engine, smsc, gw = line
    smsc.undeliverable.add("923045550000")
    with transaction(engine) as s:
        a = queue.enqueue(s, kind="status", phone="923045550000", text="ISPS: a", key="a").id
    dispatch.send_due(engine, gw)
    assert wait_until(lambda: statuses(engine, gw) == {"undeliverable": 1})
    smsc.mute()  # the SMSC takes the next one and never answers: it may have been delivered
    with transaction(engine) as s:
        b = queue.enqueue(s, kind="status", phone="923045550001", text="ISPS: b", key="b").id
    assert dispatch.send_due(engine, gw)["failed"] == 1
    assert gw._waiting == {}  # nobody is left waiting for the answer that never came
    with transaction(engine) as s:
        m = s.get(Message, b)
        assert m.status == "failed" and "not resent" in m.error and s.get(Message, a).error


def test_the_gateway_rebinds_after_the_connection_drops(line):
    engine, smsc, gw = line
    smsc.drop()
    assert wait_until(lambda: gw.reconnects >= 1 and smsc.wait_bound(0.1), timeout=15)
    smsc.inject("923061111111", "again")
    assert smsc.wait_for("923061111111")[0].text == "ISPS: again"


def test_an_idle_line_is_kept_alive_with_enquire_link(line):
    engine, smsc, gw = line
    assert wait_until(lambda: smsc.enquire_links >= 2, timeout=6)  # every second when idle (the fixture's setting)
    smsc.inject("923071111111", "still there?")
    assert smsc.wait_for("923071111111")[0].text == "ISPS: still there?"


def test_a_sender_only_binds_as_transmitter_and_receipts_reach_the_listener(line):
    engine, smsc, gw = line
    sender = SmppGateway("127.0.0.1", smsc.port, "isps", "pw-8123", timeout=3)  # as `isps sms send-due`
    try:
        with transaction(engine) as s:
            queue.enqueue(s, kind="status", phone="923091111111", text="ISPS: from the sender", key="tx1")
        assert dispatch.send_due(engine, sender)["sent"] == 1
        for k in range(6):  # texts from phones go to the listening worker only, never to the sender
            smsc.inject(f"9230911112{k:02d}", "hello")
        for k in range(6):
            assert smsc.wait_for(f"9230911112{k:02d}")[0].text == "ISPS: hello"
        assert wait_until(lambda: statuses(engine, gw).get("delivered") == 7)  # its receipt came to the worker
    finally:
        sender.close()


def test_a_gateway_started_before_its_message_centre_binds_when_it_comes(engine):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gw = SmppGateway("127.0.0.1", port, "isps", "pw", timeout=2)
    gw.start(*dispatch.callbacks(engine, gw, echo))  # nothing listens yet: no error, tried again
    smsc = LoopbackSMSC(port=port, password="pw").start()
    try:
        assert smsc.wait_bound(10)
        smsc.inject("923101111111", "late")
        assert smsc.wait_for("923101111111")[0].text == "ISPS: late"
    finally:
        gw.close()
        smsc.close()


def test_a_wrong_password_is_refused_at_bind(engine):
    from isps.messaging.gateways import GatewayError

    with LoopbackSMSC(password="right") as smsc:
        gw = SmppGateway("127.0.0.1", smsc.port, "isps", "wrong", timeout=2)
        with pytest.raises(GatewayError, match="Invalid Password|bind"):
            gw.connect()
        gw.close()


def test_fifty_phones_at_once_each_get_their_own_answer(line):
    engine, smsc, gw = line
    phones = [f"92300{7000000 + k}" for k in range(50)]
    t0 = time.monotonic()
    for p in phones:
        smsc.inject(p, f"35202{p[-4:]}")
    for p in phones:
        got = smsc.wait_for(p, timeout=30)
        assert [s.text for s in got] == [f"ISPS: 35202{p[-4:]}"]
    assert time.monotonic() - t0 < 30


def test_the_concatenation_header_is_read_alike_by_gateway_and_message_centre():
    from isps.messaging.smsc import concatenation

    assert concatenation(bytes([5, 0x00, 3, 0x2A, 3, 2]) + b"abc") == (0x2A, 3, 2, b"abc")          # 8-bit reference
    assert concatenation(bytes([6, 0x08, 4, 0x01, 0x02, 2, 1]) + b"xy") == (0x0102, 2, 1, b"xy")   # 16-bit reference
    assert concatenation(bytes([4, 0x05, 2, 9, 9]) + b"z") == (None, None, None, b"z")            # another element
    assert concatenation(bytes([3, 0x00, 3, 0x2A])) == (None, None, None, b"")                  # cut short: ignored

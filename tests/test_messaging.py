"""The outbound message queue, opt-out, the inbound store and its rate limit, dispatch with
retries and receipts, and the producers (pickup slots, payments credited), on both backends."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.messaging import dispatch, inbound, optout, producers, queue
from isps.messaging.gateways import GatewayError
from isps.messaging.models import Message
from isps.messaging.phones import PhoneError, mask, normalise

PHONE = "923001234567"


class FakeGateway:
    """Fails the first ``temporary`` sends of each message with a temporary error, refuses the
    phones in ``refuse`` permanently, and records what it sent."""

    name = "fake"

    def __init__(self, temporary: int = 0, refuse: tuple[str, ...] = (), uncertain: bool = False,
                 delay: float = 0.0) -> None:
        self.temporary, self.refuse, self.uncertain, self.delay = temporary, refuse, uncertain, delay
        self.tries: dict[int, int] = {}
        self.sent: list[tuple[int, str, str]] = []
        self.lock = threading.Lock()

    def send(self, message_id: int, phone: str, text: str) -> str:
        import time

        with self.lock:
            self.tries[message_id] = self.tries.get(message_id, 0) + 1
            n = self.tries[message_id]
        if self.delay:
            time.sleep(self.delay)
        if phone in self.refuse:
            raise GatewayError("invalid destination", temporary=False)
        if self.uncertain:
            raise GatewayError("no answer", temporary=True, uncertain=True)
        if n <= self.temporary:
            raise GatewayError("throttled", temporary=True)
        with self.lock:
            self.sent.append((message_id, phone, text))
        return f"gw-{message_id}"

    def start(self, on_text, on_receipt) -> None:
        return None

    def close(self) -> None:
        return None


def status_of(engine, message_id: int) -> dict:
    with transaction(engine) as s:
        m = s.get(Message, message_id)
        return {k: getattr(m, k) for k in ("status", "attempts", "error", "gateway_id", "send_after", "delivered_at")}


# ---------------------------------------------------------------- phones

def test_phones_are_normalised_and_masked():
    for raw in ("0300-1234567", "+92 300 1234567", "923001234567", "0092 300 1234567", "3001234567"):
        assert normalise(raw) == PHONE
    assert mask(PHONE) == "92300*****67"
    for raw in ("042-35761234", "0300-123456", "phone", "", "+1 555 1234567"):
        with pytest.raises(PhoneError) as err:
            normalise(raw)
        assert repr(raw.strip()) in str(err.value) or "not a phone" in str(err.value)


# ---------------------------------------------------------------- the queue

def test_enqueue_is_idempotent_by_key(engine):
    with transaction(engine) as s:
        a = queue.enqueue(s, kind="receipt", phone="0300-1234567", text="ISPS: receipt OW10236", key="receipt:1",
                          household_id=7, district_id=2)
        b = queue.enqueue(s, kind="receipt", phone="0300-1234567", text="another text", key="receipt:1")
        assert a.id == b.id and b.text == "ISPS: receipt OW10236" and a.phone == PHONE and a.status == "queued"
    with transaction(engine) as s:  # in a later transaction too
        assert queue.enqueue(s, kind="receipt", phone=PHONE, text="x", key="receipt:1").id == a.id
        assert s.execute(text("SELECT COUNT(*) FROM sms_message")).scalar_one() == 1
        rows = queue.messages_of(s, household_id=7)
        assert [r["id"] for r in rows] == [a.id] and rows[0]["phone"] == "92300*****67"
    gw = FakeGateway()
    assert dispatch.send_due(engine, gw)["sent"] == 1
    assert dispatch.send_due(engine, gw)["claimed"] == 0
    assert len(gw.sent) == 1


def test_bad_messages_are_refused_naming_the_field(engine):
    with transaction(engine) as s:
        with pytest.raises(PhoneError, match="042"):
            queue.enqueue(s, kind="receipt", phone="042-35761234", text="x", key="k1")
        with pytest.raises(queue.QueueError, match="text is empty"):
            queue.enqueue(s, kind="receipt", phone=PHONE, text="  ", key="k2")
        with pytest.raises(queue.QueueError, match="kind"):
            queue.enqueue(s, kind="Spam!", phone=PHONE, text="x", key="k3")
        with pytest.raises(queue.QueueError, match="key"):
            queue.enqueue(s, kind="receipt", phone=PHONE, text="x", key="")
        with pytest.raises(queue.QueueError, match="at most"):
            queue.enqueue(s, kind="receipt", phone=PHONE, text="x" * 1001, key="k4")
        assert s.execute(text("SELECT COUNT(*) FROM sms_message")).scalar_one() == 0


def test_an_opted_out_phone_gets_suppressed_rows_except_essential_ones(engine):
    with transaction(engine) as s:
        assert optout.opt_out(s, "0300-1234567", "web:admin") is True
        assert optout.opt_out(s, PHONE, "sms") is False  # already
        assert optout.is_opted_out(s, "+92 300 1234567")
        m = queue.enqueue(s, kind="pickup", phone=PHONE, text="collect your money", key="pickup:1")
        otp = queue.enqueue(s, kind="otp", phone=PHONE, text="ISPS code 123456", key="otp:1")
        assert (m.status, otp.status) == ("suppressed", "queued")
    gw = FakeGateway()
    assert dispatch.send_due(engine, gw)["sent"] == 1
    assert [x[0] for x in gw.sent] == [otp.id]
    with transaction(engine) as s:
        assert optout.opt_in(s, PHONE, "sms") is True and not optout.is_opted_out(s, PHONE)
        assert queue.enqueue(s, kind="pickup", phone=PHONE, text="again", key="pickup:2").status == "queued"
        assert queue.messages_of(s, phone=PHONE)[-1]["status"] == "suppressed"  # kept, shown, never sent


# ---------------------------------------------------------------- inbound

def echo(session, phone, text, at):
    return f"ISPS: you wrote {text}"


def test_stop_and_start_by_sms_in_english_and_urdu(engine):
    at = datetime(2026, 7, 1, 10, 0)
    with transaction(engine) as s:
        r = inbound.receive(s, phone="03001234567", text=" stop. ", gateway_ref="g1", received_at=at, handler=echo)
        assert r.outcome == "stop" and r.reply.kind == "opt_out" and r.reply.status == "queued"
        assert "START" in r.reply.text and r.reply.lang == "en"
        assert optout.is_opted_out(s, PHONE)
        later = queue.enqueue(s, kind="paid", phone=PHONE, text="credited", key="paid:1")
        assert later.status == "suppressed"
        r2 = inbound.receive(s, phone=PHONE, text="شروع", gateway_ref="g2", received_at=at, handler=echo)
        assert r2.outcome == "start" and r2.reply.lang == "ur" and "بند" in r2.reply.text
        assert not optout.is_opted_out(s, PHONE)
        r3 = inbound.receive(s, phone=PHONE, text="بند", gateway_ref="g3", received_at=at, handler=echo)
        assert r3.outcome == "stop" and optout.is_opted_out(s, PHONE) and "شروع" in r3.reply.text
        # a question from an opted-out phone is still answered (the citizen asked for that one answer)
        r4 = inbound.receive(s, phone=PHONE, text="35202", gateway_ref="g4", received_at=at, handler=echo)
        assert r4.outcome == "answered" and r4.reply.status == "queued" and r4.reply.key == f"reply:{r4.inbound_id}"


def test_inbound_is_idempotent_by_gateway_reference(engine):
    at = datetime(2026, 7, 1, 10, 0)
    calls = []

    def handler(session, phone, text, received_at):
        calls.append(text)
        return "ISPS: hello"

    with transaction(engine) as s:
        a = inbound.receive(s, phone=PHONE, text="hi", gateway_ref="ref-1", received_at=at, handler=handler)
    with transaction(engine) as s:
        b = inbound.receive(s, phone=PHONE, text="hi", gateway_ref="ref-1", received_at=at, handler=handler)
        assert b.duplicate and b.inbound_id == a.inbound_id and b.reply.id == a.reply.id
        assert calls == ["hi"]
        assert s.execute(text("SELECT COUNT(*) FROM sms_inbound")).scalar_one() == 1
        assert s.execute(text("SELECT COUNT(*) FROM sms_message")).scalar_one() == 1


def test_a_flood_from_one_number_is_answered_then_told_once_then_silenced(engine):
    at = datetime(2026, 7, 1, 10, 0)
    n = inbound.RATE_LIMIT
    outcomes = []
    with transaction(engine) as s:
        for k in range(n + 5):
            r = inbound.receive(s, phone=PHONE, text=f"35202123456{k % 10}", gateway_ref=f"f{k}",
                                received_at=at + timedelta(seconds=k), handler=echo)
            outcomes.append((r.outcome, r.reply.text if r.reply else None))
        assert [o for o, _ in outcomes] == ["answered"] * n + ["limited"] + ["silenced"] * 4
        assert "too many" in outcomes[n][1] and all(t is None for _, t in outcomes[n + 1:])
        assert s.execute(text("SELECT COUNT(*) FROM sms_inbound")).scalar_one() == n + 5  # all stored
        assert s.execute(text("SELECT COUNT(*) FROM sms_message")).scalar_one() == n + 1
        # another number is not affected, and the first one is answered again after the window
        assert inbound.receive(s, phone="03011234567", text="x", gateway_ref="other", received_at=at,
                               handler=echo).outcome == "answered"
        assert inbound.receive(s, phone=PHONE, text="x", gateway_ref="later",
                               received_at=at + inbound.RATE_WINDOW + timedelta(minutes=5),
                               handler=echo).outcome == "answered"


def test_a_flood_handled_in_parallel_still_answers_the_first_then_tells_once(engine):
    at = datetime(2026, 7, 1, 10, 0)
    n = inbound.RATE_LIMIT
    outcomes, errors = [], []
    go = threading.Barrier(6)

    def flood(k0: int) -> None:
        try:
            go.wait()
            for k in range(k0, n + 6, 6):
                with transaction(engine) as s:
                    outcomes.append(inbound.receive(s, phone=PHONE, text="x", gateway_ref=f"p{k}",
                                                    received_at=at, handler=echo).outcome)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(outcomes) == sorted(["answered"] * n + ["limited"] + ["silenced"] * 5)


def test_a_failing_handler_leaves_the_text_stored_and_nothing_half_written(engine):
    def broken(session, phone, text, at):
        session.execute(text("INSERT INTO sms_opt_out (phone, opted_out, via, changed_at) "
                             "VALUES ('923339999999', true, 'x', :t)"), {"t": at})
        raise RuntimeError("bug")

    with transaction(engine) as s:
        r = inbound.receive(s, phone=PHONE, text="hello", gateway_ref="e1", received_at=datetime(2026, 7, 1),
                            handler=broken)
        assert r.outcome == "error" and "try again" in r.reply.text
    with transaction(engine) as s:
        assert s.execute(text("SELECT COUNT(*) FROM sms_opt_out")).scalar_one() == 0
        assert s.execute(text("SELECT outcome FROM sms_inbound")).scalar_one() == "error"


def test_a_text_from_a_number_that_is_not_a_mobile_is_stored_without_a_reply(engine):
    with transaction(engine) as s:
        r = inbound.receive(s, phone="JAZZ", text="promo", gateway_ref="b1", received_at=datetime(2026, 7, 1),
                            handler=echo)
        assert r.outcome == "bad_phone" and r.reply is None


# ---------------------------------------------------------------- dispatch

def _one(engine, phone: str = PHONE, key: str = "k") -> int:
    with transaction(engine) as s:
        return queue.enqueue(s, kind="status", phone=phone, text="ISPS: status", key=key).id


def test_temporary_failures_are_retried_with_backoff_until_sent(engine):
    mid = _one(engine)
    gw = FakeGateway(temporary=2)
    t0 = datetime.now() + timedelta(seconds=1)
    first = dispatch.send_due(engine, gw, now=t0)
    assert first["retried"] == 1
    row = status_of(engine, mid)
    assert row["status"] == "queued" and row["attempts"] == 1 and "throttled" in row["error"]
    assert row["send_after"] == t0 + dispatch.backoff(1)
    assert dispatch.send_due(engine, gw, now=t0 + timedelta(seconds=10))["claimed"] == 0  # not due yet
    assert dispatch.send_due(engine, gw, now=t0 + timedelta(minutes=1))["retried"] == 1
    assert dispatch.send_due(engine, gw, now=t0 + timedelta(minutes=10))["sent"] == 1
    row = status_of(engine, mid)
    assert row["status"] == "sent" and row["attempts"] == 3 and row["gateway_id"] == f"gw-{mid}" and not row["error"]
    assert len(gw.sent) == 1


def test_a_message_failing_temporarily_every_time_gives_up_after_the_last_attempt(engine):
    mid = _one(engine)
    gw = FakeGateway(temporary=99)
    t = datetime.now() + timedelta(seconds=1)
    for _ in range(dispatch.MAX_ATTEMPTS + 2):
        dispatch.send_due(engine, gw, now=t)
        t += timedelta(hours=2)
    row = status_of(engine, mid)
    assert row["status"] == "failed" and row["attempts"] == dispatch.MAX_ATTEMPTS and "gave up" in row["error"]
    assert gw.tries[mid] == dispatch.MAX_ATTEMPTS


def test_a_permanent_refusal_fails_at_once(engine):
    mid = _one(engine, "03451234567")
    gw = FakeGateway(refuse=("923451234567",))
    assert dispatch.send_due(engine, gw)["failed"] == 1
    row = status_of(engine, mid)
    assert row["status"] == "failed" and row["attempts"] == 1 and "invalid destination" in row["error"]


def test_a_message_the_gateway_may_have_taken_is_never_resent_blindly(engine):
    mid = _one(engine)
    assert dispatch.send_due(engine, FakeGateway(uncertain=True))["failed"] == 1
    assert "not resent" in status_of(engine, mid)["error"]
    # a worker that stopped between claiming and recording: left in 'sending', then settled as failed
    other = _one(engine, key="k2")
    t = datetime.now()
    with transaction(engine) as s:
        dispatch._claim(s, t, 10)
    gw = FakeGateway()
    assert dispatch.send_due(engine, gw, now=t + timedelta(minutes=1))["settled"] == 0  # may still be sending
    assert dispatch.send_due(engine, gw, now=t + dispatch.STALE_AFTER + timedelta(minutes=1))["settled"] == 1
    assert status_of(engine, other)["status"] == "failed" and gw.sent == []
    with transaction(engine) as s:  # deliberately, after checking: requeued and sent once
        assert queue.requeue(s, other) is True and queue.requeue(s, other) is False
    assert dispatch.send_due(engine, gw)["sent"] == 1 and [x[0] for x in gw.sent] == [other]


def test_receipts_mark_delivered_or_undeliverable_even_when_early(engine):
    a, b, c, d = _one(engine, key="a"), _one(engine, key="b"), _one(engine, key="c"), _one(engine, key="d")
    gw = FakeGateway()
    with transaction(engine) as s:  # c's receipt comes before c was sent: kept, applied when c is recorded sent
        assert dispatch.record_receipt(s, f"gw-{c}", "delivered", datetime(2026, 7, 1, 9, 5)) == 0
    dispatch.send_due(engine, gw)
    assert status_of(engine, c)["status"] == "delivered"
    at = datetime(2026, 7, 1, 9, 1)
    with transaction(engine) as s:
        assert dispatch.record_receipt(s, f"gw-{a}", "delivered", at) == 1
        assert dispatch.record_receipt(s, f"gw-{b}", "undeliverable", at) == 1
        with pytest.raises(ValueError):
            dispatch.record_receipt(s, f"gw-{a}", "maybe", at)
        # d's receipt committed while d's 'sent' was being written (a race): the next pass applies it
        s.execute(text("INSERT INTO sms_receipt (gateway_id, state, at, received_at) VALUES (:g, 'delivered', :t, :t)"),
                  {"g": f"gw-{d}", "t": datetime.now()})
    assert dispatch.send_due(engine, gw)["receipts"] == 1
    assert status_of(engine, a)["status"] == "delivered" and status_of(engine, a)["delivered_at"] == at
    assert status_of(engine, b)["status"] == "undeliverable" and "could not deliver" in status_of(engine, b)["error"]
    assert status_of(engine, d)["status"] == "delivered" and status_of(engine, d)["delivered_at"] is not None


def test_send_one_sends_a_reply_at_once_and_only_once(engine):
    mid = _one(engine)
    gw = FakeGateway()
    assert dispatch.send_one(engine, gw, mid) == "sent"
    assert dispatch.send_one(engine, gw, mid) is None
    assert dispatch.send_due(engine, gw)["claimed"] == 0 and len(gw.sent) == 1


def test_two_workers_at_once_never_send_a_message_twice(engine):
    with transaction(engine) as s:
        for k in range(60):
            queue.enqueue(s, kind="status", phone=f"0300{k:07d}", text="ISPS: status", key=f"c{k}")
    gw = FakeGateway(delay=0.002)
    results, errors = [], []
    start = threading.Barrier(2)

    def work():
        try:
            start.wait()
            while True:
                r = dispatch.send_due(engine, gw, limit=7)
                results.append(r)
                if r["claimed"] == 0:
                    return
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    ids = [m for m, _, _ in gw.sent]
    assert len(ids) == 60 and len(set(ids)) == 60
    assert sum(r["sent"] for r in results) == 60


# ---------------------------------------------------------------- producers

def test_pickup_and_credited_messages_are_queued_once_per_slot_and_payment(province, tmp_path):
    from isps.payments import payroll as pr, pickup
    from tests.test_payments import approved_kafaalat_cycle

    engine = province
    cycle_id = approved_kafaalat_cycle(engine)
    with transaction(engine) as s:
        pr.release_funds(s, "bisp_kafaalat", 100_000_000, "RO-1", "treasury")
        p = pr.generate(s, cycle_id, "maker")
        district = s.execute(text("""SELECT district_id FROM payment_instruction WHERE channel IN ('agent', 'cash_outlet')
            GROUP BY district_id ORDER BY COUNT(*) DESC LIMIT 1""")).scalar_one()
        pickup.seed_outlets(s, district)
        slots = pickup.schedule(s, p.id, district, date(2026, 7, 6))["scheduled"]
        # one recipient opted out; one has a landline written on the roster
        phones = s.execute(text("""SELECT p.id, p.phone FROM pickup_slot sl
            JOIN payment_instruction i ON i.id = sl.instruction_id JOIN enrolment e ON e.id = i.enrolment_id
            JOIN individual p ON p.id = COALESCE(e.recipient_id, NULLIF(e.individual_id, 0),
                (SELECT h.id FROM individual h WHERE h.household_id = e.household_id AND h.roster_line = 1))
            WHERE p.phone IS NOT NULL ORDER BY sl.instruction_id""")).all()
        assert slots > 5 and len(phones) >= 2
        optout.opt_out(s, phones[0].phone, "test")
        s.execute(text("UPDATE individual SET phone = '042-35761234' WHERE id = :i"), {"i": phones[1].id})
    with transaction(engine) as s:
        counts = producers.pickup_counts(s, p.id)
        without = slots - counts["queued"]
        assert counts["queued"] > 0 and counts["no_phone"] == without and without >= 1
        assert producers.pickup(s, p.id) == 0  # idempotent
        assert producers.pickup_counts(s, p.id)["already"] == counts["queued"]
        row = s.execute(text("SELECT * FROM sms_message WHERE kind = 'pickup' ORDER BY id LIMIT 1")).mappings().one()
        slot = pickup.slot_of(s, int(row["key"].split(":")[1]))
        assert row["text"] == slot["sms"] and row["phone"].startswith("923") and len(row["phone"]) == 12
        assert s.execute(text("SELECT COUNT(*) FROM sms_message WHERE status = 'suppressed'")).scalar_one() >= 1
        # every queued phone is a valid mobile
        for (ph,) in s.execute(text("SELECT phone FROM sms_message")):
            assert normalise(ph) == ph
        # in Urdu, composed from the same slot (a second run of the payroll's messages queues nothing: one per slot)
        assert producers.pickup(s, p.id, "ur") == 0
        s.execute(text("DELETE FROM sms_message WHERE kind = 'pickup'"))
        assert producers.pickup(s, p.id, "ur") == counts["queued"]
        ur = s.execute(text("SELECT * FROM sms_message WHERE key = :k"), {"k": row["key"]}).mappings().one()
        start = pickup.slot_of(s, int(row["key"].split(":")[1]))["slot_start"]  # 2026-07-06T09:00:00
        seat = pickup.slot_of(s, int(row["key"].split(":")[1]))["seat"]
        assert ur["lang"] == "ur" and "8500 روپے" in ur["text"] and start[:10] in ur["text"]
        assert f"{start[11:16]} بجے" in ur["text"] and f"ٹوکن نمبر {seat}" in ur["text"] and "{" not in ur["text"]
        assert "بینظیر" in ur["text"] or "کفالت" in ur["text"]  # the program's Urdu name
    with transaction(engine) as s:
        pr.approve(s, p.id, "checker")
        pr.export(s, p.id, tmp_path, on=date(2026, 7, 5))
        status = pr.bank_status_csv(s, p.id, paid=0.8, failed=0.1, unclaimed=0.1, on=date(2026, 7, 10))
        pr.reconcile(s, status, "status.csv", "recon", on=date(2026, 7, 10))
    with transaction(engine) as s:
        paid = s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE status = 'paid'")).scalar_one()
        got = producers.credited_counts(s, date(2026, 7, 10))
        assert got["queued"] + got["no_phone"] == paid and got["queued"] > 0 and got["no_phone"] > 0
        assert producers.credited(s, date(2026, 7, 10)) == 0
        assert producers.credited(s, date(2026, 7, 11)) == 0  # nothing paid since
        msg = s.execute(text("SELECT key, text, lang FROM sms_message WHERE kind = 'paid' LIMIT 1")).one()
        iid = int(msg.key.split(":")[1])
        amount = s.execute(text("SELECT amount FROM payment_instruction WHERE id = :i"), {"i": iid}).scalar_one()
        assert msg.lang == "ur" and f"{amount:.0f} روپے" in msg.text and "2026-07-10" in msg.text
        assert "{" not in msg.text


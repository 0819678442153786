"""``isps worker``: the scheduler, its leases, the tasks, the administrator's page and the demo's
child process, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from isps.db import make_engine, transaction
from isps.services import events, leases
from isps.services import worker as w
from isps.services.leases import WorkerLease
from tests.conftest import make_engine_with_schema

REPO = Path(__file__).resolve().parents[1]


def second_engine(engine):
    """Another engine (another connection pool, as another process would have) on the same database."""
    if engine.dialect.name == "sqlite":
        return make_engine(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()
    return make_engine_with_schema(engine.url.render_as_string(hide_password=False), schema)


def lease(engine, task: str) -> WorkerLease | None:
    with transaction(engine) as s:
        return s.get(WorkerLease, task)


class Overlap:
    """A task body that notes how many runs of it are inside at once."""

    def __init__(self, pause: float = 0.05) -> None:
        self.inside = self.most = self.runs = 0
        self.pause = pause
        self.lock = threading.Lock()

    def __call__(self, engine, now) -> dict:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.runs += 1
        time.sleep(self.pause)
        with self.lock:
            self.inside -= 1
        return {"runs": self.runs}


# ---------------------------------------------------------------- the scheduler

def test_once_runs_every_task_and_records_each_run(engine):
    seen = []
    tasks = [w.Task(name, timedelta(seconds=5), lambda e, now, name=name: seen.append((name, now)) or {"did": 1})
             for name in ("a", "b", "c")]
    moved = datetime(2027, 1, 15, 9, 0)
    outcomes = w.Worker(engine, tasks, clock=w.Clock(moved)).run_once()
    assert {n: o.status for n, o in outcomes.items()} == {"a": "ok", "b": "ok", "c": "ok"}
    assert [n for n, _ in seen] == ["a", "b", "c"]
    assert all(abs((now - moved).total_seconds()) < 60 for _, now in seen)      # the moved clock
    for name in "abc":
        row = lease(engine, name)
        assert row.holder is None and row.last_result == {"did": 1} and row.last_error is None
        assert row.last_started <= row.last_finished
        assert abs((row.last_finished - leases.clock()).total_seconds()) < 60  # leases keep the real clock


def test_a_failing_task_is_recorded_and_the_others_run(engine):
    def boom(e, now):
        raise RuntimeError("the partner's server said no")

    tasks = [w.Task("first", timedelta(seconds=5), lambda e, now: {"n": 1}),
             w.Task("broken", timedelta(seconds=5), boom),
             w.Task("last", timedelta(seconds=5), lambda e, now: {"n": 2})]
    outcomes = w.Worker(engine, tasks).run_once()
    assert [o.status for o in outcomes.values()] == ["ok", "failed", "ok"]
    assert outcomes["broken"].error == "RuntimeError: the partner's server said no"
    broken = lease(engine, "broken")
    assert broken.last_error == "RuntimeError: the partner's server said no" and broken.holder is None
    assert lease(engine, "last").last_result == {"n": 2}
    # the next good run clears the error
    w.Worker(engine, [w.Task("broken", timedelta(seconds=5), lambda e, now: {"fixed": 1})]).run_once()
    assert lease(engine, "broken").last_error is None and lease(engine, "broken").last_result == {"fixed": 1}


def test_a_lease_is_held_by_one_holder_until_released_or_expired(engine):
    assert leases.acquire(engine, "t", "A", timedelta(seconds=30))
    assert not leases.acquire(engine, "t", "B", timedelta(seconds=30))
    assert leases.acquire(engine, "t", "A", timedelta(seconds=30))          # its own holder again
    assert not leases.renew(engine, "t", "B") and leases.renew(engine, "t", "A")
    leases.release(engine, "t", "B", result={"x": 1})                       # not B's: changes nothing
    assert lease(engine, "t").holder == "A"
    leases.release(engine, "t", "A", result={"x": 2})
    assert lease(engine, "t").holder is None and lease(engine, "t").last_result == {"x": 2}
    assert leases.acquire(engine, "t", "B", timedelta(milliseconds=1))
    time.sleep(0.01)
    assert leases.acquire(engine, "t", "A")                                  # B's expired: a crashed holder


def test_a_long_run_keeps_its_lease_by_renewing_it(engine):
    other = second_engine(engine)
    try:
        task = w.Task("slow", timedelta(seconds=5), lambda e, now: time.sleep(0.6) or {}, ttl=timedelta(seconds=0.3))
        took = []
        runner = threading.Thread(target=lambda: took.append(w.run_task(engine, task, datetime.now(), "A")))
        runner.start()
        time.sleep(0.45)           # past the first time to live: renewed, so B cannot take it
        assert w.run_task(other, task, datetime.now(), "B").status == "busy"
        runner.join()
        assert took[0].status == "ok"
    finally:
        other.dispose()


def test_two_workers_never_run_one_task_at_once(engine):
    other = second_engine(engine)
    body = Overlap()
    try:
        workers = [w.Worker(eng, [w.Task("shared", timedelta(seconds=0), body)], threads=2) for eng in (engine, other)]
        threads = [threading.Thread(target=x.run_forever, kwargs={"tick": 0.01}) for x in workers]
        for t in threads:
            t.start()
        time.sleep(2.0)
        for x in workers:
            x.stop.set()
        for t in threads:
            t.join(10)
        assert body.runs >= 4 and body.most == 1
        assert lease(engine, "shared").holder is None
    finally:
        other.dispose()


def test_drain_is_never_run_twice_at_once(engine, monkeypatch):
    body = Overlap(pause=0.2)
    monkeypatch.setattr(events, "run_consumers", lambda e, on=None: body(e, on))
    other = second_engine(engine)
    try:
        # two web or CLI drains in two processes, and the worker's task beside them
        callers = [threading.Thread(target=events.drain, args=(eng,)) for eng in (engine, other)]
        task = w.Task("events", timedelta(seconds=0), lambda e, now: events.run_consumers(e, now.date()))
        outcomes = []
        callers.append(threading.Thread(target=lambda: outcomes.append(w.run_task(other, task, datetime.now(), "wk"))))
        for t in callers:
            t.start()
        for t in callers:
            t.join(30)
        assert body.most == 1
        assert body.runs == 2 + (outcomes[0].status == "ok")      # the callers wait; the worker skips when busy
    finally:
        other.dispose()
    # a caller gives up (an error, not a second run) when the lease stays taken
    assert leases.acquire(engine, events.LEASE, "someone else", timedelta(seconds=30))
    with pytest.raises(leases.Busy):
        events.drain(engine, wait=0.2)


def test_the_events_task_drains_what_a_change_left(province):
    from isps.registry import events as outbox
    from isps.registry.models import OutboxCursor

    with transaction(province) as s:
        hid = s.scalar(text("SELECT id FROM household ORDER BY id LIMIT 1"))
        outbox.record(s, outbox.HOUSEHOLD_CHANGED, "household", hid, {"fields": ["rooms"]})
        last = outbox.latest_event_id(s)
    outcome = w.Worker(province, [t for t in w.default_tasks() if t.name == "events"]).run_once()["events"]
    assert outcome.status == "ok" and outcome.result.get("rescored") == 1
    with transaction(province) as s:
        assert s.get(OutboxCursor, "targeting.pmt").last_event_id >= last
    assert w.Worker(province, [t for t in w.default_tasks() if t.name == "events"]).run_once()["events"].result == {}


def test_the_dci_notifier_runs_as_a_task(province, monkeypatch):
    """A partner subscribed to deaths hears of one from the worker, not only on an administrator's request."""
    from datetime import date

    from isps.interop.dci import partners, subscriptions
    from isps.registry import service as registry
    from isps.registry.cnic import formatted
    from isps.registry.models import Individual

    monkeypatch.setenv("ISPS_SECRET_KEY", "worker-test-secret")
    sent: list[str] = []
    with transaction(province) as s:
        row, _ = partners.register_partner(s, "spmis.bisp.gov.pk", "BISP SPMIS", "https://spmis.bisp.gov.pk/dci")
        partners.set_agreement(s, row.id, "DSA-2026-01", "kafaalat-enrolment", ["identifier", "name", "death_date"],
                               False, "admin")
        person = s.scalars(select(Individual).where(Individual.cnic.is_not(None)).order_by(Individual.id).limit(1)).one()
        answer = subscriptions.create(s, partners.partner_by_sender(s, "spmis.bisp.gov.pk"), {
            "transaction_id": "sub-1", "subscribe_request": [{"reference_id": "r1", "subscribe_criteria": {
                "reg_event_type": "DEATH", "filter_type": "idtype-value", "notify_record_type": "Member",
                "filter": {"type": "CNIC", "value": formatted(person.cnic)}}}]}, "corr-1")
        assert answer["subscribe_response"][0]["status"] == "succ"
    task = w.Task("dci_notify", timedelta(seconds=30), w.dci_notify(sender=lambda url, envelope: sent.append(url)))
    assert w.Worker(province, [task]).run_once()["dci_notify"].status == "ok"   # the load's events: nobody died
    assert sent == []
    with transaction(province) as s:
        registry.change_individual(s, person.id, {"date_of_death": "2026-10-01"},
                                   registry.Provenance("nadra", "nadra-feed", date(2026, 10, 1), "NADRA-D-1"))
    outcome = w.Worker(province, [task]).run_once()["dci_notify"]
    assert outcome.status == "ok" and outcome.result["messages"] == 1
    assert sent == ["https://spmis.bisp.gov.pk/dci/registry/notify"]
    assert lease(province, "dci_notify").last_result["messages"] == 1
    assert w.Worker(province, [task]).run_once()["dci_notify"].result == {}      # once only


def test_a_signal_stops_the_loop_after_the_running_task(engine):
    body = Overlap(pause=0.3)
    runner = w.Worker(engine, [w.Task("job", timedelta(seconds=0), body)])
    thread = threading.Thread(target=runner.run_forever, kwargs={"tick": 0.01})
    thread.start()
    time.sleep(0.1)
    runner.stop.set()
    thread.join(10)
    assert not thread.is_alive() and body.inside == 0 and body.runs >= 1
    assert lease(engine, "job").holder is None and lease(engine, "job").last_finished is not None

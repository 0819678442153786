"""``isps worker``: the scheduler, its leases, the tasks, the administrator's page and the demo's
child process, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

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


def test_a_task_failing_again_and_again_waits_longer_each_time(engine):
    calls = {"bad": 0, "good": 0}

    def bad(e, now):
        calls["bad"] += 1
        raise ConnectionError("SMSC down")

    def good(e, now):
        calls["good"] += 1
        return {}

    runner = w.Worker(engine, [w.Task("bad", timedelta(seconds=0.1), bad), w.Task("good", timedelta(seconds=0.1), good)])
    thread = threading.Thread(target=runner.run_forever, kwargs={"tick": 0.01})
    thread.start()
    time.sleep(2.0)
    runner.stop.set()
    thread.join(10)
    # the good task runs every 0.1 s; the bad one after 0.2, 0.4, 0.8 s ... (about 4 times in 2 s)
    assert calls["good"] >= 8 and 2 <= calls["bad"] <= 6, calls
    assert "SMSC down" in lease(engine, "bad").last_error


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


# ---------------------------------------------------------------- the administrator's page

def test_the_worker_page_shows_each_task_to_administrators_only(client, province):
    from tests.test_web import as_user, denied, text_of

    as_user(client, "admin")
    page = client.get("/admin/worker")
    assert page.status_code == 200
    assert "No worker has run yet" in text_of(page.text)
    for t in w.default_tasks():
        assert f'data-task="{t.name}"' in page.text

    def boom(e, now):
        raise ValueError("gateway refused the bind")

    w.Worker(province, [w.Task("events", timedelta(seconds=10), lambda e, now: {"rescored": 3}),
                        w.Task("dci_notify", timedelta(seconds=30), boom)]).run_once()
    assert leases.acquire(province, "selfreport_reminders", "worker@host:1:abc", timedelta(minutes=5))
    body = client.get("/admin/worker").text
    row = lambda name: text_of(body.split(f'data-task="{name}"')[1].split("</tr>")[0])  # noqa: E731
    assert "households re-scored: 3" in row("events") and "10 s" in row("events")
    assert "ValueError: gateway refused the bind" in row("dci_notify")
    assert "Running now" in row("selfreport_reminders") and "worker@host:1:abc" in row("selfreport_reminders")
    assert 'href="/admin/worker"' in body                                   # the nav link
    assert "No worker has run yet" not in text_of(body)
    client.cookies.set("lang", "ur")
    ur = client.get("/admin/worker")
    assert ur.status_code == 200 and 'dir="rtl"' in ur.text and "پس منظر کا کارکن" in ur.text
    assert "گھرانوں کا نیا اسکور: 3" in ur.text
    client.cookies.delete("lang")
    for user in ("kasur_counter", "auditor", "manager"):
        as_user(client, user)
        refused = client.get("/admin/worker")
        assert refused.status_code == 403 and "gateway refused" not in refused.text
        assert 'href="/admin/worker"' not in refused.text
        assert denied(province, user, "read") == 1


# ---------------------------------------------------------------- the command and the demo's child

def test_the_demo_starts_the_worker_with_this_interpreter():
    from isps.cli import worker as cli

    assert cli.worker_command() == [sys.executable, "-m", "isps.cli.main", "worker"]
    assert cli.worker_command("/opt/venv/bin/python")[0] == "/opt/venv/bin/python"


def test_the_worker_child_runs_and_stops_gracefully_on_sigterm(tmp_path):
    """The demo's child, for real: a process on a fresh SQLite database, stopped as the demo stops it."""
    from isps.cli import worker as cli

    env = {"ISPS_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}", "ISPS_VAR_DIR": str(tmp_path / "var"),
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "ISPS_SECRET_KEY": "child-secret"}
    log_path = tmp_path / "var" / "worker.log"
    child = cli.start_child(log_path, env)
    try:
        probe = make_engine(env["ISPS_DATABASE_URL"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                with transaction(probe) as s:
                    if s.scalar(select(WorkerLease.last_finished).where(WorkerLease.task == "events")):
                        break
            except Exception:  # noqa: BLE001 - the child is still creating the schema
                continue
        else:
            pytest.fail("the worker did not run its events task: " + log_path.read_text())
        assert child.poll() is None
    finally:
        code = cli.stop_child(child, timeout=60, settle=0.5)
    assert code == 0, log_path.read_text()
    log = log_path.read_text()
    assert "signal SIGTERM: stopping" in log and "events every 0:00:10" in log
    with transaction(probe) as s:
        assert s.scalars(select(WorkerLease.holder).where(WorkerLease.holder.is_not(None))).all() == []
    probe.dispose()


def test_the_command_runs_once_only_the_tasks_asked_and_refuses_unknown_ones(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from isps.cli.main import app

    monkeypatch.setenv("ISPS_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ISPS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("ISPS_SECRET_KEY", "cli-secret")
    # the console's width is fixed when it is made (from COLUMNS, which another test or the test runner may set):
    # a narrow one folds the task table's names, so this test gives it room
    from isps.cli.common import console
    monkeypatch.setattr(console, "width", 200)
    runner = CliRunner()
    r = runner.invoke(app, ["worker", "--once", "--only", "events", "--only", "dci_notify", "--now", "2027-01-15T09:00"])
    assert r.exit_code == 0, r.output
    assert "events: nothing to do" in r.output and "dci_notify: nothing to do" in r.output
    assert "selfreport" not in r.output
    r = runner.invoke(app, ["worker", "--once", "--only", "email"])
    assert r.exit_code == 1 and "no task called email" in r.output
    r = runner.invoke(app, ["worker", "--once", "--now", "next tuesday"])
    assert r.exit_code == 1 and "--now" in r.output
    r = runner.invoke(app, ["worker", "--list"])
    assert r.exit_code == 0 and "events" in r.output and "selfreport_reminders" in r.output


# ---------------------------------------------------------------- reminders and messages (messaging's queue)

class FakeGateway:
    """A gateway that keeps what it is asked to send and lets a test text in as a citizen would."""

    name = "fake"

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str]] = []
        self.on_text = self.on_receipt = None
        self.closed = False

    def send(self, message_id: int, phone: str, text: str) -> str:
        self.sent.append((message_id, phone, text))
        return f"gw-{message_id}"

    def start(self, on_text, on_receipt) -> None:
        self.on_text, self.on_receipt = on_text, on_receipt

    def close(self) -> None:
        self.closed = True


def _on_register(engine, n: int, district_id: int = 2):
    """``n`` adults of a district registered as daily wagers on one day, given phones (one not a mobile)."""
    from datetime import date

    from isps.labour import wagers
    from isps.labour.models import LabourPerson
    from isps.registry.cnic import formatted
    from isps.registry.models import Individual

    with transaction(engine) as s:
        people = s.scalars(select(Individual).where(
            Individual.district_id == district_id, Individual.cnic.is_not(None), Individual.date_of_death.is_(None),
            Individual.date_of_birth <= date(1990, 1, 1)).order_by(Individual.id).limit(n)).all()
        for k, p in enumerate(people):
            p.phone = "0300-1234567"[:-1] + str(k) if k < n - 1 else "12345"
            wagers.register_wager(s, formatted(p.cnic), "Lari Adda chowk", date(2026, 6, 1), "t")
        due = s.get(LabourPerson, people[0].id).report_due
        return [(p.id, p.household_id) for p in people], due


def test_selfreport_reminders_are_queued_once_each_in_urdu(province):
    from isps.labour import reports
    from isps.labour.models import LabourReminder
    from isps.messaging.models import Message

    people, due = _on_register(province, 3)
    before = datetime.combine(due - timedelta(days=14), datetime.min.time()).replace(hour=9)
    out = w.selfreport_sms(province, before)
    assert out == {"owed": 3, "queued": 2, "bad_phone": 1}
    with transaction(province) as s:
        rows = s.scalars(select(Message).where(Message.key.like("selfreport:%")).order_by(Message.key)).all()
        assert sorted(m.key for m in rows) == sorted(f"selfreport:{pid}:{due.isoformat()}:before" for pid, _ in people[:2])
        assert {m.kind for m in rows} == {"reminder"} and {m.lang for m in rows} == {"ur"}
        assert all(due.strftime("%d-%m-%Y") in m.text and "سہ ماہی" in m.text for m in rows)
        assert {m.text for m in rows} == {w.REMINDER_TEXTS["before"]["ur"].format(due=due.strftime("%d-%m-%Y"),
                                                                                 code=w.SHORT_CODE)}
        assert {m.household_id for m in rows} == {h for _, h in people[:2]} and {m.phone for m in rows} == {
            "923001234560", "923001234561"}
        handed = s.scalars(select(LabourReminder).where(LabourReminder.sent_at.is_not(None))).all()
        assert len(handed) == 2                                  # the bad phone's stays owed, not sent
    # a second run (and a run of the worker's task) adds nothing
    assert w.selfreport_sms(province, before) == {"bad_phone": 1}
    task = next(t for t in w.default_tasks() if t.name == "selfreport_reminders")
    assert w.Worker(province, [task], clock=w.Clock(before)).run_once()["selfreport_reminders"].status == "ok"
    with transaction(province) as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.key.like("selfreport:%"))) == 2
    # on the day: the second reminder; someone who reported since is not reminded
    with transaction(province) as s:
        reports.report_status(s, people[1][0], "daily_wager", due - timedelta(days=2), "t")
    on_day = before + timedelta(days=14)
    assert w.selfreport_sms(province, on_day) == {"owed": 2, "queued": 1, "bad_phone": 1}
    with transaction(province) as s:
        keys = set(s.scalars(select(Message.key).where(Message.key.like("selfreport:%"))))
        assert f"selfreport:{people[0][0]}:{due.isoformat()}:due" in keys
        assert not any(k.startswith(f"selfreport:{people[1][0]}:") and k.endswith(":due") for k in keys)


def test_reminders_are_queued_batch_by_batch_in_english(province, monkeypatch):
    from isps.labour.models import LabourReminder
    from isps.messaging.models import Message

    monkeypatch.setattr(w, "REMINDER_BATCH", 1)  # one person per INSERT … SELECT: three batches
    people, due = _on_register(province, 3)
    before = datetime.combine(due - timedelta(days=14), datetime.min.time()).replace(hour=9)
    assert w.selfreport_sms(province, before, lang="en") == {"owed": 3, "queued": 2, "bad_phone": 1}
    with transaction(province) as s:
        texts = set(s.scalars(select(Message.text).where(Message.key.like("selfreport:%"))))
        assert texts == {w.REMINDER_TEXTS["before"]["en"].format(due=due.strftime("%d-%m-%Y"), code=w.SHORT_CODE)}
        assert s.scalar(select(func.count()).select_from(LabourReminder)
                        .where(LabourReminder.sent_at.is_not(None))) == 2
    assert w.selfreport_sms(province, before, lang="en") == {"bad_phone": 1}


def test_after_a_pause_only_the_newest_reminder_is_sent(province):
    from isps.messaging.models import Message

    people, due = _on_register(province, 2)
    late = datetime.combine(due + timedelta(days=15), datetime.min.time())   # before, due and overdue all owed
    assert w.selfreport_sms(province, late) == {"owed": 6, "queued": 1, "bad_phone": 1}
    with transaction(province) as s:
        assert list(s.scalars(select(Message.key).where(Message.key.like("selfreport:%")))) == [
            f"selfreport:{people[0][0]}:{due.isoformat()}:overdue"]
    assert w.selfreport_sms(province, late + timedelta(hours=1)) == {"bad_phone": 1}


def test_queued_messages_are_sent_and_texts_answered_at_once(province):
    from isps.messaging import queue
    from isps.messaging.models import Message

    gateway = FakeGateway()
    sms = w.Sms(gateway)
    answered = []

    def echo(session, phone, body, received_at):
        answered.append((phone, body))
        return f"you said {body}"

    tasks = {t.name: t for t in w.default_tasks(sms=sms, sms_handler=echo)}
    with transaction(province) as s:
        queue.enqueue(s, kind="status", phone="0301-7654321", text="ISPS: your application moved", key="t:1")
    runner = w.Worker(province, [tasks["send_messages"], tasks["receive_messages"]])
    outcomes = runner.run_once()
    assert outcomes["send_messages"].result["sent"] == 1 and outcomes["receive_messages"].result == {"listening": "fake"}
    assert gateway.sent[-1][1:] == ("923017654321", "ISPS: your application moved")
    assert w.Worker(province, [tasks["send_messages"]]).run_once()["send_messages"].result == {}  # sent once
    # a citizen texts the short code: stored, answered, the reply handed to the gateway at once
    gateway.on_text("923009876543", "HELP", "ref-1", datetime.now())
    assert answered == [("923009876543", "HELP")]
    assert gateway.sent[-1][1:] == ("923009876543", "you said HELP")
    gateway.on_receipt(f"gw-{gateway.sent[-1][0]}", "delivered", datetime.now())
    with transaction(province) as s:
        reply = s.get(Message, gateway.sent[-1][0])
        assert reply.status == "delivered" and reply.kind == "reply"
    assert runner.run_once()["receive_messages"].result == {}              # started once
    sms.close()
    assert gateway.closed


def test_once_runs_every_default_task_on_a_province(province, monkeypatch, tmp_path):
    for part in ("applications", "grievances"):   # the escalations' modules, merged from their own branches
        pytest.importorskip(f"isps.citizen.{part}", reason=f"isps.citizen.{part} is not merged yet")
    monkeypatch.setenv("ISPS_SECRET_KEY", "worker-test-secret")
    monkeypatch.setenv("ISPS_SMS_GATEWAY", "file")
    monkeypatch.setenv("ISPS_SMS_OUTBOX", str(tmp_path / "outbox.jsonl"))
    sms = w.Sms()
    outcomes = w.Worker(province, w.default_tasks(sms=sms, sms_handler=lambda *a: None)).run_once()
    sms.close()
    assert {n: (o.status, o.error) for n, o in outcomes.items()} == {t.name: ("ok", None) for t in w.default_tasks()}


def test_late_applications_and_grievances_escalate_when_the_worker_runs_on_a_moved_clock(province):
    for part in ("applications", "grievances"):
        pytest.importorskip(f"isps.citizen.{part}", reason=f"isps.citizen.{part} is not merged yet")
    from isps.citizen import applications as ap
    from isps.citizen.grievances.models import Grievance
    from tests import test_applications as apps
    from tests import test_grievances as griev

    app_id = apps.open_registration(province)                      # opened at apps.T0, 7 days to verify
    with transaction(province) as s:
        gid = griev.file(s, category="payment_not_received", household_id=griev.kasur_household(s)).id
    tasks = [t for t in w.default_tasks() if t.name.startswith("escalate_")]

    def run_at(when: datetime) -> dict:
        return {n: (o.status, o.result) for n, o in w.Worker(province, tasks, clock=w.Clock(when)).run_once().items()}

    # the application is on time at T0 + 6 days; the grievance (filed at its own T0) is already late
    assert run_at(apps.T0 + timedelta(days=6)) == {"escalate_applications": ("ok", {}),
                                                   "escalate_grievances": ("ok", {"escalated": 1})}
    assert run_at(apps.T0 + timedelta(days=8)) == {"escalate_applications": ("ok", {"escalated": 1}),
                                                   "escalate_grievances": ("ok", {})}
    with transaction(province) as s:
        assert ap.current_step(s, app_id).escalation_level == 1
        assert s.get(Grievance, gid).level == 2
    assert run_at(apps.T0 + timedelta(days=8))["escalate_applications"] == ("ok", {})   # once per lateness


def test_a_text_to_the_short_code_is_answered_by_the_worker_with_the_citizens_status(province):
    """The worker's receiving side with the short code's own answer: a CNIC texted from the phone
    registered for its household gets that household's status; a mistyped CNIC gets the form to use."""
    pytest.importorskip("isps.citizen.shortcode", reason="the short code is not merged yet")
    from isps.citizen import shortcode
    from isps.registry.cnic import formatted
    from isps.registry.models import Individual

    from isps.db import session_factory

    with session_factory(province)() as s:          # what the short code says, then undone (its audit row)
        person = s.scalars(select(Individual).where(Individual.cnic.is_not(None), Individual.phone.is_not(None),
                                                    Individual.date_of_death.is_(None)).order_by(Individual.id)
                           .limit(1)).one()
        phone, cnic = "92" + person.phone.replace("-", "")[1:], formatted(person.cnic)
        expected = shortcode.answer(s, phone, cnic, datetime.now())
        s.rollback()
    gateway = FakeGateway()
    receive = next(t for t in w.default_tasks(sms=w.Sms(gateway)) if t.name == "receive_messages")
    assert w.Worker(province, [receive]).run_once()["receive_messages"].result == {"listening": "fake"}
    gateway.on_text(phone, cnic, "smsc-1", datetime.now())
    assert gateway.sent[-1][1:] == (phone, expected) and expected
    gateway.on_text(phone, "35202-123", "smsc-2", datetime.now())
    assert gateway.sent[-1][1] == phone and "13" in gateway.sent[-1][2]
    gateway.on_text(phone, cnic, "smsc-1", datetime.now())                      # the gateway hands a text twice
    assert len(gateway.sent) == 2                                               # answered once


def test_the_reminders_suggest_replies_the_short_code_understands():
    import re

    shortcode = pytest.importorskip("isps.citizen.shortcode", reason="the short code is not merged yet")
    for kind, texts in w.REMINDER_TEXTS.items():
        english = re.findall(r"EMP [A-Z]+", texts["en"])
        urdu = re.findall(r"کام (?:بے روزگار|\S+?)(?=[،\s])", texts["ur"])
        assert len(english) == 4 and len(urdu) == 4, (kind, english, urdu)
        for reply in english + urdu:
            parsed = shortcode.parse(reply)
            assert parsed.kind == "emp" and parsed.status is not None, (kind, reply, parsed)

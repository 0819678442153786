"""``isps worker``: the one background process that runs all of ISPS's background work.

Each piece of work is a :class:`Task`: a name, how often it runs, and a function
``run(engine, now) -> dict`` that does its work in transactions of its own and returns counts.
The scheduler (:class:`Worker`) runs each task when it is due, in a small pool of threads, one run
of a task at a time, each under the task's lease (:mod:`isps.services.leases`): two worker
processes, or a worker and a web server draining events, never run one task at once. A task
that raises is recorded (the lease's ``last_error``) and logged; the others run on.

The tasks (:func:`default_tasks`):

* ``events`` -- :func:`isps.services.events.run_consumers`: re-scoring, re-assessment, deaths,
  duplicates, payments, bottom up (the ``events`` lease serialises it with every other drain);
* ``dci_notify`` -- the DCI notifier (:func:`isps.interop.dci.subscriptions.process_events`)
  and the retry of failed callbacks, which used to run only on an administrator's request;
* ``selfreport_reminders`` -- :func:`isps.labour.reports.schedule_reminders`, then one SMS per
  reminder owed, set-based (:func:`selfreport_sms`, key ``selfreport:<individual>:<due date>:<kind>``);
* ``escalate_applications``, ``escalate_grievances`` -- ``escalate_late(session, now)`` of
  :mod:`isps.citizen.applications` and :mod:`isps.citizen.grievances` (service-level times);
* ``pickup_messages``, ``credited_messages`` -- :mod:`isps.messaging.producers` (set-based);
* ``send_messages`` -- :func:`isps.messaging.dispatch.send_due` over this process's gateway;
* ``field_apply`` -- :func:`isps.fieldwork.apply.apply_pending`: field submissions stored but left
  ``received`` (a crash between storing and applying) applied, in batches.

* ``receive_messages`` -- starts the gateway's receiving side once (:func:`receive_messages`): a
  citizen's text is answered by the short code and the reply sent at once.

Moved clocks: every task is given ``now`` (``isps worker --now 2027-01-15T09:00`` runs as of that
time, advancing with the real clock); leases always use the real clock.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from isps.db import transaction
from isps.services import leases

log = logging.getLogger("isps.worker")

Run = Callable[[Engine, datetime], dict]
BACKOFF_LIMIT = 300.0   # seconds: the longest wait after repeated failures of a task


@dataclass(frozen=True)
class Task:
    name: str
    every: timedelta
    run: Run
    ttl: timedelta = leases.DEFAULT_TTL   # the lease's time to live (renewed while the task runs)
    about: str = ""                        # one line for the administrator's page


@dataclass
class Outcome:
    task: str
    status: str                  # ok | failed | busy (another process holds the lease)
    result: dict = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


class Clock:
    """The tasks' ``now``: the real time, or a moved time that advances with it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.offset = (start - datetime.now()) if start is not None else timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now() + self.offset


def run_task(engine: Engine, task: Task, now: datetime, holder: str) -> Outcome:
    """One run of ``task`` under its lease: ``busy`` when another process has it, ``failed`` with
    the error recorded when it raised, else ``ok`` with its result recorded. Never raises."""
    started = time.perf_counter()
    try:
        if not leases.acquire(engine, task.name, holder, task.ttl):
            return Outcome(task.name, "busy")
    except Exception as exc:  # noqa: BLE001 - the database is unreachable or busy: the next turn tries again
        log.warning("task %s: could not take its lease: %s", task.name, exc)
        return Outcome(task.name, "failed", {}, f"the lease could not be taken: {type(exc).__name__}: {exc}")
    result: dict = {}
    error: str | None = None
    try:
        with leases.Keeper(engine, task.name, holder, task.ttl):
            result = task.run(engine, now) or {}
    except Exception as exc:  # noqa: BLE001 - one task failing never stops the others; it is recorded
        log.exception("task %s failed", task.name)
        error = f"{type(exc).__name__}: {exc}"
    try:
        leases.release(engine, task.name, holder, result=result, error=error)
    except Exception:  # noqa: BLE001 - the lease then expires by itself
        log.exception("releasing the lease of task %s", task.name)
    seconds = round(time.perf_counter() - started, 3)
    if error is None:  # what was done is worth a line of the log; an idle turn is not
        log.log(logging.INFO if result else logging.DEBUG, "task %s: %s (%.2fs)", task.name, _summary(result), seconds)
        return Outcome(task.name, "ok", result, None, seconds)
    return Outcome(task.name, "failed", result, error, seconds)


def _summary(result: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in result.items()) or "nothing to do"


class Worker:
    """Runs tasks when due; :meth:`run_once` runs each once, :meth:`run_forever` until stopped."""

    def __init__(self, engine: Engine, tasks: Iterable[Task], *, clock: Clock | None = None,
                 holder: str | None = None, threads: int = 3) -> None:
        self.engine = engine
        self.tasks = list(tasks)
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError("task names must be unique")
        self.clock = clock or Clock()
        self.holder = holder or leases.new_holder("worker")
        self.threads = threads
        self.stop = threading.Event()
        self.stopped_hooks: list[Callable[[], None]] = []   # e.g. closing the SMS gateway

    def run_once(self) -> dict[str, Outcome]:
        """Every task once, one after the other (``isps worker --once``)."""
        return {t.name: run_task(self.engine, t, self.clock(), self.holder) for t in self.tasks}

    def run_forever(self, tick: float = 1.0) -> None:
        """Run each task when due until :attr:`stop` is set; running tasks finish their run."""
        due = {t.name: 0.0 for t in self.tasks}
        began: dict[str, float] = {}
        failures = {t.name: 0 for t in self.tasks}
        running: dict[str, Future] = {}
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="isps-worker")
        log.info("worker %s: %s", self.holder, ", ".join(f"{t.name} every {t.every}" for t in self.tasks))
        try:
            while not self.stop.is_set():
                for name in [n for n, f in running.items() if f.done()]:
                    outcome = running.pop(name).result()
                    every = next(t for t in self.tasks if t.name == name).every.total_seconds()
                    if outcome.status == "busy":     # another process has it: look again soon
                        due[name] = time.monotonic() + min(every, 5.0)
                        continue
                    # the next turn counts from this run's start; a task failing again and again
                    # waits longer each time (up to BACKOFF_LIMIT), so a dead gateway is not hammered
                    failures[name] = failures[name] + 1 if outcome.status == "failed" else 0
                    wait = every * 2 ** min(failures[name], 10) if failures[name] else every
                    due[name] = began[name] + min(wait, max(every, BACKOFF_LIMIT))
                now = time.monotonic()
                for task in self.tasks:
                    if task.name not in running and due[task.name] <= now:
                        began[task.name], due[task.name] = now, float("inf")
                        running[task.name] = pool.submit(run_task, self.engine, task, self.clock(), self.holder)
                soonest = min([d for d in due.values()] + [now + tick]) - time.monotonic()
                self.stop.wait(max(0.05, min(tick, soonest)))
        finally:
            log.info("worker %s stopping: waiting for %s", self.holder, ", ".join(running) or "no running task")
            pool.shutdown(wait=True)
            for hook in self.stopped_hooks:
                try:
                    hook()
                except Exception:  # noqa: BLE001
                    log.exception("stopping")

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT stop the loop gracefully (the main thread only)."""
        def handler(signum, _frame) -> None:
            log.info("signal %s: stopping", signal.Signals(signum).name)
            self.stop.set()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


# ---------------------------------------------------------------- the tasks

def events_task(engine: Engine, now: datetime) -> dict:
    """Drain the registry's events (the caller holds the ``events`` lease: the task's)."""
    from isps.services.events import run_consumers

    out = run_consumers(engine, on=now.date())
    return {k: v for k, v in out.items() if v}


DCI_NOTIFY = "dci_notify"  # the notifier's task and lease (``POST /dci/admin/notify`` takes it too)


def dci_notify(sender=None) -> Run:
    """The DCI notifier: notify subscribers of the events past their cursor, then send again the
    callbacks that failed. ``sender`` replaces the HTTPS sender (tests)."""
    def run(engine: Engine, now: datetime) -> dict:
        from isps import config
        from isps.interop.dci import service, subscriptions

        rt = service.Runtime(config.secret_key(), sender=sender)
        with transaction(engine) as s:
            counts = subscriptions.process_events(s, rt)
            counts["retried"] = service.retry_failed(s, rt)
        return {k: v for k, v in counts.items() if v}
    return run


# What the reminder says, by kind, in Urdu and English ({due}: the due date, {code}: the short code), with
# the short code's own EMP words (isps.citizen.shortcode.EMP_WORDS), so the reply is understood.
REMINDER_TEXTS = {
    "before": {
        "en": "ISPS: your quarterly work report is due on {due}. Text EMP JOB, EMP DAILY, EMP SELF or EMP NONE "
              "to {code}, or visit a One Window counter.",
        "ur": "ISPS: آپ کی سہ ماہی روزگار رپورٹ {due} کو دینی ہے۔ {code} پر کام نوکری، کام دیہاڑی، کام کاروبار یا "
              "کام بے روزگار لکھ کر بھیجیں، یا ون ونڈو کاؤنٹر پر تشریف لائیں۔",
    },
    "due": {
        "en": "ISPS: your quarterly work report is due today ({due}). Text EMP JOB, EMP DAILY, EMP SELF or EMP NONE "
              "to {code}, or visit a One Window counter.",
        "ur": "ISPS: آپ کی سہ ماہی روزگار رپورٹ آج ({due}) دینی ہے۔ {code} پر کام نوکری، کام دیہاڑی، کام کاروبار یا "
              "کام بے روزگار لکھ کر بھیجیں، یا ون ونڈو کاؤنٹر پر تشریف لائیں۔",
    },
    "overdue": {
        "en": "ISPS: your quarterly work report was due on {due} and has not come. Text EMP JOB, EMP DAILY, EMP SELF "
              "or EMP NONE to {code}; without it your labour record counts as out of date.",
        "ur": "ISPS: آپ کی سہ ماہی روزگار رپورٹ {due} کو دینی تھی اور ابھی تک نہیں آئی۔ {code} پر کام نوکری، کام دیہاڑی، "
              "کام کاروبار یا کام بے روزگار لکھ کر بھیجیں، ورنہ آپ کا روزگار کا اندراج پرانا شمار ہو گا۔",
    },
}
SHORT_CODE = "8123"
REMINDER_BATCH = 5000   # people whose reminders are queued per transaction (one INSERT … SELECT)


def _pending_reminders(on: date) -> tuple[str, dict]:
    """Reminders owed and not yet handed to the message queue: their day has come, the report they
    remind of is still the one due (no report since), not older than the grace period, and no later
    reminder of the same report is owed too (after a pause of the worker a person gets the newest
    reminder, not three at once; the older stays unsent)."""
    from isps.labour.vocab import GRACE_DAYS

    return ("""
        SELECT r.individual_id, r.due_on, r.kind, r.district_id, i.household_id, i.phone
        FROM labour_reminder r
        JOIN labour_person p ON p.individual_id = r.individual_id AND p.report_due = r.due_on
        JOIN individual i ON i.id = r.individual_id
        WHERE r.sent_at IS NULL AND r.send_on <= :on AND r.send_on >= :oldest
          AND i.phone IS NOT NULL AND i.date_of_death IS NULL
          AND NOT EXISTS (SELECT 1 FROM labour_reminder n WHERE n.individual_id = r.individual_id
                          AND n.due_on = r.due_on AND n.send_on > r.send_on AND n.send_on <= :on)
        ORDER BY r.individual_id, r.due_on, r.kind""",
            {"on": on, "oldest": on - timedelta(days=GRACE_DAYS + 1)})


def selfreport_sms(engine: Engine, now: datetime, lang: str = "ur") -> dict:
    """Owe the quarterly report's reminders whose day has come (set-based), then queue one SMS per
    reminder owed to a person with a valid mobile, idempotent by key, through
    :func:`isps.messaging.producers.queue_from_select` (one ``INSERT … SELECT`` per batch of
    people), and mark the reminders handed over (``labour_reminder.sent_at``, one UPDATE per batch)."""
    from isps.labour import reports
    from isps.messaging import producers

    on = now.date()
    with transaction(engine) as s:
        owed = reports.schedule_reminders(s, on)
    sql, params = _pending_reminders(on)
    params = {**params, "now": now}
    due = "CAST(r.due_on AS VARCHAR(10))"  # '2026-07-06' on both databases
    shown = f"SUBSTR({due}, 9, 2) || '-' || SUBSTR({due}, 6, 2) || '-' || SUBSTR({due}, 1, 4)"
    body = "CASE r.kind " + " ".join(
        f"WHEN '{kind}' THEN " + producers.template_sql(texts[lang], {"due": shown, "code": f"'{SHORT_CODE}'"},
                                                         params, prefix=kind)
        for kind, texts in REMINDER_TEXTS.items()) + " END"
    key = "'selfreport:' || CAST({t}.individual_id AS VARCHAR(20)) || ':' || CAST({t}.due_on AS VARCHAR(10)) || ':' || {t}.kind"
    source = f"""SELECT {key.format(t='r')} AS key, {body} AS body, r.individual_id AS individual_id,
            r.household_id AS household_id, r.district_id AS district_id, {producers.digits_sql('r.phone')} AS digits
        FROM ({sql}) r WHERE r.individual_id > :after AND r.individual_id <= :upto"""
    counts = {"queued": 0, "already": 0, "no_phone": 0}
    after = 0
    while True:
        with transaction(engine) as s:
            upto = s.scalar(text(f"""SELECT MAX(individual_id) FROM (SELECT DISTINCT individual_id FROM ({sql}) p
                WHERE individual_id > :after ORDER BY individual_id LIMIT :batch) b"""),
                            {**params, "after": after, "batch": REMINDER_BATCH})
            if upto is None:
                break
            got = producers.queue_from_select(s, source, {**params, "after": after, "upto": upto}, "reminder", lang)
            s.execute(text(f"""UPDATE labour_reminder SET sent_at = :now
                WHERE sent_at IS NULL AND send_on <= :on AND individual_id > :after AND individual_id <= :upto
                  AND EXISTS (SELECT 1 FROM sms_message m WHERE m.key = {key.format(t='labour_reminder')})"""),
                      {"now": now, "on": on, "after": after, "upto": upto})
        counts = {k: counts[k] + got[k] for k in counts}
        after = upto
    return {k: v for k, v in {"owed": owed, "queued": counts["queued"] + counts["already"],
                               "bad_phone": counts["no_phone"]}.items() if v}


def escalate(module: str) -> Run:
    """Service-level escalation of ``isps.citizen.<module>`` (applications or grievances): every
    step or grievance past its time moves up the hierarchy, set-based, in one transaction."""
    def run(engine: Engine, now: datetime) -> dict:
        import importlib

        late = importlib.import_module(f"isps.citizen.{module}").escalate_late
        with transaction(engine) as s:
            n = late(s, now)
        return {"escalated": n} if n else {}
    return run


def field_apply(engine: Engine, now: datetime) -> dict:
    """Apply the field submissions left ``received`` (the inbox applies each as it arrives; this
    catches those a crash left behind): :func:`isps.fieldwork.apply.apply_pending`. The re-scoring
    their changes call for follows through the ``events`` task."""
    from isps.fieldwork.apply import apply_pending

    return apply_pending(engine, now=now)


# ---------------------------------------------------------------- messages

class Sms:
    """This process's SMS gateway (:func:`isps.messaging.gateways.from_env` when first needed): the
    sending task and the receiving side share it (one SMPP connection)."""

    def __init__(self, gateway=None) -> None:
        self._gateway = gateway
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if self._gateway is None:
                from isps.messaging.gateways import from_env

                self._gateway = from_env()
            return self._gateway

    def close(self) -> None:
        with self._lock:
            if self._gateway is not None:
                self._gateway.close()


CREDITED_DAYS = 7   # payments confirmed paid this many days back are told (keys make it once each)


def pickup_messages(engine: Engine, now: datetime) -> dict:
    """Queue the pickup message of every slot still to come (``messaging.producers.pickup``, one
    INSERT ... SELECT per payroll, idempotent by slot)."""
    from isps.messaging import producers

    with transaction(engine) as s:
        payrolls = [p for (p,) in s.execute(text(
            "SELECT DISTINCT i.payroll_id FROM pickup_slot ps JOIN payment_instruction i ON i.id = ps.instruction_id "
            "WHERE ps.slot_start >= :now ORDER BY i.payroll_id"), {"now": now})]
        queued = sum(producers.pickup(s, p) for p in payrolls)
    return {"queued": queued} if queued else {}


def credited_messages(engine: Engine, now: datetime) -> dict:
    """Queue a "payment credited" message for every payment confirmed paid in the last
    :data:`CREDITED_DAYS` days (``messaging.producers.credited``, set-based, once per instruction)."""
    from isps.messaging import producers

    with transaction(engine) as s:
        queued = producers.credited(s, (now - timedelta(days=CREDITED_DAYS)).date())
    return {"queued": queued} if queued else {}


def send_messages(sms: Sms) -> Run:
    """Send what is due in the queue (``messaging.dispatch.send_due``: claims, retries, receipts)."""
    def run(engine: Engine, now: datetime) -> dict:
        from isps.messaging import dispatch

        return {k: v for k, v in dispatch.send_due(engine, sms.get(), now=now).items() if v}
    return run


def receive_messages(sms: Sms, handler=None) -> Run:
    """The gateway's receiving side: started on the task's first run (and again on the next turn
    if the message centre could not be reached), it then runs in the gateway's own thread: a
    citizen's text is stored and answered (``messaging.inbound.receive`` with the short code's
    :func:`isps.citizen.shortcode.answer`) and the reply sent at once
    (``messaging.dispatch.callbacks``); delivery receipts are recorded."""
    state = {"listening": False}

    def run(engine: Engine, now: datetime) -> dict:
        if state["listening"]:
            return {}
        from isps.messaging import dispatch

        from isps.services import sms as short_code

        answer = handler or short_code.handler()   # the short code's answer (none if it is not installed)
        gateway = sms.get()
        on_text, on_receipt = dispatch.callbacks(engine, gateway, answer)
        gateway.start(on_text, on_receipt)
        state["listening"] = True
        return {"listening": getattr(gateway, "name", "sms")}
    return run


def default_tasks(*, dci_sender=None, sms: Sms | None = None, sms_handler=None) -> list[Task]:
    """Every background task of ISPS, with how often it runs."""
    sms = sms or Sms()
    return [
        Task("events", timedelta(seconds=10), events_task, ttl=timedelta(minutes=5),
             about="registry events: re-scoring, re-assessment, deaths, duplicates, payments"),
        Task(DCI_NOTIFY, timedelta(seconds=30), dci_notify(dci_sender),
             about="DCI: notify partners' subscriptions, retry failed callbacks"),
        Task("selfreport_reminders", timedelta(hours=1), selfreport_sms,
             about="quarterly employment self-report: reminders owed, one SMS each"),
        Task("escalate_applications", timedelta(minutes=5), escalate("applications"),
             about="One Window: application steps past their service-level time move up"),
        Task("escalate_grievances", timedelta(minutes=5), escalate("grievances"),
             about="grievances past their service-level time move up the hierarchy"),
        Task("pickup_messages", timedelta(minutes=1), pickup_messages,
             about="an SMS for every pickup slot still to come"),
        Task("credited_messages", timedelta(minutes=15), credited_messages,
             about="an SMS for every payment confirmed paid"),
        Task("receive_messages", timedelta(seconds=30), receive_messages(sms, sms_handler),
             about="texts to the short code answered at once; delivery receipts"),
        Task("send_messages", timedelta(seconds=5), send_messages(sms),
             about="send the queued SMS: retries, receipts, nothing sent twice"),
        Task("field_apply", timedelta(minutes=1), field_apply,
             about="field submissions stored but not yet applied (surveys, visits, receipts, grievances)"),
    ]


def status(session: Session, tasks: Iterable[Task]) -> list[dict]:
    """Each task with its lease and last run, and when it is next due (the administrator's page);
    tasks no longer in the list but with a lease row come last."""
    rows = leases.lease_rows(session)
    now = leases.clock()
    out = []
    for t in tasks:
        row = rows.get(t.name)
        held = row is not None and row.holder is not None and row.expires_at is not None and row.expires_at >= now
        started = row.last_started if row else None
        out.append({"task": t.name, "every": t.every, "about": t.about,
                    "holder": row.holder if held else None, "expires_at": row.expires_at if held else None,
                    "last_started": started, "last_finished": row.last_finished if row else None,
                    "last_result": (row.last_result or {}) if row else {}, "last_error": row.last_error if row else None,
                    "next_due": (started + t.every) if started else None,
                    "overdue": bool(started and not held and started + t.every + timedelta(minutes=5) < now)})
    for name in sorted(set(rows) - {t.name for t in tasks}):
        row = rows[name]
        out.append({"task": name, "every": None, "about": "", "holder": row.holder, "expires_at": row.expires_at,
                    "last_started": row.last_started, "last_finished": row.last_finished,
                    "last_result": row.last_result or {}, "last_error": row.last_error, "next_due": None,
                    "overdue": False})
    return out


__all__ = ["Task", "Outcome", "Clock", "Worker", "run_task", "default_tasks", "status", "events_task",
           "dci_notify", "selfreport_sms", "escalate", "pickup_messages", "credited_messages", "send_messages",
           "receive_messages", "field_apply", "Sms", "REMINDER_TEXTS"]

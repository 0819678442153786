"""Long work started from a page, run in the background so the page answers at once.

Fitting a PMT, re-scoring every household with a newly activated model and deciding every
household by a means test take from seconds to minutes on a full registry. A web request that
did them itself would hold the browser (and a server thread) for all that time with nothing to
show. Instead the page starts a :class:`Job`: the work runs in a thread of its own, in one
transaction of its own (all or nothing, as from the CLI), and reports what it is doing through
``progress``; the page polls :func:`get` and shows the step and the time taken, then the result
or the refusal.

Jobs live in this server process's memory (the most recent :data:`KEEP`): the default
``isps serve`` runs one worker. Under several workers a poll may reach a worker that does not
know the job; the page then says so and points to where the outcome shows (the model list, the
runs), since what a job writes is committed to the database like any other change.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from isps.db import transaction

log = logging.getLogger(__name__)

KEEP = 200            # finished jobs remembered per process
WORKERS = 2           # jobs running at once; more wait their turn (the machine has few cores)
STATES = ("queued", "running", "done", "failed")

Progress = Callable[[str], None]
Work = Callable[[Session, Progress], dict]


@dataclass
class Job:
    id: str
    kind: str                  # e.g. "pmt.fit", "pmt.activate", "means_test"
    owner: str                 # the user who started it
    subject: str               # what it works on, in words (shown on the page)
    state: str = "queued"
    step: str = ""             # what it is doing now
    result: dict = field(default_factory=dict)
    error: str | None = None   # the refusal, in the domain's words
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return round((self.finished or time.time()) - self.started, 1)

    @property
    def over(self) -> bool:
        return self.state in ("done", "failed")


_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="isps-job")
_jobs: OrderedDict[str, Job] = OrderedDict()
_lock = threading.Lock()


def start(engine: Engine, kind: str, owner: str, subject: str, work: Work, *,
          refusals: tuple[type[Exception], ...] = (),
          on_failure: Callable[[Session, Job], None] | None = None) -> Job:
    """Run ``work(session, progress)`` in the background in one transaction; its dict is the result.

    An exception of ``refusals`` (the domain's own refusals) rolls the work back and is shown in
    its words; any other is logged and shown as an unexpected failure. ``on_failure`` then runs
    in a transaction of its own (to audit the refusal, which the rollback took away)."""
    job = Job(uuid.uuid4().hex, kind, owner, subject)
    with _lock:
        _jobs[job.id] = job
        while len(_jobs) > KEEP:
            oldest = next(iter(_jobs))
            if not _jobs[oldest].over:
                break
            _jobs.pop(oldest)
    _pool.submit(_run, engine, job, work, refusals, on_failure)
    return job


def _run(engine: Engine, job: Job, work: Work, refusals: tuple[type[Exception], ...],
         on_failure: Callable[[Session, Job], None] | None) -> None:
    job.state = "running"

    def progress(step: str) -> None:
        job.step = step

    try:
        with transaction(engine) as session:
            job.result = work(session, progress) or {}
        job.state = "done"
    except refusals as exc:
        job.error, job.state = str(exc), "failed"
    except Exception as exc:  # noqa: BLE001 - a background thread must record, never lose, a failure
        log.exception("background job %s (%s) failed", job.id, job.kind)
        job.error, job.state = f"unexpected failure ({type(exc).__name__}); nothing was changed", "failed"
    finally:
        job.finished = time.time()
    if job.state == "failed" and on_failure is not None:
        try:
            with transaction(engine) as session:
                on_failure(session, job)
        except Exception:  # noqa: BLE001
            log.exception("recording the failure of job %s", job.id)


def get(job_id: str) -> Job | None:
    with _lock:
        return _jobs.get(job_id)


def running(kind: str) -> Job | None:
    """A job of ``kind`` not yet finished (to refuse starting a second re-score while one runs)."""
    with _lock:
        return next((j for j in _jobs.values() if j.kind == kind and not j.over), None)


def recent(kinds: tuple[str, ...], limit: int = 5) -> list[Job]:
    """The newest jobs of these kinds, newest first."""
    with _lock:
        return [j for j in reversed(_jobs.values()) if j.kind in kinds][:limit]


def wait(job_id: str, timeout: float = 60.0) -> Job | None:
    """Block until the job is over (tests and scripts; pages poll instead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = get(job_id)
        if job is None or job.over:
            return job
        time.sleep(0.02)
    return get(job_id)

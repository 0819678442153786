"""Leases: which process may run a piece of background work now, and what its last run did.

One row per task in ``worker_lease``. A process takes a task's lease with ONE statement::

    UPDATE worker_lease SET holder = :me, expires_at = :until, last_started = :now
    WHERE task = :task AND (holder IS NULL OR expires_at < :now OR holder = :me)

and has it when that statement changed a row. On PostgreSQL a second UPDATE of the same row waits
for the first to commit and then re-checks its WHERE against the new row (so it finds the lease
taken); SQLite has one writer at a time. Either way two processes never hold one lease at once.
A holder renews its lease while it works (:func:`renew`, every third of the time to live), so a
long run keeps it, and a process that died loses it when it expires (no manual clean-up).
:func:`release` gives it back with the run's result or error, which the administrator's page shows.

Leases use the real clock (``datetime.now(UTC)``, stored naive), never a task's moved clock: a
demo run "as of next quarter" must not lock out tomorrow's worker.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from sqlalchemy import JSON, DateTime, String, Text, or_, select, text, update
from sqlalchemy import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from isps.db import Base, transaction

DEFAULT_TTL = timedelta(minutes=2)
ERROR_CHARS = 2000


class WorkerLease(Base):
    """A background task's lease (who runs it now, until when) and its last run."""

    __tablename__ = "worker_lease"
    task: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(120), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_started: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


def clock() -> datetime:
    """The real time, UTC, naive (as stored)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_holder(kind: str = "worker") -> str:
    """A holder name unique to this process and call: ``kind@host:pid:random``."""
    return f"{kind}@{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _ensure(engine: Engine, task: str) -> None:
    with transaction(engine) as s:
        s.execute(text("INSERT INTO worker_lease (task) VALUES (:task) ON CONFLICT (task) DO NOTHING"),
                  {"task": task})


def acquire(engine: Engine, task: str, holder: str, ttl: timedelta = DEFAULT_TTL, record: bool = True) -> bool:
    """Take ``task``'s lease for ``holder`` if it is free, expired or already ``holder``'s; with
    ``record`` the take is the start of a run shown on the administrator's page."""
    _ensure(engine, task)
    now = clock()
    with transaction(engine) as s:
        done = s.execute(update(WorkerLease).where(
            WorkerLease.task == task, or_(WorkerLease.holder.is_(None), WorkerLease.expires_at.is_(None),
                                          WorkerLease.expires_at < now, WorkerLease.holder == holder))
            .values(holder=holder, expires_at=now + ttl, **({"last_started": now} if record else {})))
        return (done.rowcount or 0) == 1


def renew(engine: Engine, task: str, holder: str, ttl: timedelta = DEFAULT_TTL) -> bool:
    """Extend a lease still held by ``holder``; False when it was lost (expired and taken)."""
    with transaction(engine) as s:
        done = s.execute(update(WorkerLease).where(WorkerLease.task == task, WorkerLease.holder == holder)
                         .values(expires_at=clock() + ttl))
        return (done.rowcount or 0) == 1


def release(engine: Engine, task: str, holder: str, result: dict | None = None, error: str | None = None,
            record: bool = True) -> None:
    """Give the lease back; with ``record``, keep the run's result or error as the task's last run."""
    now = clock()
    values: dict = {"holder": None, "expires_at": None}
    if record:
        values.update(last_finished=now, last_error=None if error is None else error[:ERROR_CHARS],
                      last_result=None if result is None else json.loads(json.dumps(result, default=str)))
    with transaction(engine) as s:
        s.execute(update(WorkerLease).where(WorkerLease.task == task, WorkerLease.holder == holder).values(**values))


class Keeper:
    """Renews a lease in a thread of its own while the holder works."""

    def __init__(self, engine: Engine, task: str, holder: str, ttl: timedelta = DEFAULT_TTL) -> None:
        self.engine, self.task, self.holder, self.ttl = engine, task, holder, ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{task}", daemon=True)

    def _run(self) -> None:
        every = max(self.ttl.total_seconds() / 3, 0.05)
        while not self._stop.wait(every):
            try:
                if not renew(self.engine, self.task, self.holder, self.ttl):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a busy database: try again at the next beat
                continue

    def __enter__(self) -> "Keeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Busy(Exception):
    """The lease is held by someone else (and waiting for it was not asked for, or timed out)."""


@contextmanager
def held(engine: Engine, task: str, *, wait: float = 0.0, ttl: timedelta = DEFAULT_TTL,
         holder: str | None = None, record: bool = False) -> Iterator[str]:
    """Hold ``task``'s lease for the block (renewed while it runs), waiting up to ``wait`` seconds
    for it; raises :class:`Busy` if it cannot be had. Yields the holder name."""
    me = holder or new_holder("call")
    deadline = time.monotonic() + wait
    pause = 0.05
    while not acquire(engine, task, me, ttl, record=record):
        if time.monotonic() >= deadline:
            raise Busy(f"{task}: another process is running it")
        time.sleep(min(pause, max(deadline - time.monotonic(), 0.01)))
        pause = min(pause * 2, 1.0)
    try:
        with Keeper(engine, task, me, ttl):
            yield me
    finally:
        release(engine, task, me, record=record)


def lease_rows(session: Session) -> dict[str, WorkerLease]:
    return {row.task: row for row in session.scalars(select(WorkerLease))}


__all__ = ["WorkerLease", "acquire", "renew", "release", "held", "Keeper", "Busy", "new_holder", "clock",
           "lease_rows", "DEFAULT_TTL"]

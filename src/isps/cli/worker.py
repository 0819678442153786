"""``isps worker``: run ISPS's background work (see :mod:`isps.services.worker`), and the demo's
way of starting it as a child process beside the server."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from isps.cli.common import Table, _engine, _fail, console
from isps.db import transaction


def worker(once: Annotated[bool, typer.Option("--once", help="run every task once and exit")] = False,
           only: Annotated[Optional[list[str]], typer.Option("--only", help="run only this task (repeatable)")] = None,
           now: Annotated[Optional[str], typer.Option("--now", help="run as of this time (ISO, e.g. 2027-01-15T09:00)")] = None,
           threads: Annotated[int, typer.Option(min=1, max=16, help="tasks running at once")] = 3,
           list_tasks: Annotated[bool, typer.Option("--list", help="list the tasks and their last runs")] = False) -> None:
    """Run the background work (events, DCI notifications, reminders, messages, escalations) until
    stopped (SIGTERM or Ctrl-C end it after the running tasks finish), or once with --once."""
    from isps.services import worker as w

    start = None
    if now is not None:
        try:
            start = datetime.fromisoformat(now)
        except ValueError:
            _fail(f"--now: {now!r} is not an ISO date or time (e.g. 2027-01-15T09:00)")
        if start.tzinfo is not None:
            start = start.astimezone().replace(tzinfo=None)
    engine = _engine()
    sms = w.Sms()
    tasks = w.default_tasks(sms=sms)
    if list_tasks:
        table = Table("task", "every", "holder", "last started (UTC)", "last finished (UTC)", "result", "error")
        with transaction(engine) as s:
            rows = w.status(s, tasks)
        for row in rows:
            table.add_row(row["task"], str(row["every"] or ""), row["holder"] or "", str(row["last_started"] or ""),
                          str(row["last_finished"] or ""), w._summary(row["last_result"]), row["last_error"] or "")
        console.print(table)
        return
    if only:
        unknown = sorted(set(only) - {t.name for t in tasks})
        if unknown:
            _fail(f"--only: no task called {', '.join(unknown)} (tasks: {', '.join(t.name for t in tasks)})")
        tasks = [t for t in tasks if t.name in only]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner = w.Worker(engine, tasks, clock=w.Clock(start), threads=threads)
    if once:
        failed = []
        try:
            outcomes = runner.run_once()
        finally:
            sms.close()
        for name, outcome in outcomes.items():
            if outcome.status == "failed":
                failed.append(name)
                console.print(f"{name}: [red]failed[/red] {outcome.error}")
            elif outcome.status == "busy":
                console.print(f"{name}: another process is running it")
            else:
                console.print(f"{name}: {w._summary(outcome.result)} ({outcome.seconds:.2f}s)")
        if failed:
            raise typer.Exit(1)
        return
    runner.stopped_hooks.append(sms.close)
    runner.stop_on_signals()
    console.print(f"worker {runner.holder}: {len(tasks)} tasks; stop with Ctrl-C or SIGTERM")
    runner.run_forever()


# ---------------------------------------------------------------- the demo's child process

def worker_command(python: str | None = None) -> list[str]:
    """The command line that starts ``isps worker`` with this interpreter (the demo's child)."""
    return [python or sys.executable, "-m", "isps.cli.main", "worker"]


def start_child(log_path: Path, env: dict | None = None) -> subprocess.Popen:
    """Start the worker beside the server, its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")  # noqa: SIM115 - the child writes to it for its whole life
    try:
        return subprocess.Popen(worker_command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})})
    finally:
        out.close()


def stop_child(child: subprocess.Popen, timeout: float = 30.0, settle: float = 3.0) -> int | None:
    """Stop the worker: Ctrl-C in the demo's terminal reached it too (one process group), so first
    give it ``settle`` seconds to end by itself; then SIGTERM (it finishes its running tasks), and
    kill it if it does not end in time."""
    try:
        child.wait(settle)
    except subprocess.TimeoutExpired:
        pass
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
    return child.returncode

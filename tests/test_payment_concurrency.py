"""Eight uploads of one status file at once, against the real server on PostgreSQL: the file is
applied once, the others are told so (409), and the server keeps answering meanwhile.

The review saw four parallel uploads freeze every request: the route ran the blocking
reconciliation (row locks) on the event loop, so the transaction holding the lock could never
commit. The server here is uvicorn on a free local port, in a thread of this process."""

from __future__ import annotations

import socket
import threading
import time
from datetime import date

import httpx
import pytest
from sqlalchemy import text

from isps.db import transaction
from isps.payments import payroll as pr
from tests.conftest import PASSWORD
from tests.test_payments import approved_kafaalat_cycle, exported_payroll

UPLOADS = 8


def _exported_payroll(engine, folder) -> tuple[int, int]:
    """An exported payroll of bisp_kafaalat: (payroll id, instructions)."""
    cycle_id = approved_kafaalat_cycle(engine)
    with transaction(engine) as s:
        pr.release_funds(s, "bisp_kafaalat", 100_000_000, "RO-1", "treasury")
        p = exported_payroll(s, cycle_id, folder)
        return p.id, p.instructions


class _Server:
    """uvicorn serving the app on a socket bound to a free port, in a daemon thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_eight_uploads_of_one_status_file_apply_it_once_and_the_server_keeps_answering(province, tmp_path):
    from isps.api.app import create_app

    payroll_id, n = _exported_payroll(province, tmp_path / "files")
    with transaction(province) as s:
        status = pr.bank_status_csv(s, payroll_id, paid=0.8, failed=0.1, unclaimed=0.1, on=date(2026, 7, 10))
        paid_lines = status.count(b",paid,")
    with _Server(create_app(province, secret="test-secret")) as server:
        with httpx.Client(base_url=server.url, timeout=20) as c:
            r = c.post("/api/v1/auth/token", data={"username": "manager", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        answers: list[tuple[int, dict]] = []
        slow: list[float] = []
        uploading = threading.Event()
        barrier = threading.Barrier(UPLOADS)

        def upload(k: int) -> None:
            with httpx.Client(base_url=server.url, timeout=20) as c:
                barrier.wait()
                uploading.set()
                r = c.post(f"/api/v1/payments/status-files?name=copy-{k}.csv", content=status, headers=headers)
                answers.append((r.status_code, r.json()))

        def poll(done: threading.Event) -> None:
            with httpx.Client(base_url=server.url, timeout=5) as c:
                uploading.wait(10)
                while not done.is_set():
                    t = time.perf_counter()
                    try:
                        ok = c.get("/api/v1/me", headers=headers).status_code == 200
                    except httpx.TimeoutException:
                        ok = False
                    took = time.perf_counter() - t
                    if not ok or took >= 1.0:
                        slow.append(took)
                    time.sleep(0.02)

        done = threading.Event()
        poller = threading.Thread(target=poll, args=(done,))
        poller.start()
        threads = [threading.Thread(target=upload, args=(k,)) for k in range(UPLOADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        done.set()
        poller.join(timeout=10)
    assert not slow, f"GET /api/v1/me took {max(slow):.2f} s (or failed) while status files were uploaded"
    assert len(answers) == UPLOADS
    codes = sorted(code for code, _ in answers)
    assert codes == [200] + [409] * (UPLOADS - 1), answers
    applied = next(body for code, body in answers if code == 200)
    assert applied["applied"] == n and applied["rejected"] == 0
    for code, body in answers:
        if code == 409:
            assert ("being applied by another upload" in body["detail"]
                    or f"already imported as import {applied['import_id']}" in body["detail"]), body
    with transaction(province) as s:
        assert s.execute(text("SELECT COUNT(*) FROM payment_status_import")).scalar_one() == 1
        assert s.execute(text("SELECT COUNT(*) FROM payment_status_line WHERE outcome = 'applied'")).scalar_one() == n
        # each instruction changed once: one posting per paid instruction, as many as the file said
        paid = s.execute(text("SELECT COUNT(*) FROM payment_instruction WHERE status = 'paid'")).scalar_one()
        assert paid == paid_lines == s.execute(text("SELECT COUNT(*) FROM ledger_entry WHERE kind = 'pd'")).scalar_one()
        assert pr.ledger_check(s)["balanced"]
        idle = s.execute(text("""SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()
            AND state = 'idle in transaction'""")).scalar_one()
        assert idle == 0

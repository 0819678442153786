"""Schemathesis against the served OpenAPI documents: ``/api/v1/openapi.json`` (every operation of the
API, with an administrator's bearer token) and ``/dci/openapi.json`` (the DCI operations ISPS
implements, with a registered partner's token; each generated envelope is re-addressed and signed
with the partner's key, so that the fuzzed message reaches the search and subscription code instead
of stopping at the signature check).

Every case is sent to a real uvicorn server on 127.0.0.1. A case fails on a server error (5xx) or on
a response that does not conform to the schema documented for its status. Generation is
deterministic (Hypothesis ``derandomize``), positive and negative cases alike.

``python -m bench.fuzz --max-examples 100`` loads a synthetic registry of its own (``--n``
households, seed 7, the test fixture's) on each backend and writes the ``api.fuzz`` row of each to
``bench/results/api.fuzz.json``; tests/test_api_fuzz.py runs the same at a CI budget.
"""

from __future__ import annotations

import argparse
import logging
import re
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx

ISPS_ID = "isps.punjab.gov.pk"
PASSWORD = "fuzz-pass-123"
PARTNER_ID = "fuzz.partner.example"


@dataclass
class Finding:
    """One kind of failure: an operation, the status it answered and the cause (exception or check)."""
    operation: str
    kind: str  # "server_error" | "schema_violation"
    status: int
    cause: str
    example: str = ""
    count: int = 0


@dataclass
class Summary:
    operations: int = 0
    cases: int = 0
    server_errors: int = 0
    schema_violations: int = 0
    statuses: Counter = field(default_factory=Counter)
    findings: dict[tuple, Finding] = field(default_factory=dict)

    def add(self, operation: str, kind: str, status: int, cause: str, example: str) -> None:
        if kind == "server_error":
            self.server_errors += 1
        else:
            self.schema_violations += 1
        f = self.findings.setdefault((operation, kind, status, cause), Finding(operation, kind, status, cause, example))
        f.count += 1

    def report(self) -> str:
        lines = [f"{self.operations} operations, {self.cases} cases, {self.server_errors} server errors, "
                 f"{self.schema_violations} schema violations; statuses {dict(sorted(self.statuses.items()))}"]
        by_cause: dict[tuple, list[Finding]] = defaultdict(list)
        for f in self.findings.values():
            by_cause[(f.kind, f.cause)].append(f)
        for (kind, cause), items in sorted(by_cause.items(), key=lambda kv: (kv[0][0], -sum(f.count for f in kv[1]))):
            lines.append(f"\n[{kind}] {cause}  ({sum(f.count for f in items)} cases)")
            for f in sorted(items, key=lambda f: f.operation):
                lines.append(f"  {f.operation} -> {f.status} x{f.count}\n      {f.example}")
        return "\n".join(lines)


class _Captured(logging.Handler):
    """Collects the server's logged exceptions: requests are sent one at a time, so whatever was
    logged during a case belongs to it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> str:
        causes = []
        for r in self.records:
            if r.exc_info and r.exc_info[1] is not None:
                exc = r.exc_info[1]
                frames = traceback.extract_tb(exc.__traceback__)
                own = [f for f in frames if "/isps/" in f.filename] or frames
                where = f"{own[-1].filename.split('/src/')[-1]}:{own[-1].lineno}" if own else "?"
                message = _shape(str(exc).splitlines()[0][:160]) if str(exc) else ""
                causes.append(f"{type(exc).__name__}: {message} at {where}")
            else:
                causes.append(_shape(r.getMessage()[:160]))
        self.records.clear()
        return "; ".join(causes)


@contextmanager
def serve(app) -> Iterator[str]:
    """The app under uvicorn in a thread on a free port; stopped on exit."""
    import uvicorn

    from bench.run import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           log_config=None))  # keep the caller's handlers
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def register_partner(engine, fields: list[str] | None = None):
    """A DCI partner with an Ed25519 key and a data-sharing agreement: (client_id, secret, key)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from isps.db import transaction
    from isps.interop.dci import partners, signing

    key = ed25519.Ed25519PrivateKey.generate()
    fields = fields or ["identifier", "name", "sex", "birth_date", "death_date", "relationship_head", "place",
                        "poverty_score", "group_size", "member_list", "group_identifier", "registration_date"]
    with transaction(engine) as s:
        row, secret = partners.register_partner(s, PARTNER_ID, "Fuzz partner", "https://fuzz.partner.example/dci")
        partners.add_key(s, row.id, "k1", "ed25519", signing.public_pem(key))
        partners.set_agreement(s, row.id, "DSA-FUZZ", "fuzzing", fields, False, "admin")
        client_id = row.client_id
    return client_id, secret, key


def tokens(base: str, admin: str, password: str, client_id: str, secret: str) -> tuple[str, str]:
    """An administrator's bearer token for /api/v1 and the partner's for /dci."""
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/api/v1/auth/token", data={"username": admin, "password": password})
        r.raise_for_status()
        api = r.json()["access_token"]
        r = c.post("/dci/oauth2/client/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                                       "client_secret": secret})
        r.raise_for_status()
        return api, r.json()["access_token"]


def _signer(key) -> Callable:
    """Re-address a generated DCI envelope to ISPS from the partner, give it a fresh message_id and
    sign it: whatever else the fuzzer put in the header and message stays as generated."""
    from isps.interop.dci import signing

    def sign(case) -> None:
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("header"), dict):
            h = body["header"]
            h.update(sender_id=PARTNER_ID, receiver_id=ISPS_ID, message_id=uuid.uuid4().hex,
                     message_ts=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            try:
                body["signature"] = signing.sign(key, PARTNER_ID, "k1", h, body.get("message"))
            except (TypeError, ValueError):  # a message that cannot be serialised is sent unsigned
                pass
    return sign


def _shape(message: str) -> str:
    """A failure's cause with the generated values taken out, so that one defect is one group."""
    return re.sub(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|-?\d+(?:\.\d+)?", "…", message)


def fuzz_schema(schema_url: str, token: str, max_examples: int, summary: Summary, captured: _Captured,
                prepare: Callable | None = None, seed: int = 0) -> None:
    import hypothesis
    import hypothesis.errors
    import schemathesis
    from hypothesis import HealthCheck, Phase
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import response_schema_conformance

    schema = schemathesis.openapi.from_url(schema_url)
    headers = {"Authorization": f"Bearer {token}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.full_path}"
        summary.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @hypothesis.settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                                 phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                                 print_blob=False)
            @hypothesis.seed(seed)
            @hypothesis.given(case=strategy)
            def run(case) -> None:
                if prepare is not None:
                    prepare(case)
                captured.take()
                try:
                    response = case.call(headers=headers, timeout=60)
                except Exception as exc:  # noqa: BLE001 - a dropped connection is a server failure too
                    summary.cases += 1
                    summary.add(label, "server_error", 0, f"{type(exc).__name__}: {str(exc)[:120]}", "")
                    return
                summary.cases += 1
                summary.statuses[response.status_code] += 1
                example = case.as_curl_command(headers={"Authorization": "Bearer <token>"})[:400]
                if response.status_code >= 500:
                    for _ in range(20):  # the server logs the exception just after it has answered
                        if captured.records:
                            break
                        time.sleep(0.025)
                    cause = captured.take() or _shape(response.text[:160])
                    summary.add(label, "server_error", response.status_code, cause, example)
                    return
                try:
                    case.validate_response(response, checks=[response_schema_conformance])
                except (AssertionError, BaseExceptionGroup) as exc:  # Schemathesis's Failure or FailureGroup
                    failures = getattr(exc, "exceptions", [exc])
                    cause = "; ".join(getattr(f, "title", type(f).__name__) + ": " +
                                      str(getattr(f, "message", f)).splitlines()[0][:200] for f in failures)
                    summary.add(label, "schema_violation", response.status_code, _shape(cause), example)

            try:
                run()
            except (hypothesis.errors.Unsatisfiable, hypothesis.errors.FailedHealthCheck):
                pass  # nothing to negate (an operation without parameters) or nothing to generate


def fuzz(app, engine, admin: str, password: str, max_examples: int) -> Summary:
    """Serve ``app`` (over ``engine``, where ``admin`` is an administrator) and fuzz both documents."""
    client_id, secret, key = register_partner(engine)
    app.state.dci_sender = lambda url, envelope: None  # callbacks go nowhere
    captured = _Captured()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "isps", "isps.dci")]
    for lg in loggers:
        lg.addHandler(captured)
    summary = Summary()
    try:
        with serve(app) as base:
            api_token, dci_token = tokens(base, admin, password, client_id, secret)
            fuzz_schema(f"{base}/api/v1/openapi.json", api_token, max_examples, summary, captured)
            fuzz_schema(f"{base}/dci/openapi.json", dci_token, max_examples, summary, captured, prepare=_signer(key))
    finally:
        for lg in loggers:
            lg.removeHandler(captured)
    return summary


def main() -> None:
    import tempfile
    from datetime import date
    from pathlib import Path

    from bench.run import fresh_database, record
    from isps.access.service import create_user
    from isps.api.app import create_app
    from isps.db import make_engine, transaction
    from isps.migrate import upgrade
    from isps.synth.load import load_synthetic
    from isps.targeting import pmt

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=100, help="per operation and generation mode")
    parser.add_argument("--n", type=int, default=600, help="households in the registry")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            engine = make_engine(fresh_database(backend, Path(tmp), "isps_bench_fuzz"))
            upgrade(engine)
            load_synthetic(engine, args.n, seed=7)
            with transaction(engine) as s:
                pmt.rescore_all(s, pmt.active_model(s), on=date(2026, 6, 1))
                create_user(s, "admin", PASSWORD, "administrator")
            started = time.perf_counter()
            summary = fuzz(create_app(engine, secret=uuid.uuid4().hex), engine, "admin", PASSWORD, args.max_examples)
            print(summary.report())
            record("api.fuzz", row(backend, args.n, summary, time.perf_counter() - started))
            failed |= bool(summary.server_errors or summary.schema_violations)
            engine.dispose()
    raise SystemExit(1 if failed else 0)


def row(backend: str, n: int, summary: Summary, seconds: float) -> dict:
    return {"backend": backend, "n": n, "operations": summary.operations, "cases": summary.cases,
            "server_errors": summary.server_errors, "schema_violations": summary.schema_violations,
            "seconds": round(seconds, 1)}


if __name__ == "__main__":
    main()

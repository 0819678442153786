"""Schemathesis against the served OpenAPI of /api/v1 (an administrator's token) and of /dci (a
registered partner's token, signed envelopes), on both backends: no server error and no response
that breaks its documented schema, over at least 80 operations. The summary is the benchmark row
``api.fuzz`` (bench/results/api.fuzz.json); ``python -m bench.fuzz --max-examples 100`` runs the same
at a bigger budget. The harness is bench/fuzz.py.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import CI, PASSWORD

if not CI:
    pytest.importorskip("schemathesis", reason="Schemathesis is in the test extra: pip install -e '.[test]'")

# Cases per operation and generation mode (positive, negative): about 3,200 cases, 70 s on SQLite
# a backend on 2 cores. Generation is derandomised, so every run sends the same cases.
MAX_EXAMPLES = int(os.environ.get("ISPS_FUZZ_EXAMPLES", "20"))


def test_api_fuzz(province, request):
    from bench.fuzz import fuzz, row
    from bench.run import record
    from isps.api.app import create_app

    backend = request.node.callspec.params["engine"]
    started = time.perf_counter()
    summary = fuzz(create_app(province, secret="fuzz-secret"), province, "admin", PASSWORD, MAX_EXAMPLES)
    record("api.fuzz", row(backend, 600, summary, time.perf_counter() - started))
    report = summary.report()
    assert summary.operations >= 80, report
    assert summary.server_errors == 0 and summary.schema_violations == 0, report

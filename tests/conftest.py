"""Test fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ISPS_TEST_PG_URL (default: the local server, database
``test``); each test session works in a fresh database of its own. With CI=true
a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from isps.access.service import create_user
from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.synth.load import load_synthetic

PG_ADMIN_URL = os.environ.get("ISPS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "test-pass-123"


def _pg_available() -> str | None:
    try:
        eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_database():
    problem = _pg_available()
    if problem:
        if CI:
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    name = f"isps_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _fresh_pg_schema(url: str, schema: str):
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return make_engine_with_schema(url, schema)


def make_engine_with_schema(url: str, schema: str):
    from sqlalchemy import event

    eng = make_engine(url)

    @event.listens_for(eng, "connect")
    def _search_path(dbapi_conn, _rec):  # pragma: no cover - driver hook
        cur = dbapi_conn.cursor()
        cur.execute(f'SET search_path TO "{schema}"')
        cur.close()
        dbapi_conn.commit()

    return eng


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """An empty, migrated registry on each backend."""
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'isps.db'}")
    else:
        url = request.getfixturevalue("pg_database")
        eng = _fresh_pg_schema(url, "t_" + uuid.uuid4().hex[:8])
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def province(engine):
    """A small synthetic province (600 households, seed 7) with one user per role.

    Users: admin, manager, auditor (province-wide); lahore_officer scoped to Lahore (id 1);
    kasur_counter, kasur_officer and kasur_grievance scoped to Kasur (id 2). All share the
    password PASSWORD.
    """
    load_synthetic(engine, 600, seed=7)
    from isps.targeting import pmt

    with transaction(engine) as s:
        pmt.rescore_all(s, pmt.active_model(s), on=date(2026, 6, 1))
        create_user(s, "admin", PASSWORD, "administrator")
        create_user(s, "manager", PASSWORD, "program_manager")
        create_user(s, "auditor", PASSWORD, "auditor")
        create_user(s, "lahore_officer", PASSWORD, "district_officer", district_id=1)
        create_user(s, "kasur_counter", PASSWORD, "counter_operator", district_id=2)
        create_user(s, "kasur_officer", PASSWORD, "district_officer", district_id=2)
        create_user(s, "kasur_grievance", PASSWORD, "grievance_officer", district_id=2)
        create_user(s, "kasur_supervisor", PASSWORD, "field_supervisor", district_id=2)
        create_user(s, "kasur_enumerator", PASSWORD, "enumerator", district_id=2)
    return engine


def page_client(app):
    """A TestClient that behaves like a browser on an ISPS page: once signed in, its unsafe requests
    carry the session's anti-forgery token, as every form (hidden field) and htmx request (header)
    of the pages do. Tests of forged requests send their own headers or use a plain TestClient."""
    from fastapi.testclient import TestClient

    class PageClient(TestClient):
        def request(self, method, url, **kwargs):
            headers = dict(kwargs.pop("headers", None) or {})
            token = self.app.state.tokens.csrf(self.cookies.get("isps_session"))
            if method.upper() in ("POST", "PUT", "PATCH", "DELETE") and token and "X-CSRF-Token" not in headers:
                headers["X-CSRF-Token"] = token
            return super().request(method, url, headers=headers or None, **kwargs)

    return PageClient(app)


@pytest.fixture
def client(province):
    from isps.api.app import create_app

    app = create_app(province, secret="test-secret")
    with page_client(app) as c:
        yield c


def token_for(client, username: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def nav_to(page, name: str) -> None:
    """Follow the main navigation's link called ``name`` in a browser page, opening its group first
    when the link sits in a closed group (the navigation's <details> menus)."""
    nav = page.get_by_role("navigation")
    link = nav.get_by_role("link", name=name, exact=True)
    if not link.is_visible():
        nav.locator(f'details.nav-group:has(a:text-is("{name}")) > summary').click()
    link.click()

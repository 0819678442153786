"""Test fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ISPS_TEST_PG_URL (default: the local server, database
``test``); each test session works in a fresh database of its own. With CI=true
a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import date

import pytest
from sqlalchemy import create_engine, make_url, text

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


class Templates:
    """Registries built once per test process and copied for each test: a migrated empty registry and the
    small province (``province``), on each backend. Migrating a registry runs every branch of migrations
    (over a second) and the province's users hash their passwords; a copy costs milliseconds on SQLite (the
    file) and a fraction of a second on PostgreSQL, so the suite spends its time on the tests.

    PostgreSQL copies are schemas of one database per test process (dropped with it at the end, one drop:
    a ``CREATE DATABASE ... TEMPLATE`` per test would need a ``DROP DATABASE`` per test, each waiting for a
    checkpoint). A template schema is migrated and filled once; ``pg_dump --schema-only`` gives its DDL,
    which a copy runs under its own schema name, then copies every table's rows (triggers and foreign keys
    off: ``session_replication_role = replica``) and sets every sequence where the template's stands."""

    def __init__(self, directory) -> None:
        self.directory = directory
        self.sqlite_files: dict[str, str] = {}
        self.tag = uuid.uuid4().hex[:10]
        self._admin = None
        self._database: str | None = None
        self._pg: dict[str, tuple[str, str, list[str], list[str]]] = {}

    @staticmethod
    def fill(eng, kind: str) -> None:
        upgrade(eng)
        if kind == "province":
            _load_province(eng)

    def sqlite(self, kind: str) -> str:
        if kind not in self.sqlite_files:
            path = self.directory / f"template_{kind}.db"
            eng = make_engine(f"sqlite:///{path}")
            self.fill(eng, kind)
            with eng.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            eng.dispose()
            self.sqlite_files[kind] = str(path)
        return self.sqlite_files[kind]

    def admin(self):
        if self._admin is None:
            problem = _pg_available()
            if problem:
                if CI:
                    pytest.fail(f"PostgreSQL is required in CI and is not reachable: {problem}")
                pytest.skip(f"PostgreSQL not reachable: {problem}")
            self._admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        return self._admin

    def pg_url(self) -> str:
        """This process's database (made on first use)."""
        if self._database is None:
            name = f"isps_test_{self.tag}"
            with self.admin().connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            self._database = name
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self._database

    def _pg_template(self, kind: str) -> tuple[str, str, list[str], list[str]]:
        if kind not in self._pg:
            schema = f"tpl_{kind}_{self.tag}"
            eng = _fresh_pg_schema(self.pg_url(), schema)
            self.fill(eng, kind)
            with eng.connect() as conn:
                tables = [t for t in conn.execute(text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND c.relkind = 'r' ORDER BY c.relname"), {"s": schema}).scalars()
                    if conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{schema}"."{t}")')).scalar()]
                sequences = conn.execute(text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :s AND c.relkind = 'S'"), {"s": schema}).scalars().all()
            eng.dispose()
            url = make_url(self.pg_url())
            dump = subprocess.run(
                ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", f"--schema={schema}",
                 "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
                 url.database],
                capture_output=True, check=True, text=True).stdout
            # psql's meta-commands (\\restrict, since 15.14) are not SQL
            dump = "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))
            self._pg[kind] = (schema, dump, tables, list(sequences))
        return self._pg[kind]

    def pg_copy(self, kind: str) -> str:
        """A new schema holding a copy of the ``kind`` template: its name."""
        template, dump, tables, sequences = self._pg_template(kind)
        schema = "t_" + uuid.uuid4().hex[:10]
        eng = make_engine(self.pg_url())
        try:
            raw = eng.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute(dump.replace(template, schema))
                cur.execute("SET session_replication_role = replica")
                cur.execute("; ".join(f'INSERT INTO "{schema}"."{t}" SELECT * FROM "{template}"."{t}"'
                                      for t in tables))
                if sequences:
                    cur.execute("; ".join(
                        f"SELECT setval('\"{schema}\".\"{q}\"', last_value, is_called) FROM \"{template}\".\"{q}\""
                        for q in sequences))
                raw.commit()
            finally:
                raw.close()
        finally:
            eng.dispose()
        return schema

    def close(self) -> None:
        if self._admin is not None:
            if self._database is not None:
                with self._admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)'))
            self._admin.dispose()


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    t = Templates(tmp_path_factory.mktemp("templates"))
    yield t
    t.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path, templates):
    """A migrated registry on each backend: empty, or the small province when the test (or a fixture
    it uses) asks for ``province``. A copy of a template built once per process (:class:`Templates`)."""
    kind = "province" if "province" in request.fixturenames else "empty"
    if request.param == "sqlite":
        path = tmp_path / "isps.db"
        shutil.copyfile(templates.sqlite(kind), path)
        eng = make_engine(f"sqlite:///{path}")
    else:
        eng = make_engine_with_schema(templates.pg_url(), templates.pg_copy(kind))
    yield eng
    eng.dispose()


def _load_province(engine) -> None:
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


@pytest.fixture
def province(engine):
    """A small synthetic province (600 households, seed 7, scored on 2026-06-01) with one user per role.

    Users: admin, manager, auditor (province-wide); lahore_officer scoped to Lahore (id 1);
    kasur_counter, kasur_officer, kasur_grievance, kasur_supervisor and kasur_enumerator scoped to Kasur
    (id 2). All share the password PASSWORD. ``engine`` holds it already (copied from a template)."""
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

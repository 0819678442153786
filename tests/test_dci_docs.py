"""docs/dci.md as a partner follows it, on both backends: its ``isps partners`` and ``openssl`` steps,
then its Python examples run verbatim (a sync search, and an async search whose on-search callback
reaches the example's own HTTP receiver) and its ``curl`` commands, against a live ISPS (uvicorn)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bench.run import free_port
from isps.db import transaction
from isps.registry.cnic import formatted
from isps.registry.models import Individual

DOC = Path(__file__).resolve().parents[1] / "docs" / "dci.md"
SENDER = "spmis.example.gov.pk"


def blocks(language: str) -> list[str]:
    """The fenced code blocks of docs/dci.md in ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.M | re.S)


def live_isps(engine):
    """ISPS served by uvicorn on a free port, in a thread of this process (bench.fuzz's harness)."""
    from bench.fuzz import serve
    from isps.api.app import create_app

    return serve(create_app(engine, secret="docs-secret"))


@pytest.fixture
def cli(province, monkeypatch):
    import isps.cli.common as common
    from isps.cli.main import app

    monkeypatch.setattr(common, "_engine", lambda: province)
    monkeypatch.setattr(common.console, "width", 80)

    def run(*args: str) -> str:
        r = CliRunner().invoke(app, ["partners", *args])
        assert r.exit_code == 0, r.output
        return r.output
    return run


def _registered(output: str) -> tuple[str, str]:
    """client_id and secret as `isps partners register` prints them."""
    client_id = re.search(r"client_id (\S+)", output).group(1)
    lines = output.splitlines()
    secret = lines[next(i for i, line in enumerate(lines) if line.startswith("client_secret")) + 1].strip()
    return client_id, secret


def _person(engine) -> Individual:
    with transaction(engine) as s:
        return s.scalars(select(Individual).where(Individual.cnic.is_not(None), Individual.id_document == "cnic",
                                                  Individual.date_of_death.is_(None)).order_by(Individual.id)).first()


def test_a_partner_following_docs_dci_md_searches_sync_and_async(province, cli, tmp_path, monkeypatch, capsys):
    person = _person(province)
    callback_port = free_port()
    # section 2: the key pair, made with the documented openssl commands
    openssl = next(b for b in blocks("bash") if "openssl genpkey" in b)
    for line in openssl.splitlines():
        if line.startswith("openssl"):
            subprocess.run(line, shell=True, check=True, cwd=tmp_path)
    # sections 1-3: registration, key, agreement requiring consent, the person's consent
    client_id, secret = _registered(cli("register", SENDER, "--name", "Example SPMIS",
                                        "--callback", f"http://127.0.0.1:{callback_port}/dci"))
    cli("key", SENDER, "--kid", "k1", "--pem", str(tmp_path / "partner-key.pub.pem"), "--algorithm", "ed25519")
    cli("agreement", SENDER, "--reference", "DSA-2026-01", "--purpose", "kafaalat-enrolment",
        "--fields", "identifier,name,sex,birth_date,relationship_head", "--consent")
    cli("consent", SENDER, formatted(person.cnic), "--evidence", "form C-7")

    python = blocks("python")
    assert len(python) == 3
    with live_isps(province) as isps:
        for name, value in {"ISPS": isps, "DCI_SENDER_ID": SENDER, "DCI_CLIENT_ID": client_id,
                            "DCI_CLIENT_SECRET": secret, "DCI_KEY_FILE": str(tmp_path / "partner-key.pem"),
                            "DCI_KEY_ID": "k1", "CNIC": formatted(person.cnic),
                            "CALLBACK_PORT": str(callback_port)}.items():
            monkeypatch.setenv(name, value)
        namespace: dict = {"__name__": "dci_docs"}
        exec(compile(python[0] + python[1], "docs/dci.md (sync search)", "exec"), namespace)
        assert capsys.readouterr().out == f"ref-1 urn:isps:individual:{person.id} {person.full_name}\n"
        exec(compile(python[2], "docs/dci.md (async search)", "exec"), namespace)
        assert capsys.readouterr().out == f"async urn:isps:individual:{person.id}\n"

        # section 4: the token with curl
        token_curl = next(b for b in blocks("bash") if "curl" in b and "TOKEN=" not in b)
        out = subprocess.run(["bash", "-c", token_curl], check=True, capture_output=True, text=True).stdout
        assert '"token_type":"Bearer"' in out and '"access_token"' in out


def test_a_test_partner_searches_with_curl_and_a_placeholder_signature(province, cli, monkeypatch):
    person = _person(province)
    monkeypatch.setenv("ISPS_DCI_TEST_PARTNERS", "1")
    client_id, secret = _registered(cli("register", "conformance.sandbox", "--name", "Conformance suite",
                                        "--callback", "https://suite.example/dci", "--test", "--accept-unsigned"))
    cli("agreement", "conformance.sandbox", "--reference", "SANDBOX", "--purpose", "conformance",
        "--fields", "identifier,name,sex,birth_date", "--no-consent")
    search = next(b for b in blocks("bash") if "TOKEN=" in b)
    with live_isps(province) as isps:
        for name, value in {"ISPS": isps, "DCI_SENDER_ID": "conformance.sandbox", "DCI_CLIENT_ID": client_id,
                            "DCI_CLIENT_SECRET": secret, "CNIC": formatted(person.cnic)}.items():
            monkeypatch.setenv(name, value)
        out = subprocess.run(["bash", "-c", search], check=True, capture_output=True, text=True).stdout
    assert '"status":"succ"' in out and f"urn:isps:individual:{person.id}" in out, out

"""``isps sms`` as an operator runs it (SQLite): a text handed to the short code by the file
gateway's door, STOP, the queue sent to the development file, a requeue refused, opt in and out."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from isps.cli.main import app
from tests.test_cli import sqlite_env  # noqa: F401  (fixture)

runner = CliRunner()


def test_receive_send_and_opt_from_the_command_line(sqlite_env):  # noqa: F811
    outbox = sqlite_env / "var" / "sms-outbox.jsonl"
    r = runner.invoke(app, ["sms", "receive", "--phone", "0300-1234567", "STOP"])
    assert r.exit_code == 0, r.output
    assert "stop" in r.output and "START" in r.output and "(sent)" in r.output
    line = json.loads(outbox.read_text(encoding="utf-8").splitlines()[0])
    assert line["to"] == "923001234567" and "START" in line["text"]
    r = runner.invoke(app, ["sms", "receive", "--phone", "042-1234567", "hello"])
    assert r.exit_code == 1 and "not a Pakistani mobile" in r.output
    r = runner.invoke(app, ["sms", "opt", "0300-1234567", "in"])
    assert r.exit_code == 0 and "92300*****67 opted in" in r.output
    assert "already" in runner.invoke(app, ["sms", "opt", "0300-1234567", "in"]).output
    r = runner.invoke(app, ["sms", "send-due"])
    assert r.exit_code == 0 and "claimed 0" in r.output
    r = runner.invoke(app, ["sms", "requeue", "1"])
    assert r.exit_code == 1 and "not a failed message" in r.output
    r = runner.invoke(app, ["sms", "queue-credited", "--since", "yesterday"])
    assert r.exit_code == 1 and "YYYY-MM-DD" in r.output

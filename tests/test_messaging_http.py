"""The HTTP aggregator gateway (against httpx's MockTransport) and the aggregator's callbacks
(/api/v1/sms/receipts and /inbound, authenticated by the shared secret header), on both backends."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from isps.db import transaction
from isps.messaging import dispatch, queue
from isps.messaging.gateways import GatewayError, from_env
from isps.messaging.gateways.file import FileGateway
from isps.messaging.gateways.http import HttpGateway
from isps.messaging.models import Message

SECRET = "s3cret-callback"


def aggregator(answers: list, seen: list):
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0) if answers else ("ok", None)
        if answer[0] == "ok":
            return httpx.Response(200, json={"id": f"agg-{len(seen)}"})
        if answer[0] == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if answer[0] == "down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(answer[1], text="nope")
    return httpx.MockTransport(handle)


def test_the_http_gateway_posts_json_with_a_bearer_token_and_an_idempotency_key():
    seen: list = []
    gw = HttpGateway("https://sms.example.pk/v1/messages", "tok-123",
                     transport=aggregator([("ok", None), ("status", 429), ("status", 503), ("status", 400),
                                           ("timeout", None), ("down", None)], seen))
    assert gw.send(41, "923001234567", "آپ کی رقم") == "agg-1"
    req = seen[0]
    assert req.headers["authorization"] == "Bearer tok-123" and req.headers["idempotency-key"] == "isps-sms-41"
    assert json.loads(req.content) == {"from": "8123", "to": "923001234567", "text": "آپ کی رقم", "reference": "41"}
    for temporary, uncertain in ((True, False), (True, False), (False, False), (True, True), (True, False)):
        with pytest.raises(GatewayError) as err:
            gw.send(42, "923001234567", "x")
        assert (err.value.temporary, err.value.uncertain) == (temporary, uncertain)
    gw.close()


def test_from_env_picks_the_gateway(tmp_path):
    assert isinstance(from_env({"ISPS_SMS_OUTBOX": str(tmp_path / "o.jsonl")}), FileGateway)
    assert isinstance(from_env({"ISPS_SMS_GATEWAY": "http", "ISPS_SMS_HTTP_URL": "https://a.pk/sms",
                                "ISPS_SMS_HTTP_TOKEN": "t"}), HttpGateway)
    with pytest.raises(ValueError, match="ISPS_SMS_HTTP_TOKEN"):
        from_env({"ISPS_SMS_GATEWAY": "http", "ISPS_SMS_HTTP_URL": "https://a.pk/sms"})
    with pytest.raises(ValueError, match="ISPS_SMPP_HOST"):
        from_env({"ISPS_SMS_GATEWAY": "smpp"})
    with pytest.raises(ValueError, match="file, smpp or http"):
        from_env({"ISPS_SMS_GATEWAY": "pigeon"})


def test_the_file_gateway_writes_json_lines(engine, tmp_path):
    out = tmp_path / "var" / "sms-outbox.jsonl"
    with transaction(engine) as s:
        m = queue.enqueue(s, kind="status", phone="0300-1234567", text="ISPS: آپ کی درخواست", key="f1")
    assert dispatch.send_due(engine, FileGateway(str(out)))["sent"] == 1
    line = json.loads(out.read_text(encoding="utf-8"))
    assert line["to"] == "923001234567" and line["text"] == "ISPS: آپ کی درخواست" and line["message_id"] == m.id


def test_messages_go_out_through_the_aggregator_and_its_receipts_come_back(engine, monkeypatch):
    from isps.api.app import create_app

    monkeypatch.setenv("ISPS_SMS_HTTP_SECRET", SECRET)
    seen: list = []
    gw = HttpGateway("https://sms.example.pk/v1/messages", "tok", transport=aggregator([], seen))
    with transaction(engine) as s:
        a = queue.enqueue(s, kind="status", phone="03001234567", text="ISPS: a", key="a").id
        b = queue.enqueue(s, kind="status", phone="03011234567", text="ISPS: b", key="b").id
    assert dispatch.send_due(engine, gw)["sent"] == 2
    app = create_app(engine, secret="test-secret")
    with TestClient(app) as client:
        ok = {"X-ISPS-SMS-Secret": SECRET}
        assert client.post("/api/v1/sms/receipts", json={"id": "agg-1", "status": "DELIVRD"}).status_code == 401
        assert client.post("/api/v1/sms/receipts", json={"id": "agg-1", "status": "DELIVRD"},
                           headers={"X-ISPS-SMS-Secret": "wrong"}).status_code == 401
        r = client.post("/api/v1/sms/receipts", json={"id": "agg-1", "status": "DELIVRD"}, headers=ok)
        assert r.status_code == 200 and r.json()["messages"] == 1
        r = client.post("/api/v1/sms/receipts", json={"id": "agg-2", "status": "maybe"}, headers=ok)
        assert r.status_code == 422 and "status" in r.text
        assert client.post("/api/v1/sms/receipts", json={"id": "agg-2", "status": "undeliv"},
                           headers=ok).status_code == 200
    with transaction(engine) as s:
        assert (s.get(Message, a).status, s.get(Message, b).status) == ("delivered", "undeliverable")


def test_a_citizens_text_from_the_aggregator_is_stored_once_and_answered(engine, monkeypatch):
    from isps.api.app import create_app

    monkeypatch.setenv("ISPS_SMS_HTTP_SECRET", SECRET)
    seen: list = []
    app = create_app(engine, secret="test-secret")
    app.state.sms_gateway = HttpGateway("https://sms.example.pk/v1/messages", "tok", transport=aggregator([], seen))
    ok = {"X-ISPS-SMS-Secret": SECRET}
    with TestClient(app) as client:
        r = client.post("/api/v1/sms/inbound", json={"from": "0300-1234567", "text": "STOP", "id": "in-1"}, headers=ok)
        assert r.status_code == 200 and r.json()["outcome"] == "stop" and "START" in r.json()["reply"]["text"]
        again = client.post("/api/v1/sms/inbound", json={"from": "0300-1234567", "text": "STOP", "id": "in-1"},
                            headers=ok)
        assert again.json()["duplicate"] is True
        assert client.post("/api/v1/sms/inbound", json={"from": "0300-1234567", "text": "STOP", "id": "in-2"}
                           ).status_code == 401
        bad = client.post("/api/v1/sms/inbound", json={"from": "0300-1234567", "text": "x"}, headers=ok)
        assert bad.status_code == 422 and "id" in bad.text
    assert len(seen) == 1 and json.loads(seen[0].content)["to"] == "923001234567"  # the reply went out at once
    with transaction(engine) as s:
        assert s.execute(text("SELECT COUNT(*) FROM sms_inbound")).scalar_one() == 1
        assert s.execute(text("SELECT status FROM sms_message")).scalar_one() == "sent"

"""The household page's messages panel and the /messages list: district scope (403, audited),
filters, totals, sorting, export with masked phones, opt-out at a counter, both languages."""

from __future__ import annotations

import re

from sqlalchemy import text

from isps.db import transaction
from isps.messaging import optout, queue
from isps.messaging.phones import normalise
from tests.test_web import as_user, denied, post, scalar, text_of


def seed(engine) -> dict:
    """Three messages to a Kasur household (one delivered, one failed, one suppressed) and one to a
    Lahore household; returns their households and the Kasur member's phone."""
    with transaction(engine) as s:
        kasur, phone, person = s.execute(text("""SELECT household_id, phone, id FROM individual
            WHERE district_id = 2 AND phone IS NOT NULL AND date_of_death IS NULL ORDER BY id LIMIT 1""")).one()
        lahore = s.execute(text("SELECT MIN(id) FROM household WHERE district_id = 1")).scalar_one()
        a = queue.enqueue(s, kind="pickup", phone=phone, text="ISPS: collect Rs 8,500 at Kasur agent 1", key="p1",
                          household_id=kasur, district_id=2, lang="en")
        b = queue.enqueue(s, kind="paid", phone=phone, text="ISPS: آپ کو 8500 روپے کی ادائیگی درج کی گئی", key="p2",
                          household_id=kasur, district_id=2)
        queue.enqueue(s, kind="status", phone="03451234567", text="ISPS: Lahore status", key="p3",
                      household_id=lahore, district_id=1, lang="en")
        s.execute(text("UPDATE sms_message SET status = 'delivered' WHERE id = :i"), {"i": a.id})
        s.execute(text("UPDATE sms_message SET status = 'failed', error = 'invalid destination' WHERE id = :i"),
                  {"i": b.id})
        optout.opt_out(s, phone, "test")
        queue.enqueue(s, kind="reminder", phone=phone, text="ISPS: report your work", key="p4", household_id=kasur,
                      district_id=2, lang="en")
    return {"kasur": kasur, "lahore": lahore, "phone": normalise(phone), "person": person}


def test_the_household_panel_shows_its_messages_masked_and_is_scoped(client, province):
    h = seed(province)
    as_user(client, "kasur_counter")
    r = client.get(f"/households/{h['kasur']}/messages")
    assert r.status_code == 200
    page = text_of(r.text)
    assert "collect Rs 8,500" in page and "8500 روپے" in page and "report your work" in page
    assert h["phone"] not in r.text and h["phone"][:5] + "*****" + h["phone"][-2:] in page
    assert re.findall(r'data-status="(\w+)"', r.text) == ["suppressed", "failed", "delivered"]  # newest first
    assert "invalid destination" in page and 'data-opted-out="yes"' in r.text
    assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE actor = 'kasur_counter' AND action = 'read' "
                            "AND entity = 'household' AND entity_id = :h AND outcome = 'ok'", h=h["kasur"]) == 1
    # another district's household: refused and audited
    r = client.get(f"/households/{h['lahore']}/messages")
    assert r.status_code == 403 and "Lahore status" not in r.text
    assert denied(province, "kasur_counter", "read") == 1
    assert client.get("/households/99999999999/messages").status_code == 404
    # the household page loads the panel
    assert f'hx-get="/households/{h["kasur"]}/messages"' in client.get(f"/households/{h['kasur']}").text


def test_a_counter_opts_a_member_out_and_back_in_audited(client, province):
    h = seed(province)
    url = f"/households/{h['kasur']}/messages/opt"
    as_user(client, "auditor")
    assert post(client, url, individual=str(h["person"]), choice="in").status_code == 403
    assert denied(province, "auditor", "opt_in") == 1
    as_user(client, "kasur_counter")
    r = client.post(url, data={"individual": str(h["person"]), "choice": "in"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and 'data-opted-out="no"' in r.text and "receive ISPS messages again" in r.text
    with transaction(province) as s:
        assert not optout.is_opted_out(s, h["phone"])
    assert post(client, url, individual=str(h["person"]), choice="out").status_code == 303
    with transaction(province) as s:
        assert optout.is_opted_out(s, h["phone"])
    assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE actor = 'kasur_counter' "
                            "AND action IN ('opt_in', 'opt_out') AND outcome = 'ok'") == 2
    assert post(client, url, individual="12", choice="out").status_code == 422  # not a member
    assert post(client, f"/households/{h['lahore']}/messages/opt", individual="1", choice="out").status_code == 403


def test_the_message_list_filters_counts_sorts_and_exports(client, province):
    seed(province)
    as_user(client, "admin")
    r = client.get("/messages")
    assert r.status_code == 200 and 'data-total="4"' in r.text
    assert 'data-total="1"' in client.get("/messages?status=failed").text
    assert 'data-total="3"' in client.get("/messages?district_id=2").text
    assert 'data-total="1"' in client.get("/messages?kind=pickup&district_id=").text
    assert 'data-total="0"' in client.get("/messages?day=2020-01-01").text
    ids = re.findall(r'<tr data-message="(\d+)"', client.get("/messages?sort=id").text)
    assert ids == sorted(ids, key=int) and len(ids) == 4
    assert client.get("/messages?sort=phone").status_code == 400
    assert client.get("/messages?kind=DROP TABLE").status_code == 400
    csv = client.get("/messages?format=csv&list=messages&district_id=2")
    assert csv.status_code == 200 and csv.text.count("\n") == 4
    assert "92" in csv.text and "*****" in csv.text and not re.search(r"923\d{9}", csv.text)
    assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE actor = 'admin' AND action = 'export' "
                            "AND entity = 'message'") == 1
    assert "/messages" in client.get("/").text  # the navigation offers it


def test_a_scoped_user_sees_only_their_district_and_urdu_reads_right_to_left(client, province):
    seed(province)
    as_user(client, "kasur_grievance")
    r = client.get("/messages")
    assert r.status_code == 200 and 'data-total="3"' in r.text and "Lahore status" not in r.text
    assert client.get("/messages?district_id=1").status_code == 403
    assert denied(province, "kasur_grievance", "read") == 1
    client.cookies.set("lang", "ur")
    page = client.get("/messages").text
    assert 'dir="rtl"' in page and "پیغامات (SMS)" in page and "موصول ہو گیا" in page


def test_labels_exist_in_both_languages():
    from isps.web import lang

    en, ur = lang.catalogue("en"), lang.catalogue("ur")
    keys = {k for k in en if k.startswith("msg.")}
    assert keys and keys <= set(ur)
    for status in queue.STATUSES if hasattr(queue, "STATUSES") else ():
        assert f"msg.status.{status}" in en
    from isps.messaging.models import STATUSES

    assert {f"msg.status.{s}" for s in STATUSES} <= set(ur) and {f"msg.kind.{k}" for k in queue.KINDS} <= set(ur)

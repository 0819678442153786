"""The field forms (issue 17): the XLSForms convert and pass ODK Validate, the survey covers every
registry field a survey collects, instances round-trip and bad ones are refused naming the field; the
media lists hold only the device's user and district, CNICs masked."""

from __future__ import annotations

from datetime import datetime

import pytest

from isps.fieldwork import forms
from isps.fieldwork.forms import InstanceError


def test_forms_convert_and_pass_odk_validate():
    """All four forms convert with pyxform and pass ODK Validate (Java), in English and Urdu, with the
    metadata a field team relies on; the catalogue converts once and serves the same bytes."""
    cat = forms.catalogue()
    assert [f.form_id for f in cat] == list(forms.FORM_IDS.values())
    assert forms.catalogue() is cat and forms.form("nope") is None
    for spec in cat:
        # the kept XLSForm converts to the same XForm with the validator run on it
        assert forms.convert(spec.form_id, validate=True) == spec.xml.decode("utf-8")
        xml = spec.xml.decode("utf-8")
        assert spec.version and spec.accepted_versions[0] == spec.version
        assert 'lang="Urdu (ur)"' in xml and 'lang="English (en)"' in xml
        for preload in ('jr:preloadParams="start"', 'jr:preloadParams="end"',
                        'jr:preloadParams="today"', 'jr:preloadParams="deviceid"', 'instanceName'):
            assert preload in xml, (spec.form_id, preload)
        assert spec.title and spec.title_ur and spec.title != spec.title_ur
        assert len(spec.md5) == 32
    assert forms.form("isps_survey").media == ("places.csv", "members.csv", "households.csv")
    assert forms.form("isps_receipt").media == ("sites.csv", "entries.csv", "recipients.csv")
    assert forms.form("isps_visit").media == ("visits.csv",)


def test_round_trip_per_form():
    """What build_instance writes, read_instance reads back: values by name, repeats in order, the
    collected time as naive local time, the photo named as an attachment."""
    at = datetime(2026, 12, 7, 10, 15)
    cases = {
        "isps_survey": ({"consent": "yes", "survey_kind": "new", "district_id": 2, "tehsil_id": 5,
                         "address": "Mohalla Islamabad, Kasur", "urban": False, "rooms": 2, "roof": "rcc"},
                        {"member": [{"full_name": "Ali Raza", "sex": "male", "cnic": "3520212345671"},
                                    {"full_name": "Sana Bibi", "sex": "female", "date_of_birth": "1990-02-01"}]}),
        "isps_visit": ({"application_id": 41, "outcome": "different", "note": "Lives in Lahore now"}, None),
        "isps_receipt": ({"site_id": 3, "entry_id": 17, "household_id": 9, "evidence": "cnic",
                          "cnic_seen": "3520212345671", "received_by": "", "photo": "hand-over.jpg"}, None),
        "isps_grievance": ({"district_id": 2, "name": "Nasreen", "phone": "03001234567",
                            "category": "payment_not_received", "description": "No payment since June"}, None),
    }
    for form_id, (values, repeats) in cases.items():
        xml = forms.build_instance(form_id, values, repeats, instance_id=f"uuid:{form_id}",
                                   device_id="collect:abc", collected_at=at)
        assert xml.startswith(b"<?xml") and f"<{form_id} id=\"{form_id}\"".encode() in xml
        got = forms.read_instance(xml)
        assert (got.form_id, got.job, got.instance_id) == (form_id, forms.JOB_OF[form_id], f"uuid:{form_id}")
        assert got.version == forms.form(form_id).version and got.device_id == "collect:abc"
        assert got.collected_at == at
        for name, value in values.items():
            assert got.values[name] == forms._as_text(value), (form_id, name)
        for name, rows in (repeats or {}).items():
            assert [{k: r[k] for k in row} for r, row in zip(got.repeats[name], rows)] == rows
            assert [r["line"] for r in got.repeats[name]] == ["1", "2"]
        assert got.attachments == (("hand-over.jpg",) if form_id == "isps_receipt" else ())
        assert "instanceID" not in got.values
    # Collect's own time stamps carry the offset: converted to Karachi time, whatever the offset
    xml = forms.build_instance("isps_visit", {"application_id": 1, "outcome": "confirmed",
                                              "end": "2026-12-07T05:15:00.000Z"}, instance_id="uuid:z")
    assert forms.read_instance(xml).collected_at == at
    with pytest.raises(InstanceError) as e:
        forms.build_instance("isps_visit", {"outcome": "confirmed", "nonsense": 1}, instance_id="uuid:y")
    assert e.value.field == "nonsense"


def test_bad_instances_are_refused_naming_the_field():
    good = forms.build_instance("isps_visit", {"application_id": 1, "outcome": "confirmed"}, instance_id="uuid:ok")
    cases = {
        b"<isps_visit id='isps_visit'><outcome>confirmed</outcome>": "xml",
        good.replace(b"<instanceID>uuid:ok</instanceID>", b"<instanceID />"): "instanceID",
        good.replace(b'id="isps_visit"', b'id="other_form"').replace(b"<isps_visit ", b"<other_form ")
            .replace(b"</isps_visit>", b"</other_form>"): "form_id",
        # an entity bomb: refused before the parser sees it, at once
        (b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
         + b"".join(b"<!ENTITY lol%d '%s'>" % (i, b"&lol%s;" % (str(i - 1).encode() if i > 1 else b"") * 10)
                    for i in range(1, 10))
         + b"]><isps_visit id='isps_visit'><outcome>&lol9;</outcome><meta><instanceID>uuid:b</instanceID></meta>"
         + b"</isps_visit>"): "xml",
        b"<?xml version='1.0'?><!DOCTYPE x SYSTEM 'file:///etc/passwd'><isps_visit/>": "xml",
        good.replace(b"<end />", b"<end>yesterday</end>"): "end",
    }
    for xml, field in cases.items():
        with pytest.raises(InstanceError) as e:
            forms.read_instance(xml)
        assert e.value.field == field and str(e.value).startswith(field + ":"), (xml[:60], e.value)

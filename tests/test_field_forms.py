"""The field forms (issue 17): the XLSForms convert and pass ODK Validate, the survey covers every
registry field a survey collects, instances round-trip and bad ones are refused naming the field; the
media lists hold only the device's user and district, CNICs masked."""

from __future__ import annotations

import io
import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest

from isps.fieldwork import forms
from isps.fieldwork.forms import InstanceError



@contextmanager
def _server_zone(zone: str):
    """The server's local time zone for a moment (TZ and tzset, as the process would start with)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


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
    # the .xlsx handed to a team in Excel or Kobo is the same form
    survey = forms.form("isps_survey")
    from pyxform.xls2xform import convert
    assert convert(xlsform=io.BytesIO(forms.xlsx("isps_survey")), file_type=".xlsx",
                   form_name="isps_survey").xform.encode() == survey.xml
    # and an edited workbook comes back as the kept text, converting to the same form
    text = forms.markdown(forms.xlsx("isps_visit"), heading="# isps_visit")
    assert text.startswith("# isps_visit\n") and "| survey |" in text and "| settings |" in text
    assert convert(xlsform=io.BytesIO(text.encode()), file_type=".md",
                   form_name="isps_visit").xform.encode() == forms.form("isps_visit").xml
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
            assert got.values[name] == forms.as_text(value), (form_id, name)
        for name, rows in (repeats or {}).items():
            assert [{k: r[k] for k in row} for r, row in zip(got.repeats[name], rows)] == rows
            assert [r["line"] for r in got.repeats[name]] == ["1", "2"]
        assert got.attachments == (("hand-over.jpg",) if form_id == "isps_receipt" else ())
        assert "instanceID" not in got.values
    # Collect's own time stamps carry the offset: converted to the server's local time, whatever the offset
    xml = forms.build_instance("isps_visit", {"application_id": 1, "outcome": "confirmed",
                                              "end": "2026-12-07T05:15:00.000Z"}, instance_id="uuid:z")
    moment = datetime(2026, 12, 7, 5, 15, tzinfo=timezone.utc)
    assert forms.read_instance(xml).collected_at == moment.astimezone().replace(tzinfo=None)
    with _server_zone("Asia/Karachi"):  # a server in Pakistan reads 10:15
        assert forms.read_instance(xml).collected_at == datetime(2026, 12, 7, 10, 15)
    with _server_zone("UTC"):
        assert forms.read_instance(xml).collected_at == datetime(2026, 12, 7, 5, 15)
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
    bomb = next(x for x in cases if b"lol9" in x)
    cases[bomb.decode().replace("version='1.0'?>", "version='1.0' encoding='UTF-16'?>").encode("utf-16")] = "xml"
    for xml, field in cases.items():
        with pytest.raises(InstanceError) as e:
            forms.read_instance(xml)
        assert e.value.field == field and str(e.value).startswith(field + ":"), (xml[:60], e.value)


# --------------------------------------------------------------------------------- the survey's coverage

# Registry columns a survey does not collect, and why. Every other column of ``household`` and
# ``individual`` (and every field of registry/fields.py) must be a question of the survey, named as the
# column: a field added to the registry and not to the form fails here.
HOUSEHOLD_NOT_SURVEYED = {
    "id": "the registry assigns it; a re-survey names it as household_id",
    "ref": "the registry's own reference",
    "uc_id": "asked as union_council (the union council's id, from places.csv)",
    "batch_id": "the ingest batch the apply step opens",
    "surveyed_on": "the date collected, set from the submission by the apply step",
    "verified_on": "the date collected, set from the submission by the apply step",
    "updated_at": "bookkeeping",
    "version": "bookkeeping (optimistic locking)",
}
INDIVIDUAL_NOT_SURVEYED = {
    "id": "the registry assigns it; a re-surveyed member carries it as individual_id",
    "household_id": "the surveyed household's",
    "district_id": "the surveyed household's",
    "roster_line": "the member's place in the repeat (line)",
    "date_of_death": "certified by NADRA's death feed, not by an enumerator",
    "left_on": "a member leaves through One Window or an officer's edit, with its reason",
    "left_reason": "as left_on",
    "member_since": "the date collected, set by the apply step for a new member",
    "batch_id": "the ingest batch the apply step opens",
    "updated_at": "bookkeeping",
}


def _xform(form_id: str):
    """A form's binds (leaf name -> XForms type) and selects (leaf name -> the choice codes offered)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(forms.form(form_id).xml)
    xf = forms.XF
    binds = {b.get("nodeset").rsplit("/", 1)[-1]: b.get("type") for b in root.iter(f"{xf}bind")}
    lists = {i.get("id"): [n.text for n in i.iter(f"{xf}name")] for i in root.iter(f"{xf}instance") if i.get("id")}
    selects = {}
    for s in root.iter(f"{xf}select1"):
        nodeset = s.find(f"{xf}itemset").get("nodeset")
        selects[s.get("ref").rsplit("/", 1)[-1]] = lists.get(nodeset.split("'")[1])
    return binds, selects


def test_survey_covers_every_registry_field():
    from isps.registry import vocab
    from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS
    from isps.registry.models import Household, Individual

    shape = forms._shape("isps_survey")
    household = set(HOUSEHOLD_FIELDS) | {c.name for c in Household.__table__.columns}
    person = set(INDIVIDUAL_FIELDS) | {c.name for c in Individual.__table__.columns}
    assert not set(HOUSEHOLD_NOT_SURVEYED) - household and not set(INDIVIDUAL_NOT_SURVEYED) - person  # no stale excuse
    missing = (household - set(HOUSEHOLD_NOT_SURVEYED)) - shape.leaves
    assert not missing, f"registry household fields the survey does not ask: {sorted(missing)}"
    missing = (person - set(INDIVIDUAL_NOT_SURVEYED)) - shape.repeat_leaves["member"]
    assert not missing, f"registry individual fields the survey's roster does not ask: {sorted(missing)}"
    assert {"household_id", "consent", "district_id", "tehsil_id", "union_council"} <= shape.leaves
    assert {"individual_id", "cnic", "id_document"} <= shape.repeat_leaves["member"]

    # each question asks for what the registry holds: a choice offers exactly the registry's codes
    binds, selects = _xform("isps_survey")
    xform_type = {"int": "int", "float": "decimal", "date": "date", "text": "string"}
    for name, f in {**HOUSEHOLD_FIELDS, **INDIVIDUAL_FIELDS}.items():
        if f.kind == "choice":
            assert selects[name] == list(f.choices), name
        elif f.kind == "bool":
            assert selects[name] == ["yes", "no"], name
        else:
            assert binds[name] == xform_type[f.kind], name
    assert selects["consent"] == ["yes", "no"] and selects["id_document"] == ["cnic", "bform", "none"]
    assert list(vocab.INDIVIDUAL_CATEGORICAL) == [n for n in INDIVIDUAL_FIELDS if INDIVIDUAL_FIELDS[n].kind == "choice"]
    xml = forms.form("isps_survey").xml.decode()
    # consent no: nothing but the closing note is relevant; the roster's CNIC/B-form is 13 digits
    assert 'relevant=" /isps_survey/consent  = \'yes\'"' in xml
    assert "regex(., '^[1-9][0-9]{12}$')" in xml
    # the other forms' choices are the codes their domain accepts
    from isps.citizen.grievances import CATEGORIES
    assert _xform("isps_grievance")[1]["category"] == list(CATEGORIES)
    assert _xform("isps_visit")[1]["outcome"] == ["confirmed", "not_found", "different"]
    assert _xform("isps_receipt")[1]["evidence"] == ["fingerprint", "cnic"]


def test_every_label_is_in_english_and_urdu():
    """Every question, hint, constraint message and choice has its Urdu text (Urdu script, not a copy
    of the English)."""
    import re
    import xml.etree.ElementTree as ET

    for spec in forms.catalogue():
        root = ET.fromstring(spec.xml)
        langs = {t.get("lang"): {x.get("id"): "".join(x.find(f"{forms.XF}value").itertext()).strip()
                                 for x in t.iter(f"{forms.XF}text")} for t in root.iter(f"{forms.XF}translation")}
        en, ur = langs["English (en)"], langs["Urdu (ur)"]
        assert en.keys() == ur.keys() and en, spec.form_id
        for key, text in ur.items():
            assert en[key] and text and re.search("[\u0600-\u06ff]", text), (spec.form_id, key, text)
        if spec.form_id == "isps_survey":
            # a registry code reads in the form as on the web app's pages (web/i18n: v.<field>.<code>)
            import json
            from importlib import resources

            from isps.registry import vocab
            web = {lang: json.loads(resources.files("isps.web").joinpath("i18n", f"{lang}.json").read_text("utf-8"))
                   for lang in ("en", "ur")}
            for name, codes in {**vocab.HOUSEHOLD_CATEGORICAL, **vocab.INDIVIDUAL_CATEGORICAL}.items():
                for i, code in enumerate(codes):
                    assert (en[f"{name}-{i}"], ur[f"{name}-{i}"]) == (web["en"][f"v.{name}.{code}"],
                                                                      web["ur"][f"v.{name}.{code}"]), (name, code)


# --------------------------------------------------------------------------------- media

def _rows(content: bytes) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(content.decode("utf-8"))))


def test_media_hold_only_the_users_work_in_the_district_with_cnics_masked(province):
    """A Kasur enumerator's device gets Kasur's places and only the households, visits and site lists
    given to that user in Kasur: not another enumerator's, not a Lahore row wrongly assigned, not a
    line already handed over. No CNIC is written whole. Every column a form pre-fills from is there."""
    import re
    from decimal import Decimal

    from sqlalchemy import func, select

    from isps.citizen.applications.models import Application
    from isps.db import transaction
    from isps.fieldwork import media
    from isps.fieldwork.models import DistributionEntry, DistributionSite, FieldAssignment, FieldDevice
    from isps.registry.models import Household, Individual, Tehsil, UnionCouncil

    me, other = "kasur_enumerator", "kasur_other"
    with transaction(province) as s:
        kasur = s.scalars(select(Household.id).where(Household.district_id == 2).order_by(Household.id).limit(6)).all()
        lahore = s.scalars(select(Household.id).where(Household.district_id == 1).order_by(Household.id).limit(2)).all()
        device = FieldDevice(code="kasur-07", label="Samsung A12", username=me, district_id=2, token_hash="a" * 64,
                             digest_ha1="b" * 32, registered_by="kasur_supervisor")
        s.add(device)

        def given(kind, who=me, district=2, **ids):
            s.add(FieldAssignment(kind=kind, enumerator=who, district_id=district, assigned_by="kasur_supervisor", **ids))

        for h in kasur[:3]:
            given("survey", household_id=h)
        given("survey", who=other, household_id=kasur[3])
        given("survey", district=1, household_id=lahore[0])                  # not this device's district
        s.add(FieldAssignment(kind="survey", enumerator=me, district_id=2, household_id=kasur[4], status="done",
                              assigned_by="kasur_supervisor"))
        apps = [Application(kind="registration", channel="counter", district_id=d, applicant_name=n, opened_by="x",
                            details={"household": {"address": a}})
                for d, n, a in ((2, "Shazia Parveen", "Street 4, Kot Radha Kishan"), (1, "Lahore Applicant", "Gulberg"))]
        s.add_all(apps)
        s.flush()
        given("visit", application_id=apps[0].id)
        given("visit", district=1, application_id=apps[1].id)
        sites = [DistributionSite(name=n, kind="in_kind", district_id=d, created_by="kasur_supervisor")
                 for n, d in (("Govt. Girls School Kasur", 2), ("Lahore site", 1))]
        s.add_all(sites)
        s.flush()
        given("site", site_id=sites[0].id)
        given("site", district=1, site_id=sites[1].id)
        lines = [DistributionEntry(site_id=sites[0].id, district_id=2, list_ref="ration:2026-12", household_id=h,
                                   item="ration_pack", quantity=1, token=i + 1) for i, h in enumerate(kasur[:3])]
        lines.append(DistributionEntry(site_id=sites[1].id, district_id=1, list_ref="ration:2026-12",
                                       household_id=lahore[1], item="ration_pack", quantity=1, token=1))
        lines[2].handed_over_at = datetime(2026, 12, 1, 9, 0)
        lines[1].item, lines[1].amount = "cash", Decimal("10500.00")
        s.add_all(lines)
        kasur_tehsils = set(s.scalars(select(Tehsil.id).where(Tehsil.district_id == 2)))
        kasur_ucs = set(s.scalars(select(UnionCouncil.id).join(Tehsil).where(Tehsil.district_id == 2)))
        members = {h: s.scalar(select(func.count()).select_from(Individual).where(
            Individual.household_id == h, Individual.date_of_death.is_(None), Individual.left_on.is_(None)))
            for h in kasur[:3]}

        files = dict(media.media_for(s, device, forms.form("isps_survey")))
        assert list(files) == ["places.csv", "members.csv", "households.csv"]
        files.update(media.media_for(s, device, forms.form("isps_visit")))
        files.update(media.media_for(s, device, forms.form("isps_receipt")))
        with pytest.raises(KeyError):
            media.render(s, device, "secrets.csv")

    places = _rows(files["places.csv"])
    assert [p["name"] for p in places if p["kind"] == "district"] == ["2"]
    assert {int(p["name"]) for p in places if p["kind"] == "tehsil"} == kasur_tehsils
    assert {int(p["name"]) for p in places if p["kind"] == "uc"} == kasur_ucs
    assert all(re.search("[\u0600-\u06ff]", p["label"]) for p in places if p["kind"] != "uc")

    households = _rows(files["households.csv"])
    assert [int(h["name"]) for h in households] == kasur[:3]
    assert all(h["district_id"] == "2" and h["urban"] in ("yes", "no") and h["roof"] for h in households)
    roster = _rows(files["members.csv"])
    assert {int(h): n for h, n in members.items()} == {h: sum(int(m["household_id"]) == h for m in roster)
                                                        for h in kasur[:3]}
    assert all(m["line"] for m in roster) and roster[0]["line"] == "1"
    assert [v["applicant"] for v in _rows(files["visits.csv"])] == ["Shazia Parveen"]
    assert _rows(files["visits.csv"])[0]["address"] == "Street 4, Kot Radha Kishan"
    assert [x["site_name"] for x in _rows(files["sites.csv"])] == ["Govt. Girls School Kasur"]
    lines_out = _rows(files["entries.csv"])
    assert [(int(x["household_id"]), x["token"]) for x in lines_out] == [(kasur[0], "1"), (kasur[1], "2")]
    assert lines_out[1]["amount"] == "10500" and "Rs 10500" in lines_out[1]["label"] and lines_out[0]["recipient"]
    assert {int(r["household_id"]) for r in _rows(files["recipients.csv"])} == set(kasur[:2])

    # no CNIC written whole, in any file; the masked form is there to find a family by
    everything = b"".join(files.values()).decode("utf-8")
    assert not re.search(r"(?<!\d)\d{13}(?!\d)|\d{5}-\d{7}-\d", everything)
    assert re.search(r"\d{5}-\*{5}\d\d-\d", everything)
    # every column a form reads from a media file (instance('x')/root/item[...]/column) is in that file
    for spec in forms.catalogue():
        for name, column in re.findall(r"instance\('(\w+)'\)/root/item\[[^\]]*\]/(\w+)", spec.xml.decode()):
            assert column in _rows(files[f"{name}.csv"])[0], (spec.form_id, name, column)


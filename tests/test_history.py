"""History and provenance: every value keeps its source and dates; the past can be asked."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from isps.db import transaction
from isps.registry import service as registry
from isps.registry.models import Household, OutboxEvent, ValueChange
from isps.registry.service import Provenance, RegistryError


def _hh(s) -> Household:
    return s.scalars(select(Household).order_by(Household.id)).first()


def test_a_change_keeps_old_and_new_value_source_and_dates(province):
    with transaction(province) as s:
        hh = _hh(s)
        rooms = hh.rooms
        flipped = "no" if hh.electricity else "yes"
        changed = registry.change_household(s, hh.id, {"rooms": rooms + 1, "electricity": flipped},
                                            Provenance("survey", "enumerator 12", date(2026, 2, 1), "PSC form 9"))
    assert set(changed) == {"rooms", "electricity"}
    with transaction(province) as s:
        row = s.scalars(select(ValueChange).where(ValueChange.entity_id == hh.id, ValueChange.field == "rooms")).one()
        assert (row.old_value, row.new_value, row.source, row.actor, row.source_ref) == (
            str(rooms), str(rooms + 1), "survey", "enumerator 12", "PSC form 9")
        assert s.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.aggregate_id == hh.id)) == 1
        assert s.scalar(select(func.count()).select_from(ValueChange).where(ValueChange.entity_id == hh.id)) == 2
        assert s.get(Household, hh.id).verified_on == date(2026, 2, 1)


def test_setting_the_same_value_records_nothing(province):
    with transaction(province) as s:
        hh = _hh(s)
        assert registry.change_household(s, hh.id, {"rooms": hh.rooms}, Provenance("operator", "x", date.today())) == []
        assert s.scalar(select(func.count()).select_from(ValueChange)) == 0


def test_late_news_is_history_but_does_not_overwrite_newer_values(province):
    with transaction(province) as s:
        hh = _hh(s)
        registry.change_household(s, hh.id, {"cattle": 5}, Provenance("partner", "rsp", date(2026, 3, 1)))
        registry.change_household(s, hh.id, {"cattle": 2}, Provenance("survey", "old form", date(2025, 1, 1)))
        assert s.get(Household, hh.id).cattle == 5
        assert s.scalar(select(func.count()).select_from(ValueChange).where(ValueChange.field == "cattle")) == 2


def test_what_did_we_know_on_a_date_and_from_whom(province):
    with transaction(province) as s:
        hh = _hh(s)
        original = hh.land_acres
        registry.change_household(s, hh.id, {"land_acres": original + 4}, Provenance("partner", "land record", date(2026, 1, 10)))
        registry.change_household(s, hh.id, {"land_acres": original + 1}, Provenance("operator", "desk", date(2026, 4, 1)))
    with transaction(province) as s:
        first = registry.snapshot(s, hh.id, date(2025, 12, 31))
        mid = registry.snapshot(s, hh.id, date(2026, 2, 1))
        now = registry.snapshot(s, hh.id, date(2026, 5, 1))
        before_recorded = registry.snapshot(s, hh.id, date(2026, 5, 1), known_by=datetime.now() - timedelta(days=1))
        before_registration = registry.snapshot(s, hh.id, hh.surveyed_on - timedelta(days=1))
    assert first.household["land_acres"].value == f"{original:g}" and first.household["land_acres"].source == "synthetic"
    assert (mid.household["land_acres"].value, mid.household["land_acres"].source) == (f"{original + 4:g}", "partner")
    assert (now.household["land_acres"].value, now.household["land_acres"].source) == (f"{original + 1:g}", "operator")
    assert before_recorded.household["land_acres"].value == f"{original:g}"  # we had not yet been told
    assert before_registration is None
    assert len(now.members) >= 1


def test_invalid_change_names_record_and_field_and_stores_nothing(province):
    with transaction(province) as s:
        hh = _hh(s)
        with pytest.raises(RegistryError, match=f"household {hh.id}: land_acres must be a number"):
            registry.change_household(s, hh.id, {"rooms": 2, "land_acres": "lots"}, Provenance("operator", "x", date.today()))
        with pytest.raises(RegistryError, match="'swimming_pool' is not a field"):
            registry.change_household(s, hh.id, {"swimming_pool": True}, Provenance("operator", "x", date.today()))
        assert s.scalar(select(func.count()).select_from(ValueChange)) == 0


def test_a_wrong_cnic_for_the_sex_is_refused(province):
    from isps.registry.models import Individual

    with transaction(province) as s:
        man = s.scalars(select(Individual).where(Individual.sex == "male")).first()
        with pytest.raises(RegistryError, match="male holder's CNIC ends in an odd digit"):
            registry.change_individual(s, man.id, {"cnic": "35202-1234567-2"}, Provenance("operator", "x", date.today()))


def test_the_household_file_reads_the_new_score_after_an_edit_in_the_same_session(province):
    """The counter visit (and the demo that prints it) shows the PMT the edit produced, not the
    score the session read before the edit."""
    from sqlalchemy import text

    from isps.access.service import Principal
    from isps.services import household_file as files

    who = Principal("kasur_counter", "counter_operator", 2)
    with transaction(province) as s:
        hid = s.scalar(select(Household.id).where(Household.district_id == 2).order_by(Household.id).limit(1))
        f = files.open_household(s, who, hid, "cli")
        before = f.score.score
        files.edit_household(s, who, hid, {"car": not f.household.car, "rooms": f.household.rooms + 3},
                             "operator", date.today(), "counter visit", "cli")
        stored = s.scalar(text("SELECT score FROM pmt_score WHERE household_id = :h AND model_id = :m"),
                          {"h": hid, "m": f.score.model_id})
        after = files.open_household(s, who, hid, "cli").score.score
    assert stored != pytest.approx(before)  # the edit moved the score
    assert after == pytest.approx(stored)

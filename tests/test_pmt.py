"""PMT scoring: a model is data, activation re-scores everyone, a change re-scores one."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from sqlalchemy import func, select

from isps.db import transaction
from isps.registry import service as registry
from isps.registry.models import Household, Individual
from isps.registry.service import Provenance
from isps.targeting import pmt
from isps.targeting.models import PmtModel, PmtScore


def test_every_household_has_a_score_on_the_0_100_scale(province):
    with transaction(province) as s:
        model = pmt.active_model(s)
        n, lo, hi = s.execute(select(func.count(), func.min(PmtScore.score), func.max(PmtScore.score))
                              .where(PmtScore.model_id == model.id)).one()
        below = s.scalar(select(func.count()).where(PmtScore.model_id == model.id, PmtScore.score <= 32))
    assert n == 600 and 0 <= lo < hi <= 100
    assert 0.15 < below / n < 0.40  # Kafaalat's cut-off 32 reaches about a quarter of households


def test_breakdown_parts_add_up_to_the_stored_score(province):
    with transaction(province) as s:
        for hid in s.scalars(select(Household.id).limit(25)):
            b = pmt.breakdown(s, hid)
            total = b.base_points + sum(c.points for c in b.contributions)
            assert min(100.0, max(0.0, total)) == pytest.approx(b.score, abs=1e-6)
            assert b.model_version == 1 and b.region in ("urban", "rural")


def _spec_with(weight_change: float) -> dict:
    spec = copy.deepcopy(pmt.shipped_specs()[0])
    spec["regions"]["rural"]["fridge"] += weight_change
    spec["regions"]["urban"]["fridge"] += weight_change
    return spec


def test_activating_a_new_version_rescores_everyone_and_keeps_the_old_scores(province):
    with transaction(province) as s:
        old = pmt.active_model(s)
        new = pmt.create_model(s, _spec_with(0.5), actor="manager")
        assert new.version == 2 and new.status == "draft"
        with pytest.raises(pmt.PmtApprovalError, match="a second person must approve"):
            pmt.activate(s, new)
        with pytest.raises(pmt.PmtApprovalError, match="cannot approve it"):
            pmt.approve(s, new.id, "manager")
        pmt.approve(s, new.id, "admin")
        n = pmt.activate(s, new)
        assert n == 600
        assert s.get(PmtModel, old.id).status == "retired"
        with_fridge = s.scalar(select(Household.id).where(Household.fridge.is_(True)).limit(1))
        a = s.get(PmtScore, (old.id, with_fridge)).score
        b = s.get(PmtScore, (new.id, with_fridge)).score
        assert b > a  # the fridge weighs more in v2
        assert s.scalar(select(func.count()).select_from(PmtScore).where(PmtScore.model_id == old.id)) == 600


def test_a_model_naming_an_unknown_indicator_is_refused(province):
    spec = _spec_with(0)
    spec["regions"]["urban"]["swimming_pool"] = 1.0
    with transaction(province) as s, pytest.raises(pmt.PmtModelError, match="unknown indicator 'swimming_pool'"):
        pmt.create_model(s, spec, actor="manager")
    spec = _spec_with(0)
    spec["regions"]["urban"]["roof:gold"] = 1.0
    with transaction(province) as s, pytest.raises(pmt.PmtModelError, match="has no level 'gold'"):
        pmt.create_model(s, spec, actor="manager")


def test_a_change_to_one_household_rescores_only_it(province):
    with transaction(province) as s:
        model = pmt.active_model(s)
        hid, other = s.scalars(select(Household.id).where(Household.car.is_(False)).limit(2)).all()
        before = s.get(PmtScore, (model.id, hid)).score
        other_before = s.get(PmtScore, (model.id, other)).scored_at
        registry.change_household(s, hid, {"car": True}, Provenance("operator", "t", date(2026, 5, 1)))
        assert pmt.process_events(s) == 1
        s.expire_all()
        assert s.get(PmtScore, (model.id, hid)).score > before
        assert s.get(PmtScore, (model.id, other)).scored_at == other_before
        assert pmt.process_events(s) == 0  # events are acted on once


def test_a_death_changes_household_size_and_score(province):
    with transaction(province) as s:
        model = pmt.active_model(s)
        person = s.scalars(select(Individual).where(Individual.relation_to_head == "son")).first()
        before = s.get(PmtScore, (model.id, person.household_id)).score
        registry.change_individual(s, person.id, {"date_of_death": "2026-04-02"},
                                   Provenance("nadra", "nadra-feed", date(2026, 4, 2), "NADRA death 1177"))
        pmt.process_events(s)
        s.expire_all()
        assert s.get(PmtScore, (model.id, person.household_id)).score != before

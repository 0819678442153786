"""The synthetic province must look like Punjab and behave like survey data."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from isps.registry import geography
from isps.registry.cnic import sex_digit_matches
from isps.synth.generator import DirtOptions, generate


def _one(n=20_000, seed=5, dirt=None):
    return next(generate(n, seed, dirt))


def test_same_seed_same_province_other_seed_other_province():
    a, b, c = _one(3000, 9), _one(3000, 9), _one(3000, 10)
    assert a.households.equals(b.households) and a.individuals.equals(b.individuals)
    assert not a.households.equals(c.households)


def test_geography_names_are_real_punjab_districts_and_tehsils():
    ch = _one()
    known = {d.id: {t for t, _ in d.tehsils} for d in geography.districts()}
    d = ch.households["district_id"].to_numpy()
    t = ch.households["tehsil_id"].to_numpy()
    assert all(int(tt) in known[int(dd)] for dd, tt in zip(d[:2000], t[:2000]))
    assert len(set(d.tolist())) == 36
    lahore = (d == geography.district_by_name("Lahore").id).mean()
    rajanpur = (d == geography.district_by_name("Rajanpur").id).mean()
    assert 0.07 < lahore < 0.13 and 0.01 < rajanpur < 0.03  # 2017 census shares
    assert len(geography.districts()) == 36


def test_households_have_punjab_size_and_composition():
    ch = _one()
    size = np.bincount(pc.dictionary_encode(ch.individuals["household_id"]).combine_chunks().indices.to_numpy())
    assert 5.8 < size.mean() < 6.9  # Punjab's mean household size is about 6.3
    rel = ch.individuals["relation_to_head"].to_numpy(zero_copy_only=False)
    assert (rel == "head").sum() == ch.households.num_rows
    sex = ch.individuals["sex"].to_numpy(zero_copy_only=False)
    assert 0.47 < (sex == "male").mean() < 0.53


def test_cnics_are_well_formed_unique_and_match_sex():
    ch = _one()
    cnic = ch.individuals["cnic"].to_numpy(zero_copy_only=False)
    sex = ch.individuals["sex"].to_numpy(zero_copy_only=False)
    present = [i for i, c in enumerate(cnic) if c is not None]
    assert all(len(cnic[i]) == 13 and cnic[i][0] == "3" for i in present)
    assert len({cnic[i] for i in present}) == len(present)
    assert all(sex_digit_matches(cnic[i], sex[i]) for i in present)


def test_names_carry_spelling_variants():
    names = " ".join(_one().individuals["full_name"].to_pylist())
    assert "Muhammad" in names and ("Mohammad" in names or "Muhammed" in names)


def test_assets_hang_together_with_consumption():
    ch = _one()
    h = ch.households
    cons = ch.consumption["consumption_pae"].to_numpy()
    fridge = h["fridge"].to_numpy(zero_copy_only=False)
    car = h["car"].to_numpy(zero_copy_only=False)
    elec = h["electricity"].to_numpy(zero_copy_only=False)
    assert np.median(cons[fridge]) > 1.3 * np.median(cons[~fridge])
    assert not (fridge & ~elec).any(), "no fridge without electricity"
    assert car.mean() < fridge.mean()
    assert 6_000 < np.median(cons) < 14_000  # PKR per adult equivalent a month


def test_a_pmt_regression_explains_about_half_of_log_consumption():
    """R² 0.4-0.6 and 44-55% exclusion error at 20% coverage, as on real surveys."""
    ch = _one(40_000, 3)
    h = {c: ch.households[c].to_numpy(zero_copy_only=False) for c in ch.households.column_names}
    hh_ids = h["id"]
    ind_hh = ch.individuals["household_id"].to_numpy()
    pos = np.searchsorted(np.sort(hh_ids), ind_hh)
    order = np.argsort(hh_ids)
    size = np.bincount(order[pos], minlength=len(hh_ids))
    cols = [np.ones(len(hh_ids)), size, h["rooms"], h["urban"], h["land_acres"].clip(0, 25), h["cattle"]]
    cols += [h[b].astype(float) for b in ("electricity", "fridge", "air_conditioner", "air_cooler", "washing_machine",
                                          "television", "motorcycle", "car", "computer", "tractor", "freezer")]
    cols += [(h[c] == v).astype(float) for c, v in (("roof", "rcc"), ("toilet", "flush"), ("cooking_fuel", "gas"),
                                                    ("wall", "burnt_brick"))]
    X = np.column_stack(cols).astype(float)
    y = np.log(ch.consumption["consumption_pae"].to_numpy())
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    pred = X @ beta
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert 0.4 <= r2 <= 0.6
    k = len(y) // 5
    poor, chosen = set(np.argsort(y)[:k]), set(np.argsort(pred)[:k])
    exclusion = 1 - len(poor & chosen) / k
    assert 0.40 <= exclusion <= 0.58


def test_dirt_plants_duplicates_with_typos_and_missing_cnics():
    ch = _one(5000, 2, DirtOptions(duplicate_rate=0.1, typo_rate=0.5))
    assert 400 < ch.stats["duplicate_households"] < 600
    keys = ch.truth["person_key"].to_numpy()
    _, counts = np.unique(keys, return_counts=True)
    assert (counts == 2).sum() > 2000  # each duplicate member shares the true person's key
    refs = ch.households["ref"].to_pylist()
    assert len(refs) == len(set(refs))

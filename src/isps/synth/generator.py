"""A synthetic Punjab, generated in chunks with NumPy and handed on as Arrow tables.

The model behind it, kept simple enough to reason about:

* a household draws a latent wealth ``w`` (district, urban/rural and noise);
* its size, composition, members' education and work, its dwelling, durables
  and productive assets are noisy functions of ``w``, so they "hang together";
* its true consumption per adult equivalent is ``w`` plus demographics plus an
  idiosyncratic shock that no indicator sees. That shock is what keeps a PMT
  regression's R² near 0.5, as on real survey data.

Chunks are fixed at :data:`CHUNK` households and each chunk has its own random
stream, so a (households, seed) pair always yields the same province, and memory
stays flat however many households are asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa

from isps.registry import geography, name_variants, vocab
from isps.registry.ids import HOUSEHOLD_RANGE, INDIVIDUAL_RANGE
from isps.synth import names

CHUNK = 50_000
REFERENCE_DATE = date(2026, 1, 1)
_EPOCH = np.datetime64("1970-01-01", "D")
_REF_DAYS = int((np.datetime64(REFERENCE_DATE.isoformat(), "D") - _EPOCH).astype(int))

# Districts of the north and centre are richer than the south-west (Multidimensional
# Poverty Index ordering); used as a shift of latent wealth.
DISTRICT_WEALTH = {
    "Lahore": 0.45, "Rawalpindi": 0.45, "Jhelum": 0.35, "Chakwal": 0.3, "Attock": 0.2, "Sialkot": 0.35,
    "Gujrat": 0.35, "Gujranwala": 0.3, "Faisalabad": 0.2, "Narowal": 0.15, "Mandi Bahauddin": 0.15,
    "Hafizabad": 0.05, "Sheikhupura": 0.15, "Kasur": 0.0, "Nankana Sahib": 0.05, "Toba Tek Singh": 0.1,
    "Sargodha": 0.05, "Sahiwal": 0.0, "Okara": -0.05, "Multan": 0.0, "Khanewal": -0.1, "Chiniot": -0.1,
    "Jhang": -0.2, "Khushab": -0.15, "Mianwali": -0.1, "Bhakkar": -0.3, "Pakpattan": -0.2, "Vehari": -0.15,
    "Lodhran": -0.3, "Bahawalpur": -0.25, "Bahawalnagar": -0.3, "Rahim Yar Khan": -0.35, "Layyah": -0.35,
    "Dera Ghazi Khan": -0.5, "Muzaffargarh": -0.5, "Rajanpur": -0.6,
}


@dataclass(frozen=True)
class DirtOptions:
    """Corruption for linkage work: re-registered duplicates, typos and missing CNICs."""

    duplicate_rate: float = 0.0     # share of households registered a second time
    typo_rate: float = 0.3          # share of a duplicate's members with a changed name spelling
    missing_cnic_rate: float = 0.0  # share of all adults whose CNIC was not recorded


@dataclass
class Chunk:
    households: pa.Table
    individuals: pa.Table
    consumption: pa.Table
    truth: pa.Table  # individual_id -> person_key (the same key for a person's duplicate records)
    stats: dict = field(default_factory=dict)


class _Geo:
    def __init__(self) -> None:
        ds = geography.districts()
        self.district_ids = np.array([d.id for d in ds])
        pop = np.array([d.population_2017_m for d in ds])
        self.weights = pop / pop.sum()
        self.urban_share = np.array([min(d.urban_share, 0.92) for d in ds])
        self.wealth = np.array([DISTRICT_WEALTH[d.name] for d in ds])
        width = max(len(d.tehsils) for d in ds)
        self.tehsil_table = np.array([[t for t, _ in d.tehsils] + [0] * (width - len(d.tehsils)) for d in ds])
        self.tehsil_count = np.array([len(d.tehsils) for d in ds])
        top = max(self.district_ids) + 1
        self.tehsil_names = np.empty(max(t for d in ds for t, _ in d.tehsils) + 1, dtype=object)
        for d in ds:
            for t, n in d.tehsils:
                self.tehsil_names[t] = n
        self.ucs_per_tehsil = np.zeros(top, dtype=int)
        # CNIC locality prefix per district: '3' (Punjab) + 4 digits
        self.cnic_prefix = np.zeros(top, dtype=np.int64)
        for d in ds:
            self.ucs_per_tehsil[d.id] = len(geography.union_councils(d)) // len(d.tehsils)
            self.cnic_prefix[d.id] = 3 * 10_000 + 1000 + d.id * 20


def _s(values: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.string())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(rng: np.random.Generator, options: list[str] | tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def _spell(rng: np.random.Generator, canonical: np.ndarray, p_variant: float) -> np.ndarray:
    """Write each name part in its canonical spelling or, with probability p, a variant."""
    out = canonical.copy()
    flip = rng.random(len(out)) < p_variant
    for i in np.flatnonzero(flip):
        parts = out[i].split(" ")
        parts = [rng.choice(name_variants.VARIANTS[p]) if p in name_variants.VARIANTS else p for p in parts]
        out[i] = " ".join(parts)
    return out


def _spelled(rng: np.random.Generator, canon: list[str], idx: np.ndarray, p_variant: float = 0.25) -> np.ndarray:
    """Names from a list by index, each written in its canonical spelling or, with
    probability p, one of its transliteration variants."""
    options = [[c] + name_variants.VARIANTS.get(c, []) for c in canon]
    width = max(len(o) for o in options)
    table = np.array([o + [o[0]] * (width - len(o)) for o in options], dtype=object)
    n_opts = np.array([len(o) for o in options])
    col = np.where(rng.random(len(idx)) < p_variant, (rng.random(len(idx)) * n_opts[idx]).astype(int), 0)
    return table[idx, col]


def _ordered(z: np.ndarray, cuts: list[float], levels: tuple[str, ...]) -> np.ndarray:
    """Cut a latent score into ordered levels (lowest level first)."""
    return np.asarray(levels, dtype=object)[np.searchsorted(np.asarray(cuts), z)]


def generate(households: int, seed: int, dirt: DirtOptions | None = None,
             start_counts: dict[int, tuple[int, int]] | None = None) -> Iterator[Chunk]:
    """Yield the province chunk by chunk.

    ``start_counts`` maps district id to the (households, individuals) already
    stored there, so that new ids continue each district's range.
    """
    geo = _Geo()
    dirt = dirt or DirtOptions()
    hh_next = {d: (start_counts or {}).get(d, (0, 0))[0] for d in geo.district_ids}
    ind_next = {d: (start_counts or {}).get(d, (0, 0))[1] for d in geo.district_ids}
    person_base = 0
    for c, lo in enumerate(range(0, households, CHUNK)):
        m = min(CHUNK, households - lo)
        rng = np.random.default_rng([seed, c])
        chunk = _chunk(rng, geo, m, lo, seed, dirt, hh_next, ind_next, person_base)
        person_base += chunk.stats["persons"]
        yield chunk


def _allocate(ids_next: dict[int, int], district: np.ndarray, base: int) -> np.ndarray:
    """Ids in each district's range, continuing where that district stopped."""
    order = np.argsort(district, kind="stable")
    sorted_d = district[order]
    starts = np.searchsorted(sorted_d, sorted_d, side="left")
    rank = np.arange(len(district)) - starts
    lookup = np.zeros(max(ids_next) + 1, dtype=np.int64)
    for d, v in ids_next.items():
        lookup[d] = v
    offsets = lookup[sorted_d]
    ids_sorted = sorted_d.astype(np.int64) * base + offsets + rank + 1
    out = np.empty(len(district), dtype=np.int64)
    out[order] = ids_sorted
    uniq, counts = np.unique(district, return_counts=True)
    for d, k in zip(uniq, counts):
        ids_next[int(d)] += int(k)
    return out


def _chunk(rng, geo: _Geo, m: int, lo: int, seed: int, dirt: DirtOptions,
           hh_next: dict, ind_next: dict, person_base: int) -> Chunk:
    # ---- where: district by population, tehsil and union council uniformly inside it
    d_idx = rng.choice(len(geo.district_ids), size=m, p=geo.weights)
    district = geo.district_ids[d_idx]
    tehsil = geo.tehsil_table[d_idx, (rng.random(m) * geo.tehsil_count[d_idx]).astype(int)]
    ucn = (rng.random(m) * geo.ucs_per_tehsil[district]).astype(int) + 1
    uc = tehsil * 100 + ucn
    urban = rng.random(m) < geo.urban_share[d_idx]

    # ---- latent wealth
    w = rng.normal(0.0, 1.0, m) + geo.wealth[d_idx] + 0.35 * urban

    # ---- composition
    size = np.clip(np.rint(rng.normal(6.4 - 0.45 * w, 2.2)), 1, 16).astype(int)
    head_female = rng.random(m) < 0.09
    head_age = np.clip(np.rint(rng.normal(46, 12, m)), 20, 88).astype(int)
    has_spouse = (~head_female) & (size >= 2) & (rng.random(m) < 0.94)
    has_elder = (size >= 5) & (rng.random(m) < 0.22) & (head_age < 62)
    n_ind = int(size.sum())
    hh_of = np.repeat(np.arange(m), size)
    slot = np.arange(n_ind) - np.repeat(np.cumsum(size) - size, size)

    relation = np.full(n_ind, "son", dtype=object)
    sex = np.where(rng.random(n_ind) < 0.51, "male", "female").astype(object)
    age = np.zeros(n_ind, dtype=int)
    is_head = slot == 0
    relation[is_head] = "head"
    sex[is_head] = np.where(head_female, "female", "male")
    age[is_head] = head_age
    is_spouse = (slot == 1) & has_spouse[hh_of]
    relation[is_spouse] = "spouse"
    sex[is_spouse] = "female"
    age[is_spouse] = np.clip(head_age[hh_of[is_spouse]] - rng.integers(2, 9, is_spouse.sum()), 17, 90)
    first_child_slot = 1 + has_spouse.astype(int)
    is_elder = has_elder[hh_of] & (slot == size[hh_of] - 1)
    relation[is_elder] = np.where(rng.random(is_elder.sum()) < 0.7, "mother", "father")
    sex[is_elder] = np.where(relation[is_elder] == "mother", "female", "male")
    age[is_elder] = np.clip(head_age[hh_of[is_elder]] + rng.integers(20, 32, is_elder.sum()), 40, 98)
    is_child = ~(is_head | is_spouse | is_elder)
    k = slot - first_child_slot[hh_of]  # 0 = eldest child
    mother_age = np.where(has_spouse, head_age - 5, head_age)[hh_of]
    eldest = np.clip(mother_age - rng.integers(19, 27, n_ind), 0, 40)
    gap = rng.integers(1, 4, n_ind)
    child_age = eldest - k * gap
    too_young = is_child & (child_age < 0)
    age[is_child] = np.clip(child_age[is_child], 0, 60)
    relation[is_child] = np.where(sex[is_child] == "male", "son", "daughter")
    # more children than a couple could have had: grandchildren, or the head's siblings
    grand = too_young & (head_age[hh_of] >= 50)
    relation[grand] = "grandchild"
    age[grand] = rng.integers(0, 8, grand.sum())
    sib = too_young & ~grand
    relation[sib] = np.where(sex[sib] == "male", "brother", "sister")
    age[sib] = np.clip(head_age[hh_of[sib]] + rng.integers(-12, 8, sib.sum()), 10, 80)
    # an adult son's wife lives with the family
    dil = is_child & (relation == "daughter") & (age >= 22) & (rng.random(n_ind) < 0.35)
    relation[dil] = "daughter_in_law"

    transgender = rng.random(n_ind) < 0.0005
    sex[transgender & ~is_spouse & (relation != "mother") & (relation != "father")] = "transgender"

    # ---- vital and social attributes
    dob_days = _REF_DAYS - age * 365 - rng.integers(0, 365, n_ind)
    dob = (dob_days.astype("datetime64[D]"))
    adult = age >= 18
    marital = np.full(n_ind, "never_married", dtype=object)
    married_p = np.where(age >= 25, 0.9, np.where(age >= 18, np.where(sex == "female", 0.55, 0.3), 0.0))
    marital[rng.random(n_ind) < married_p] = "married"
    marital[is_head & head_female[hh_of]] = np.where(rng.random((is_head & head_female[hh_of]).sum()) < 0.8, "widowed", "divorced")
    marital[is_head & has_spouse[hh_of]] = "married"
    marital[is_spouse | (relation == "daughter_in_law")] = "married"
    marital[is_elder] = np.where(rng.random(is_elder.sum()) < 0.65, "widowed", "married")
    old_widow = (age >= 60) & (marital == "married") & (rng.random(n_ind) < 0.25) & ~is_spouse & ~is_head
    marital[old_widow] = "widowed"

    disabled = rng.random(n_ind) < (0.025 + 0.002 * np.maximum(age - 40, 0))
    disability = np.where(disabled, _pick(rng, vocab.DISABILITY[1:], n_ind), "none").astype(object)

    wi = w[hh_of]
    male = sex == "male"
    edu_z = 0.9 * wi + 0.45 * male + 0.35 * urban[hh_of] - 0.012 * np.maximum(age - 30, 0) + rng.normal(0, 0.9, n_ind)
    education = _ordered(edu_z, [-0.4, 0.1, 0.45, 1.1, 1.6, 2.3], vocab.EDUCATION)
    school_age = (age >= 5) & (age <= 16)
    enrolled = school_age & (rng.random(n_ind) < _sigmoid(0.9 + 1.1 * wi + 0.35 * male - 0.15 * np.maximum(age - 10, 0)))
    # a child's level is what their age allows at most
    cap_level = np.select([age < 5, age < 10, age < 13, age < 15, age < 17, age < 21],
                          [0, 1, 2, 3, 4, 5], default=6)
    level_idx = np.minimum(np.searchsorted([-0.4, 0.1, 0.45, 1.1, 1.6, 2.3], edu_z), cap_level)
    level_idx = np.where(enrolled, np.maximum(level_idx, np.minimum(cap_level, 1)), level_idx)
    level_idx = np.where(school_age & ~enrolled & (age < 10), 0, level_idx)
    education = np.asarray(vocab.EDUCATION, dtype=object)[level_idx]

    labour = np.full(n_ind, "not_in_labour_force", dtype=object)
    labour[age < 5] = "child"
    labour[school_age & enrolled] = "student"
    labour[school_age & ~enrolled] = "child"
    works_p = np.where(male, 0.86, 0.2) * (adult | ((age >= 15) & ~enrolled)) * (age < 65)
    works = rng.random(n_ind) < works_p
    job_z = 0.8 * wi + 0.25 * level_idx + rng.normal(0, 1.0, n_ind)
    labour_kind = _ordered(job_z, [-0.7, 0.2, 1.0], ("daily_wager", "employed_informal", "self_employed", "employed_formal"))
    labour[works] = labour_kind[works]
    unemployed = adult & ~works & male & (age < 60) & (rng.random(n_ind) < 0.35)
    labour[unemployed] = "unemployed"
    labour[(age >= 60) & ~works & male & (rng.random(n_ind) < 0.4)] = "retired"
    occupation = np.full(n_ind, None, dtype=object)
    for kind in ("employed_formal", "employed_informal", "self_employed", "daily_wager"):
        for is_m, table in ((True, names.MALE_OCCUPATIONS), (False, names.FEMALE_OCCUPATIONS)):
            sel = (labour == kind) & (male == is_m)
            occupation[sel] = _pick(rng, table[kind], int(sel.sum()))

    # ---- maternal status: married women of child-bearing age; breastfeeding where an infant lives
    infants = np.bincount(hh_of, weights=(age < 2).astype(float), minlength=m)
    fertile = (sex == "female") & (marital == "married") & (age >= 15) & (age <= 45)
    maternal = np.full(n_ind, None, dtype=object)
    lactating = fertile & (infants[hh_of] > 0) & (is_spouse | (relation == "daughter_in_law")) & (rng.random(n_ind) < 0.8)
    maternal[lactating] = "lactating"
    maternal[fertile & ~lactating & (rng.random(n_ind) < 0.07)] = "pregnant"

    # ---- names: a family name per household, a husband's or father's name per person,
    # each part written in one of its spellings
    fam_idx = rng.integers(0, len(names.FAMILY), m)
    family = _spelled(rng, names.FAMILY, fam_idx[hh_of])
    muhammad = male & (rng.random(n_ind) < 0.45)
    male_given = np.where(muhammad, _spelled(rng, ["Muhammad"], np.zeros(n_ind, int)) + " ", "") + _spelled(rng, names.MALE, rng.integers(0, len(names.MALE), n_ind))
    given = np.where(sex == "female", _spelled(rng, names.FEMALE, rng.integers(0, len(names.FEMALE), n_ind)), male_given)
    second = np.where(sex == "female", np.where(rng.random(n_ind) < 0.5, family,
                      _spelled(rng, names.FEMALE_SECOND, rng.integers(0, len(names.FEMALE_SECOND), n_ind))), family)
    full_name = given + " " + second
    head_pos = np.cumsum(size) - size
    head_name = full_name[head_pos][hh_of]

    def a_man(k: int, fam: np.ndarray) -> np.ndarray:
        return (_spelled(rng, ["Muhammad"], np.zeros(k, int)) + " "
                + _spelled(rng, names.MALE, rng.integers(0, len(names.MALE), k)) + " " + fam)

    head_family = _spelled(rng, names.FAMILY, fam_idx)
    head_father = a_man(m, head_family)[hh_of]
    late_husband = a_man(m, head_family)[hh_of]
    father_of_children = np.where(head_female[hh_of], late_husband, head_name)
    fh = np.where(is_head, np.where(head_female[hh_of] & (marital != "never_married"), late_husband, head_father),
                  np.where(is_spouse, head_name, np.where(np.isin(relation, ["son", "daughter"]), father_of_children,
                           np.where(np.isin(relation, ["brother", "sister"]), head_father, a_man(n_ind, family)))))

    # ---- identifiers: CNIC for adults, B-form for registered children
    ind_district = district[hh_of]
    person_index = person_base + np.arange(n_ind)
    global_index = lo * 7 + np.arange(n_ind) + seed * 9_973
    middle = (global_index * 7_654_321 + 1_234_567) % 10_000_000
    parity = np.where(sex == "male", 1, np.where(sex == "female", 0, rng.integers(0, 2, n_ind)))
    last = (rng.integers(0, 5, n_ind) * 2 + parity) % 10
    prefix = geo.cnic_prefix[ind_district]
    cnic_num = prefix * 10**8 + middle * 10 + last
    has_doc = np.where(adult, rng.random(n_ind) < 0.97, rng.random(n_ind) < 0.6)
    if dirt.missing_cnic_rate:
        has_doc &= ~(adult & (rng.random(n_ind) < dirt.missing_cnic_rate))
    cnic = np.where(has_doc, cnic_num.astype(str), None).astype(object)
    id_document = np.where(has_doc, np.where(adult, "cnic", "bform"), None).astype(object)
    phone_num = rng.integers(300, 350, n_ind) * 10**7 + rng.integers(0, 10**7, n_ind)
    phone = np.where(adult & (rng.random(n_ind) < 0.72), np.char.add("0", phone_num.astype(str)), None).astype(object)

    # ---- dwelling, durables and productive assets from wealth
    def latent(scale: float = 0.8) -> np.ndarray:
        return w + rng.normal(0, scale, m)

    rural = ~urban
    electricity = rng.random(m) < _sigmoid(2.8 + 1.6 * w + 2.0 * urban)
    tenure = np.where(rng.random(m) < np.where(urban, 0.68, 0.86), "owned",
                      np.where(rng.random(m) < np.where(urban, 0.8, 0.3), "rented", "rent_free")).astype(object)
    rooms = np.clip(np.rint(1.5 + 0.65 * latent(0.7) + 0.12 * size + 0.2 * urban), 1, 12).astype(int)
    roof = _ordered(latent() + 0.4 * urban, [-1.3, -0.6, 0.2], vocab.ROOF[::-1])
    wall = _ordered(latent() + 0.5 * urban, [-1.4, -0.8, -0.1], vocab.WALL[::-1])
    toilet = _ordered(latent() + 0.8 * urban, [-1.5, -0.5], vocab.TOILET[::-1])
    water_z = latent(1.0)
    drinking_water = np.where(urban, _ordered(water_z, [-0.8, 0.0], ("other", "motor_pump", "piped")),
                              _ordered(water_z, [-1.2, -0.2, 0.8], ("well", "hand_pump", "motor_pump", "piped")))
    fuel_z = latent() + 1.2 * urban
    cooking_fuel = _ordered(fuel_z, [-0.5, 0.4, 1.0, 1.4], ("dung_crop", "wood", "lpg", "gas", "electric"))
    cooking_fuel = np.where(cooking_fuel == "electric", "gas", cooking_fuel)
    cooking_fuel = np.where((cooking_fuel == "wood") & (rng.random(m) < 0.04), "kerosene", cooking_fuel)

    def owns(a: float, b: float, needs_power: bool = True, extra: np.ndarray | float = 0.0) -> np.ndarray:
        has = rng.random(m) < _sigmoid(a + b * latent(0.6) + extra)
        return has & electricity if needs_power else has

    television = owns(0.4, 1.5, extra=0.6 * urban)
    fridge = owns(-0.2, 1.8, extra=0.5 * urban)
    washing_machine = owns(0.1, 1.6, extra=0.3 * urban)
    air_cooler = owns(-0.6, 1.5, extra=0.4 * urban)
    air_conditioner = owns(-3.4, 2.0, extra=0.7 * urban)
    freezer = owns(-3.0, 1.7)
    computer = owns(-3.2, 1.9, extra=0.9 * urban)
    motorcycle = owns(-0.3, 1.3, needs_power=False)
    car = owns(-5.0, 2.1, needs_power=False, extra=0.5 * urban)

    owns_land = rural & (rng.random(m) < _sigmoid(-0.9 + 0.9 * latent(0.7)))
    land_acres = np.where(owns_land, np.clip(np.round(np.exp(rng.normal(0.7 + 0.55 * w, 0.85)) * 4) / 4, 0.25, 250.0), 0.0)
    cattle = np.where(rural, rng.poisson(np.exp(0.2 + 0.3 * w + 0.35 * owns_land)), rng.poisson(0.05, m)).astype(int)
    goats_sheep = np.where(rural, rng.poisson(np.exp(0.1 - 0.15 * w)), 0).astype(int)
    tractor = owns_land & (rng.random(m) < _sigmoid(-3.2 + 1.2 * w + 0.12 * land_acres))

    # ---- true consumption per adult equivalent (PKR a month)
    adult_eq = np.bincount(hh_of, weights=np.where(adult, 1.0, 0.8), minlength=m)
    dep = np.bincount(hh_of, weights=((age < 15) | (age >= 65)).astype(float), minlength=m) / size
    log_c = (np.log(9_000) + 0.42 * w + 0.12 * urban - 0.03 * (size - 6) - 0.25 * dep
             + rng.normal(0, 0.50, m))
    consumption = np.round(np.exp(log_c), 0)
    # what a family declares when it applies: total spending, under-reported and rounded
    monthly_income = np.round(consumption * adult_eq * np.exp(rng.normal(-0.1, 0.3, m)), -3)

    # ---- ids in district ranges
    hh_id = _allocate(hh_next, district, HOUSEHOLD_RANGE)
    ind_id = _allocate(ind_next, ind_district, INDIVIDUAL_RANGE)
    refs = np.char.add(f"SYN{seed}-", np.char.zfill((lo + np.arange(m)).astype(str), 8)).astype(object)
    surveyed_days = (np.datetime64("2021-03-01", "D") - _EPOCH).astype(int) + rng.integers(0, 900, m)
    surveyed = surveyed_days.astype("datetime64[D]")

    tname = geo.tehsil_names[tehsil]
    house_no = rng.integers(1, 900, m).astype(str)
    address = np.where(
        urban,
        "House " + house_no + ", Street " + rng.integers(1, 40, m).astype(str) + ", "
        + _pick(rng, names.URBAN_LOCALITIES, m) + ", " + tname,
        np.where(rng.random(m) < 0.5,
                 "Chak No. " + rng.integers(1, 600, m).astype(str) + "/" + _pick(rng, names.RURAL_SUFFIX, m),
                 _pick(rng, names.VILLAGE_PREFIX, m) + " " + _pick(rng, names.FAMILY, m)) + ", Tehsil " + tname,
    )

    households = pa.table({
        "id": hh_id, "ref": refs, "district_id": district.astype(np.int16), "tehsil_id": tehsil.astype(np.int16),
        "uc_id": uc.astype(np.int32), "urban": urban, "address": _s(address),
        "tenure": _s(tenure), "rooms": rooms.astype(np.int16), "roof": _s(roof), "wall": _s(wall),
        "toilet": _s(toilet), "drinking_water": _s(drinking_water), "electricity": electricity,
        "cooking_fuel": _s(cooking_fuel), "fridge": fridge, "freezer": freezer,
        "air_conditioner": air_conditioner, "air_cooler": air_cooler, "washing_machine": washing_machine,
        "television": television, "motorcycle": motorcycle, "car": car, "computer": computer,
        "land_acres": land_acres, "cattle": cattle.astype(np.int16), "goats_sheep": goats_sheep.astype(np.int16),
        "tractor": tractor, "monthly_income": monthly_income, "surveyed_on": surveyed, "verified_on": surveyed,
    })
    individuals = pa.table({
        "id": ind_id, "household_id": hh_id[hh_of], "district_id": ind_district.astype(np.int16),
        "roster_line": (slot + 1).astype(np.int16), "cnic": pa.array(cnic, type=pa.string()), "id_document": pa.array(id_document, type=pa.string()),
        "full_name": _s(full_name), "father_husband_name": _s(fh), "sex": _s(sex),
        "date_of_birth": dob, "relation_to_head": _s(relation), "marital_status": _s(marital),
        "disability": _s(disability), "education": _s(education), "enrolled_in_school": enrolled,
        "occupation": pa.array(occupation, type=pa.string()), "labour_status": _s(labour),
        "maternal_status": pa.array(maternal, type=pa.string()),
        "phone": pa.array(phone, type=pa.string()), "member_since": surveyed[hh_of],
    })
    consumption_t = pa.table({"household_id": hh_id, "consumption_pae": consumption})
    truth = pa.table({"individual_id": ind_id, "person_key": person_index.astype(np.int64)})
    chunk = Chunk(households, individuals, consumption_t, truth, {"persons": n_ind})
    if dirt.duplicate_rate:
        _add_duplicates(rng, chunk, dirt, hh_next, ind_next, seed, lo)
    return chunk


def _add_duplicates(rng, chunk: Chunk, dirt: DirtOptions, hh_next: dict, ind_next: dict, seed: int, lo: int) -> None:
    """Register some households a second time, as a second survey team would: the same people,
    written with other spellings, sometimes without CNIC, with day and month of birth swapped."""
    hh = chunk.households
    m = hh.num_rows
    pick = np.flatnonzero(rng.random(m) < dirt.duplicate_rate)
    if len(pick) == 0:
        return
    dup_hh = hh.take(pick)
    old_ids = dup_hh["id"].to_numpy()
    district = dup_hh["district_id"].to_numpy().astype(int)
    new_ids = _allocate(hh_next, district, HOUSEHOLD_RANGE)
    id_map = dict(zip(old_ids.tolist(), new_ids.tolist()))
    refs = np.char.add(f"SYN{seed}-D", np.char.zfill((lo + pick).astype(str), 8)).astype(object)
    dup_hh = dup_hh.set_column(0, "id", pa.array(new_ids)).set_column(1, "ref", pa.array(refs.astype(str)))

    ind = chunk.individuals
    members_mask = np.isin(ind["household_id"].to_numpy(), old_ids)
    rows = np.flatnonzero(members_mask)
    dup_ind = ind.take(rows)
    n = dup_ind.num_rows
    new_ind_ids = _allocate(ind_next, dup_ind["district_id"].to_numpy().astype(int), INDIVIDUAL_RANGE)
    new_hh_of = np.array([id_map[h] for h in dup_ind["household_id"].to_numpy().tolist()], dtype=np.int64)
    full = dup_ind["full_name"].to_numpy(zero_copy_only=False).astype(object)
    full = _spell(rng, full, dirt.typo_rate)
    typo = rng.random(n) < dirt.typo_rate / 2
    for i in np.flatnonzero(typo):  # one dropped or doubled letter, as a data-entry slip
        s = full[i]
        j = int(rng.integers(1, max(2, len(s) - 1)))
        full[i] = s[:j] + s[j + 1:] if rng.random() < 0.5 else s[:j] + s[j] + s[j:]
    cnic = dup_ind["cnic"].to_numpy(zero_copy_only=False).astype(object)
    cnic[rng.random(n) < 0.3] = None
    dob = dup_ind["date_of_birth"].to_numpy().astype("datetime64[D]")
    swap = rng.random(n) < 0.1
    for i in np.flatnonzero(swap):
        y, mo, d = str(dob[i]).split("-")
        if int(d) <= 12:
            dob[i] = np.datetime64(f"{y}-{d}-{mo}")
    dup_ind = (dup_ind.set_column(0, "id", pa.array(new_ind_ids)).set_column(1, "household_id", pa.array(new_hh_of))
               .set_column(dup_ind.schema.get_field_index("full_name"), "full_name", pa.array(full.astype(str)))
               .set_column(dup_ind.schema.get_field_index("cnic"), "cnic", pa.array(cnic, type=pa.string()))
               .set_column(dup_ind.schema.get_field_index("date_of_birth"), "date_of_birth", pa.array(dob)))
    truth_keys = chunk.truth["person_key"].to_numpy()[rows]
    cons = chunk.consumption.take(pick).set_column(0, "household_id", pa.array(new_ids))
    chunk.households = pa.concat_tables([hh, dup_hh])
    chunk.individuals = pa.concat_tables([ind, dup_ind])
    chunk.consumption = pa.concat_tables([chunk.consumption, cons])
    chunk.truth = pa.concat_tables([chunk.truth, pa.table({"individual_id": new_ind_ids, "person_key": truth_keys})])
    chunk.stats["duplicate_households"] = len(pick)

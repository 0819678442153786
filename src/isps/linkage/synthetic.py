"""Partner beneficiary lists with known truth, drawn from registry individuals and corrupted the way
real lists are (the ideas of :class:`isps.synth.generator.DirtOptions`): CNIC missing or mistyped,
transliteration variants and data-entry slips in names, the father's name where the registry has
the husband's, day and month of birth swapped, another district, no phone. Some lines are people the
registry does not hold (``outsiders``). The column ``true_individual_id`` is the truth (None for an
outsider)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from isps.registry import geography, name_variants

_VARIANT_OF = {}
for _canon, _vs in name_variants.VARIANTS.items():
    for _v in [_canon, *_vs]:
        _VARIANT_OF.setdefault(_v, [_canon, *_vs])


@dataclass(frozen=True)
class ListDirt:
    missing_cnic: float = 0.30     # no valid CNIC: blank or unreadable
    cnic_typo: float = 0.02        # one digit changed
    spelling: float = 0.30         # another transliteration of a name part
    slip: float = 0.08             # a dropped or doubled letter
    father_for_husband: float = 0.30  # of married women: the father's name instead of the husband's
    swap_day_month: float = 0.05
    other_district: float = 0.03
    drop_phone: float = 0.5


def _respell(rng, s: str) -> str:
    parts = [rng.choice(_VARIANT_OF[p]) if p in _VARIANT_OF else p for p in s.split(" ")]
    return " ".join(parts)


def _slip(rng, s: str) -> str:
    if len(s) < 4:
        return s
    j = int(rng.integers(1, len(s) - 1))
    return s[:j] + s[j + 1:] if rng.random() < 0.5 else s[:j] + s[j] + s[j:]


def corrupt(people: pa.Table, rng: np.random.Generator, dirt: ListDirt = ListDirt()) -> pa.Table:
    """Write registry people (columns of ``individual``) as a partner would."""
    n = people.num_rows
    full = people["full_name"].to_numpy(zero_copy_only=False).astype(object)
    fh = people["father_husband_name"].to_numpy(zero_copy_only=False).astype(object)
    for arr in (full, fh):
        for i in np.flatnonzero(rng.random(n) < dirt.spelling):
            if arr[i]:
                arr[i] = _respell(rng, arr[i])
        for i in np.flatnonzero(rng.random(n) < dirt.slip):
            if arr[i]:
                arr[i] = _slip(rng, arr[i])
    sex = people["sex"].to_numpy(zero_copy_only=False).astype(object)
    marital = people["marital_status"].to_numpy(zero_copy_only=False).astype(object) \
        if "marital_status" in people.column_names else np.full(n, "never_married", dtype=object)
    wife = (sex == "female") & (marital == "married") & (rng.random(n) < dirt.father_for_husband)
    men = [m.split(" ")[-2] for m in full[sex == "male"][:500] if m and " " in m] or ["Ahmed"]  # the list's own men's given names
    for i in np.flatnonzero(wife):
        fam = (fh[i] or "Khan").split(" ")[-1]
        fh[i] = f"Muhammad {rng.choice(men)} {rng.choice(men) if rng.random() < 0.5 else fam}"
    cnic = people["cnic"].to_numpy(zero_copy_only=False).astype(object)
    lost = rng.random(n) < dirt.missing_cnic
    unreadable = lost & (rng.random(n) < 0.3)
    for i in np.flatnonzero(unreadable):
        if cnic[i]:
            cnic[i] = cnic[i][:-2]  # too short: rejected as a CNIC, kept as a line
    cnic[lost & ~unreadable] = None
    for i in np.flatnonzero((rng.random(n) < dirt.cnic_typo) & ~lost):
        if cnic[i]:
            j = int(rng.integers(5, 12))
            cnic[i] = cnic[i][:j] + str((int(cnic[i][j]) + 1) % 10) + cnic[i][j + 1:]
    dob = people["date_of_birth"].cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    dob_text = np.datetime_as_string(dob).astype(object)
    for i in np.flatnonzero(rng.random(n) < dirt.swap_day_month):
        y, mo, d = dob_text[i].split("-")
        if int(d) <= 12:
            dob_text[i] = f"{y}-{d}-{mo}"
    district = people["district_id"].to_numpy().astype(int)
    ids = np.array([d.id for d in geography.districts()])
    moved = rng.random(n) < dirt.other_district
    district[moved] = rng.choice(ids, moved.sum())
    phone = people["phone"].to_numpy(zero_copy_only=False).astype(object)
    phone[rng.random(n) < dirt.drop_phone] = None
    return pa.table({
        "cnic": pa.array(cnic, pa.string()), "full_name": pa.array(full, pa.string()),
        "father_husband_name": pa.array(fh, pa.string()), "sex": pa.array(sex, pa.string()),
        "date_of_birth": pa.array(dob_text, pa.string()), "district": pa.array(district.astype(str), pa.string()),
        "phone": pa.array(phone, pa.string())})


def partner_list(registry: pa.Table, n: int, seed: int, *, outsiders: pa.Table | None = None,
                 outsider_share: float = 0.1, dirt: ListDirt = ListDirt(), prefix: str = "P") -> pa.Table:
    """``n`` lines: registry people (distinct, drawn at random) and a share of outsiders, each with a
    partner reference, corrupted by ``dirt``; ``true_individual_id`` holds the truth."""
    rng = np.random.default_rng(seed)
    n_out = int(round(n * outsider_share)) if outsiders is not None else 0
    n_out = min(n_out, outsiders.num_rows if outsiders is not None else 0)
    n_in = min(n - n_out, registry.num_rows)
    inside = registry.take(pa.array(rng.choice(registry.num_rows, n_in, replace=False)))
    parts = [corrupt(inside, rng, dirt).append_column("true_individual_id", inside["id"].cast(pa.int64()))]
    if n_out:
        out = outsiders.take(pa.array(rng.choice(outsiders.num_rows, n_out, replace=False)))
        parts.append(corrupt(out, rng, dirt).append_column("true_individual_id", pa.nulls(n_out, pa.int64())))
    table = pa.concat_tables(parts)
    order = pa.array(rng.permutation(table.num_rows))
    table = table.take(order)
    refs = pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(1, table.num_rows + 1)), pa.string()), "-")
    return table.add_column(0, "partner_ref", refs)


def evaluate(predicted: list[int | None], truth: list[int | None]) -> dict:
    """Precision, recall and F1 of the links (a line to a registry individual) against the truth."""
    made = sum(1 for p in predicted if p is not None)
    correct = sum(1 for p, t in zip(predicted, truth) if p is not None and p == t)
    should = sum(1 for t in truth if t is not None)
    precision = correct / made if made else 1.0
    recall = correct / should if should else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "links": made, "correct": correct, "in_registry": should}

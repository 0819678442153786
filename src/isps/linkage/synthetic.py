"""Partner beneficiary lists with known truth, drawn from registry individuals and corrupted the way
real lists are. Two error models:

* ``standard`` (:class:`ListDirt`, the ideas of :class:`isps.synth.generator.DirtOptions`): CNIC
  missing or mistyped, transliteration variants from the project's own table and data-entry slips
  in names, the father's name where the registry has the husband's, day and month of birth swapped,
  another district, no phone; at most one or two errors on a line.
* ``hard`` (:class:`HardDirt`, :func:`corrupt_hard`): an error model of its own that does not use the
  variant table the resolver knows: several errors on each line drawn from (imprecise date of birth:
  1 January, a year alone, swapped, a year off; district written as an old name or abbreviation,
  misspelt or another district; the given name spelt outside the table; the father's name with or
  without "Muhammad", a middle name, another spelling or a title; given and family name swapped),
  honorifics added, about half without a usable CNIC, and CNIC slips that hit another person.

Some lines are people the registry does not hold (``outsiders``). The column ``true_individual_id``
is the truth (None for an outsider)."""

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


@dataclass(frozen=True)
class HardDirt:
    no_cnic: float = 0.45            # blank (two in three) or unreadable
    cnic_slip: float = 0.02          # one digit changed (of lines with a CNIC)
    cnic_of_another: float = 0.01    # a slip that is another person's CNIC (of lines with a CNIC)
    errors: tuple[float, ...] = (0.3, 0.45, 0.25)  # share of lines with 1, 2, 3 of the errors below
    honorific: float = 0.3
    drop_phone: float = 0.8


# transliteration habits the resolver's table does not list (the resolver must cope by itself)
_RESPELL = (("ee", "i"), ("i", "ee"), ("oo", "u"), ("u", "oo"), ("u", "o"), ("o", "u"), ("a", "e"), ("e", "a"),
            ("aa", "a"), ("a", "aa"), ("kh", "k"), ("q", "k"), ("k", "q"), ("z", "s"), ("w", "v"), ("v", "w"),
            ("h", ""), ("ss", "s"), ("s", "ss"), ("ll", "l"), ("y", "i"), ("i", "y"))
_TITLES_M = ("Syed", "Malik", "Mian", "Ch.", "Rana", "Sheikh", "Hafiz", "Haji")
_TITLES_F = ("Mst.", "Bibi", "Mst", "Syeda")
_ALIAS_OF = {name: aliases for name, aliases in geography.DISTRICT_ALIASES.items()}


def _respell_outside(rng, word: str) -> str:
    """One or two spelling habits applied to a word (never a slip of the variant table)."""
    out = word
    for _ in range(int(rng.integers(1, 3))):
        lower = out.lower()
        options = [(a, b) for a, b in _RESPELL if a in lower[1:]]
        if not options:
            break
        a, b = options[int(rng.integers(len(options)))]
        j = lower.find(a, 1)
        out = out[:j] + b + out[j + len(a):]
    return out if len(out) > 1 else word


def _tokens(name: str) -> list[str]:
    return [t for t in (name or "").split(" ") if t]


def _given_at(tokens: list[str]) -> int:
    for i, t in enumerate(tokens):
        if t.lower().rstrip(".") not in ("muhammad", "mohammad", "muhammed", "m", "mohd", "ghulam", "allah", "abdul"):
            return i
    return 0


def _misspell_place(rng, name: str) -> str:
    j = int(rng.integers(1, max(2, len(name) - 1)))
    k = rng.random()
    if k < 0.4:
        return name[:j] + name[j + 1:]
    if k < 0.8:
        return name[:j] + name[j] + name[j:]
    return name[:j - 1] + name[j] + name[j - 1] + name[j + 1:] if j + 1 <= len(name) - 1 else name + name[-1]


def corrupt_hard(people: pa.Table, rng: np.random.Generator, dirt: HardDirt = HardDirt(),
                 cnic_pool: np.ndarray | None = None) -> pa.Table:
    """Write registry people as a careless partner would (:class:`HardDirt`); the district is
    written as text, the way partners write it. ``cnic_pool``: other people's CNICs, for slips
    that land on someone else."""
    n = people.num_rows
    full = people["full_name"].to_numpy(zero_copy_only=False).astype(object)
    fh = people["father_husband_name"].to_numpy(zero_copy_only=False).astype(object)
    sex = people["sex"].to_numpy(zero_copy_only=False).astype(object)
    dob = people["date_of_birth"].cast(pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    dob_text = np.datetime_as_string(dob).astype(object)
    dob_text[np.isnat(dob)] = None
    district_name = {d.id: d.name for d in geography.districts()}
    ids = np.array(list(district_name))
    district = np.array([district_name.get(int(d)) for d in people["district_id"].to_numpy()], dtype=object)
    k_errors = rng.choice(np.arange(1, len(dirt.errors) + 1), n, p=np.asarray(dirt.errors) / sum(dirt.errors))
    menu = ("dob", "district", "given", "father", "order")
    for i in range(n):
        for err in rng.choice(menu, int(k_errors[i]), replace=False):
            toks = _tokens(full[i])
            if err == "dob" and dob_text[i]:
                y, mo, d = dob_text[i].split("-")
                r = rng.random()
                if r < 0.4:
                    dob_text[i] = f"{y}-01-01"
                elif r < 0.7:
                    dob_text[i] = y
                elif r < 0.9 and int(d) <= 12 and d != mo:
                    dob_text[i] = f"{y}-{d}-{mo}"
                else:
                    dob_text[i] = f"{int(y) + (1 if rng.random() < 0.5 else -1)}-{mo}-{'28' if mo == '02' else d}"
            elif err == "district" and district[i]:
                r = rng.random()
                if r < 0.4 and _ALIAS_OF.get(district[i]):
                    district[i] = rng.choice(_ALIAS_OF[district[i]])
                elif r < 0.7:
                    district[i] = _misspell_place(rng, district[i])
                else:
                    district[i] = district_name[int(rng.choice(ids))]
            elif err == "given" and toks:
                j = _given_at(toks)
                toks[j] = _respell_outside(rng, toks[j])
                full[i] = " ".join(toks)
            elif err == "order" and len(toks) >= 2:
                full[i] = " ".join(toks[-1:] + toks[:-1])
            elif err == "father" and fh[i]:
                ft = _tokens(fh[i])
                r = rng.random()
                if r < 0.3:
                    ft = ft[1:] if ft[0].lower() in ("muhammad", "mohammad", "muhammed") else ["Muhammad", *ft]
                elif r < 0.55 and len(ft) >= 3:
                    ft = [ft[0], ft[-1]]  # the middle name left out
                elif r < 0.8:
                    j = int(rng.integers(len(ft)))
                    ft[j] = _respell_outside(rng, ft[j])
                else:
                    ft = [str(rng.choice(_TITLES_M)), *ft]
                fh[i] = " ".join(ft)
    for i in np.flatnonzero(rng.random(n) < dirt.honorific):
        if full[i]:
            full[i] = f"{rng.choice(_TITLES_F if sex[i] == 'female' else _TITLES_M)} {full[i]}"
    cnic = people["cnic"].to_numpy(zero_copy_only=False).astype(object)
    lost = rng.random(n) < dirt.no_cnic
    unreadable = lost & (rng.random(n) < 1 / 3)
    for i in np.flatnonzero(unreadable):
        if cnic[i]:
            cnic[i] = cnic[i][:-3] if rng.random() < 0.5 else "0000000000000"
    cnic[lost & ~unreadable] = None
    kept = ~lost
    for i in np.flatnonzero(kept & (rng.random(n) < dirt.cnic_slip)):
        if cnic[i]:
            j = int(rng.integers(5, 12))
            cnic[i] = cnic[i][:j] + str((int(cnic[i][j]) + 1) % 10) + cnic[i][j + 1:]
    pool = cnic_pool if cnic_pool is not None else cnic[kept]
    pool = np.asarray([c for c in pool if c], dtype=object)
    if len(pool):
        for i in np.flatnonzero(kept & (rng.random(n) < dirt.cnic_of_another)):
            other = pool[int(rng.integers(len(pool)))]
            if other != cnic[i]:
                cnic[i] = other
    phone = people["phone"].to_numpy(zero_copy_only=False).astype(object)
    phone[rng.random(n) < dirt.drop_phone] = None
    return pa.table({
        "cnic": pa.array(cnic, pa.string()), "full_name": pa.array(full, pa.string()),
        "father_husband_name": pa.array(fh, pa.string()), "sex": pa.array(sex, pa.string()),
        "date_of_birth": pa.array(dob_text, pa.string()), "district": pa.array(district, pa.string()),
        "phone": pa.array(phone, pa.string())})


def partner_list(registry: pa.Table, n: int, seed: int, *, outsiders: pa.Table | None = None,
                 outsider_share: float = 0.1, dirt: ListDirt = ListDirt(), prefix: str = "P",
                 profile: str = "standard", hard: HardDirt = HardDirt()) -> pa.Table:
    """``n`` lines: registry people (distinct, drawn at random) and a share of outsiders, each with a
    partner reference, corrupted by ``dirt`` (profile ``standard``) or by :func:`corrupt_hard`
    (profile ``hard``); ``true_individual_id`` holds the truth."""
    rng = np.random.default_rng(seed)
    n_out = int(round(n * outsider_share)) if outsiders is not None else 0
    n_out = min(n_out, outsiders.num_rows if outsiders is not None else 0)
    n_in = min(n - n_out, registry.num_rows)
    inside = registry.take(pa.array(rng.choice(registry.num_rows, n_in, replace=False)))
    if profile == "hard":
        pool = registry["cnic"].to_numpy(zero_copy_only=False)
        spoil = lambda t: corrupt_hard(t, rng, hard, pool)  # noqa: E731
    elif profile == "standard":
        spoil = lambda t: corrupt(t, rng, dirt)  # noqa: E731
    else:
        raise ValueError(f"unknown list profile '{profile}' (standard or hard)")
    parts = [spoil(inside).append_column("true_individual_id", inside["id"].cast(pa.int64()))]
    if n_out:
        out = outsiders.take(pa.array(rng.choice(outsiders.num_rows, n_out, replace=False)))
        parts.append(spoil(out).append_column("true_individual_id", pa.nulls(n_out, pa.int64())))
    table = pa.concat_tables(parts)
    order = pa.array(rng.permutation(table.num_rows))
    table = table.take(order)
    refs = pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(1, table.num_rows + 1)), pa.string()), "-")
    return table.add_column(0, "partner_ref", refs)


def usable_cnic(cnics: list[str | None]) -> list[bool]:
    """Whether each line carries a CNIC that can be read (13 digits, not starting with 0)."""
    out = []
    for c in cnics:
        digits = (c or "").replace("-", "")
        out.append(len(digits) == 13 and digits.isdigit() and not digits.startswith("0"))
    return out


def evaluate(predicted: list[int | None], truth: list[int | None], no_cnic: list[bool] | None = None) -> dict:
    """Precision, recall and F1 of the links (a line to a registry individual) against the truth;
    with ``no_cnic`` (per line: no usable CNIC) also the recall on those lines alone."""
    made = sum(1 for p in predicted if p is not None)
    correct = sum(1 for p, t in zip(predicted, truth) if p is not None and p == t)
    should = sum(1 for t in truth if t is not None)
    precision = correct / made if made else 1.0
    recall = correct / should if should else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
           "links": made, "correct": correct, "in_registry": should}
    if no_cnic is not None:
        sub = [(p, t) for p, t, nc in zip(predicted, truth, no_cnic) if nc and t is not None]
        out["in_registry_no_cnic"] = len(sub)
        out["recall_no_cnic"] = round(sum(1 for p, t in sub if p == t) / len(sub), 4) if sub else 1.0
    return out

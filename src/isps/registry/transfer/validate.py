"""Checking the sheets column by column: every problem kept per row, never a row loop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from isps.registry import geography
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS, as_text, parse_column
from isps.registry.transfer.arrays import _index, _join, _np, _say, _text
from isps.registry.transfer.layout import _DEATH, _ID_DOCUMENT, _REF, _ROSTER
from isps.registry.transfer.readers import _Sheet
from isps.registry.transfer.report import RowError


# ---------------------------------------------------------------- row errors, column-wise

class _Errors:
    """Per-row problems of one sheet, kept as (mask, field, reason or reasons) until reported."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.items: list[tuple[np.ndarray, str, object]] = []

    def add(self, mask, field_name: str, reason) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.items.append((mask, field_name, reason))

    def add_reasons(self, field_name: str, reasons: np.ndarray) -> None:
        self.add(np.not_equal(reasons, None), field_name, reasons)

    def bad(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for mask, _, _ in self.items:
            out |= mask
        return out

    def report(self, sheet: str, rownums: np.ndarray, refs: np.ndarray) -> list[RowError]:
        out = []
        for mask, field_name, reason in self.items:  # the error path: only rejected rows are visited
            idx = np.flatnonzero(mask)
            texts = reason[idx] if isinstance(reason, np.ndarray) else [reason] * len(idx)
            out.extend(RowError(sheet, int(rownums[i]), str(refs[i] or ""), field_name, str(r))
                       for i, r in zip(idx, texts))
        return out


def _duplicates(keys: np.ndarray, valid: np.ndarray, rownums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose key occurs more than once among the valid rows, and the rows it occurs on."""
    n = len(keys)
    mask = np.zeros(n, dtype=bool)
    where = np.full(n, None, dtype=object)
    pos = np.flatnonzero(valid)
    if len(pos) < 2:
        return mask, where
    _, inv, counts = np.unique(keys[pos].astype(str), return_inverse=True, return_counts=True)
    dup = counts[inv] > 1
    if not dup.any():
        return mask, where
    mask[pos[dup]] = True
    groups = inv[dup]
    rows = rownums[pos[dup]]
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    for members in np.split(order, bounds):  # one pass per duplicated key, not per row
        listed = ", ".join(str(int(r)) for r in rows[members])
        where[pos[dup][members]] = listed
    return mask, where


# ---------------------------------------------------------------- checking the sheets

@dataclass
class _Parsed:
    sheet: _Sheet
    errors: _Errors
    ref: np.ndarray                 # household_ref as text
    values: dict[str, np.ndarray]   # parsed values per field present in the file

    @property
    def n(self) -> int:
        return len(self.ref)


@dataclass
class _Geo:
    district_ids: np.ndarray
    district_keys: list[str]
    district_names: np.ndarray      # by district id
    tehsil_keys: list[str]          # "<district id>|<tehsil name lower>"
    tehsil_ids: np.ndarray
    tehsil_names: np.ndarray        # by tehsil id
    uc_keys: list[str]              # "<tehsil id>|<uc name lower>" and "<tehsil id>|<number>"
    uc_ids: np.ndarray
    uc_names: dict[int, str]


def _geo() -> _Geo:
    ds = geography.districts()
    top_d = max(d.id for d in ds) + 1
    dnames = np.full(top_d, "", dtype=object)
    tkeys, tids, ukeys, uids, unames = [], [], [], [], {}
    tnames = {}
    for d in ds:
        dnames[d.id] = d.name
        for tid, tname in d.tehsils:
            tkeys.append(f"{d.id}|{tname.lower()}")
            tids.append(tid)
            tnames[tid] = tname
        for uc_id, tid, name in geography.union_councils(d):
            number = name.split(" ", 1)[0].removeprefix("UC-")
            ukeys += [f"{tid}|{name.lower()}", f"{tid}|{number}"]
            uids += [uc_id, uc_id]
            unames[uc_id] = name
    tname_arr = np.full(max(tnames) + 1, "", dtype=object)
    for tid, name in tnames.items():
        tname_arr[tid] = name
    return _Geo(np.array([d.id for d in ds]), [d.name.lower() for d in ds], dnames, tkeys,
                np.asarray(tids, dtype=np.int64), tname_arr, ukeys, np.asarray(uids, dtype=np.int64), unames)


def _parse_households(sheet: _Sheet, geo: _Geo) -> _Parsed:
    t = sheet.table
    n = t.num_rows
    err = _Errors(n)
    ref = _text(t["household_ref"])
    _, reasons = parse_column(_REF, t["household_ref"])
    err.add_reasons("household_ref", reasons)
    dup, rows = _duplicates(ref, ref != "", sheet.rows)
    err.add(dup, "household_ref", _say(dup, "appears more than once in the file (rows ", rows, ")"))

    values: dict[str, np.ndarray] = {}
    # where: district, tehsil within it, union council within the tehsil
    dtext = as_text(t["district"])
    d_at = _index(pc.utf8_lower(dtext), geo.district_keys)
    district_id = np.where(d_at >= 0, geo.district_ids[np.maximum(d_at, 0)], 0).astype(np.int64)
    d_empty = _np(pc.equal(dtext, "")).astype(bool)
    err.add(d_empty, "district", "is required")
    unknown = ~d_empty & (d_at < 0)
    err.add(unknown, "district", _say(unknown, "'", _np(dtext), "' is not a district of Punjab"))
    ttext = as_text(t["tehsil"])
    t_empty = _np(pc.equal(ttext, "")).astype(bool)
    t_at = _index(_join(pc.cast(pa.array(district_id), pa.string()), pc.utf8_lower(ttext), sep="|"), geo.tehsil_keys)
    tehsil_id = np.where(t_at >= 0, geo.tehsil_ids[np.maximum(t_at, 0)], 0).astype(np.int64)
    err.add(t_empty, "tehsil", "is required")
    unknown = ~t_empty & (d_at >= 0) & (t_at < 0)
    err.add(unknown, "tehsil", _say(unknown, "'", _np(ttext), "' is not a tehsil of district ",
                                    geo.district_names[district_id]))
    values["district_id"] = district_id.astype(object)
    values["tehsil_id"] = tehsil_id.astype(object)
    if "uc" in t.column_names:
        utext = as_text(t["uc"])
        u_empty = _np(pc.equal(utext, "")).astype(bool)
        u_at = _index(_join(pc.cast(pa.array(tehsil_id), pa.string()), pc.utf8_lower(utext), sep="|"), geo.uc_keys)
        uc_id = np.full(n, None, dtype=object)
        found = u_at >= 0
        uc_id[found] = geo.uc_ids[u_at[found]].astype(object)
        unknown = ~u_empty & (t_at >= 0) & ~found
        err.add(unknown, "uc", _say(unknown, "'", _np(utext), "' is not a union council of tehsil ",
                                    geo.tehsil_names[tehsil_id]))
        values["uc_id"] = uc_id
    for name, spec in HOUSEHOLD_FIELDS.items():
        if name in t.column_names:  # an optional column left out of the file leaves that field alone
            values[name], reasons = parse_column(spec, t[name])
            err.add_reasons(name, reasons)
    return _Parsed(sheet, err, ref, values)


def _mask_cnics(number: pa.Array) -> pa.Array:
    """cnic.mask over a column of 13-digit numbers."""
    return _join(pc.utf8_slice_codeunits(number, 0, 5), "-*****", pc.utf8_slice_codeunits(number, 10, 12), "-",
                 pc.utf8_slice_codeunits(number, 12, 13))


def _mask_raw(text: pa.Array) -> pa.Array:
    """cnic.mask_raw over a column of whatever was typed."""
    length = pc.utf8_length(text)
    short = pc.less_equal(length, 4)
    stars = pc.binary_repeat("*", pc.max_element_wise(pc.subtract(length, 5), 0))
    long_form = _join(pc.utf8_slice_codeunits(text, 0, 3), stars, pc.utf8_slice_codeunits(text, -2))
    return pc.if_else(short, pc.binary_repeat("*", length), long_form)


def _parse_cnic(raw, sex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rules of :func:`isps.registry.cnic.validate`, over a whole column: 13 digits written
    NNNNN-NNNNNNN-N or plain, not beginning with 0, last digit odd for men and even for women."""
    text = as_text(raw)
    n = len(text)
    reason = np.full(n, None, dtype=object)
    empty = _np(pc.equal(text, "")).astype(bool)
    well_formed = _np(pc.or_(pc.match_substring_regex(text, r"^\d{5}-\d{7}-\d$"),
                             pc.match_substring_regex(text, r"^\d{13}$"))).astype(bool)
    digits = pc.utf8_length(pc.replace_substring_regex(text, r"\D", ""))
    ndigits = _np(digits)
    shown = _np(_mask_raw(text))
    wrong_count = ~empty & ~well_formed & (ndigits != 13)
    reason[wrong_count] = _say(wrong_count, "CNIC '", shown, "' must have 13 digits written NNNNN-NNNNNNN-N; it has ",
                               ndigits)[wrong_count]
    wrong_form = ~empty & ~well_formed & (ndigits == 13)
    reason[wrong_form] = _say(wrong_form, "CNIC '", shown,
                              "' must be written NNNNN-NNNNNNN-N or as 13 digits")[wrong_form]
    number = pc.replace_substring(text, "-", "")
    masked = _np(_mask_cnics(number))
    zero = well_formed & _np(pc.starts_with(number, "0")).astype(bool)
    reason[zero] = _say(zero, "CNIC ", masked, " cannot begin with 0: the first digit is the province code")[zero]
    last_text = pc.utf8_slice_codeunits(number, 12, 13)
    last = np.where(well_formed, _np(pc.cast(pc.if_else(pa.array(well_formed), last_text, "0"), pa.int64())), 0)
    male = np.equal(sex, "male") & (last % 2 == 0)
    female = np.equal(sex, "female") & (last % 2 == 1)
    for wrong, who, parity in ((male, "male", "odd"), (female, "female", "even")):
        wrong = well_formed & ~zero & wrong
        reason[wrong] = _say(wrong, "CNIC ", masked, " ends in ", _np(last_text),
                             f", but a {who} holder's CNIC ends in an {parity} digit")[wrong]
    values = np.full(n, None, dtype=object)
    good = well_formed & np.equal(reason, None)
    values[good] = _np(number).astype(object)[good]
    return values, reason


def _adult_on(dob: np.ndarray, on: date) -> np.ndarray:
    try:
        cutoff = on.replace(year=on.year - 18)
    except ValueError:  # 29 February
        cutoff = on.replace(year=on.year - 18, day=28)
    known = np.not_equal(dob, None)
    out = np.zeros(len(dob), dtype=bool)
    if known.any():
        out[known] = _np(pc.less_equal(pa.array(list(dob[known]), pa.date32()), pa.scalar(cutoff))).astype(bool)
    return out


def _parse_members(sheet: _Sheet) -> _Parsed:
    t = sheet.table
    n = t.num_rows
    cols = set(t.column_names)
    err = _Errors(n)
    ref = _text(t["household_ref"])
    _, reasons = parse_column(_REF, t["household_ref"])
    err.add_reasons("household_ref", reasons)
    values: dict[str, np.ndarray] = {}
    values["roster_line"], reasons = parse_column(_ROSTER, t["roster_line"])
    err.add_reasons("roster_line", reasons)
    for name, spec in INDIVIDUAL_FIELDS.items():
        if name in cols:
            values[name], reasons = parse_column(spec, t[name])
            err.add_reasons(name, reasons)
    if "cnic" in cols:
        values["cnic"], reasons = _parse_cnic(t["cnic"], values["sex"])
        err.add_reasons("cnic", reasons)
    if "id_document" in cols:
        values["id_document"], reasons = parse_column(_ID_DOCUMENT, t["id_document"])
        err.add_reasons("id_document", reasons)
    if "date_of_death" in cols:
        values["date_of_death"], reasons = parse_column(_DEATH, t["date_of_death"])
        err.add_reasons("date_of_death", reasons)
        both = np.not_equal(values["date_of_death"], None) & np.not_equal(values["date_of_birth"], None)
        before = np.zeros(n, dtype=bool)
        if both.any():
            before[both] = _np(pc.less(pa.array(list(values["date_of_death"][both]), pa.date32()),
                                       pa.array(list(values["date_of_birth"][both]), pa.date32()))).astype(bool)
        err.add(before, "date_of_death", "is before the date of birth")
    # roster line 1 is the head, and only the head is on line 1
    line = values["roster_line"]
    relation = values["relation_to_head"]
    known = np.not_equal(line, None) & np.not_equal(relation, None)
    is_one = known & np.equal(line, 1)
    is_head = known & np.equal(relation, "head")
    err.add(is_one & ~is_head, "relation_to_head",
            "roster line 1 is the head of the household, so relation_to_head must be head")
    misplaced = is_head & ~is_one
    err.add(misplaced, "relation_to_head",
            _say(misplaced, "is head, but the head must be on roster line 1 (this row is on line ", line, ")"))
    # (household_ref, roster_line) once in the file
    keys = _np(_join(pa.array(ref.tolist(), pa.string()), pc.cast(pa.array(line.tolist(), pa.int64()), pa.string()),
                     sep="\x1f")).astype(object)
    dup, rows = _duplicates(keys, (ref != "") & np.not_equal(line, None), sheet.rows)
    err.add(dup, "roster_line", _say(dup, "roster line ", line, " of this household appears more than once (rows ",
                                     rows, ")"))
    return _Parsed(sheet, err, ref, values)

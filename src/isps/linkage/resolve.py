"""Identity resolution: every beneficiary line is linked to a registry individual and a person.

1. **Exact CNIC** (a join in DuckDB): a valid CNIC held by a registry individual, unless name, sex or
   age clearly disagree (sexes differ, years of birth more than two apart, names with no part in
   common): such a line, usually a typing slip that happens to be someone else's CNIC, is scored
   like a line without a CNIC and its pair with the CNIC's holder is shown for review with the
   reason (``check`` in the explanation), never linked on the CNIC.
2. **Probabilistic linkage** for the rest, with Splink 5 on DuckDB (``link_only``: partner lines
   against the registry). Names are normalised with the transliteration table, then reduced to
   parts without honorifics and "Muhammad", as spelt and as spelling-blind sound keys
   (:mod:`isps.linkage.names`); compared as a whole, as a set of parts (order and titles do not
   matter) and part within part (a middle name on one side only); father's or husband's name the
   same way; date of birth (exact, day and month swapped, same year with a placeholder date of
   1 January or a year alone, same year, within two years); district; phone; sex; CNIC (a near
   miss is a typing slip, a different valid CNIC is strong evidence against). Pairs are found by
   :data:`BLOCKING_RULES` (none on the CNIC). Trained without labels: u by random sampling, m by
   expectation maximisation.
   Every scored pair keeps its field-by-field explanation (each comparison's level and its match
   weight, plus the prior), stored with the candidate.
3. **Thresholds**: the best candidate of a line is linked when its match weight reaches
   ``accept_weight`` and no other candidate comes within ``margin``; a best candidate between
   ``review_weight`` and that goes to the clerical review queue; below, the line stays unlinked.
4. **Persons**: a line linked to a registry individual belongs to that individual's person; an
   unlinked line with a CNIC to the person of that CNIC; any other line to a new person of its
   own. Person ids are allocated once and never change; only lines not yet resolved are touched,
   so resolving again, or after unrelated lines arrive, leaves every existing person id in place.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, UniqueConstraint, text

from isps.linkage import names
from isps.linkage.models import LinkageRun
from isps.registry.bulk import deferred_constraints, insert_arrow
from isps.registry import current
from isps.registry.models import OutboxEvent

RESOLVED = "beneficiary.resolved"  # one event per resolution run; aggregate_id = the linkage run

ACCEPT_WEIGHT = 8.0
REVIEW_WEIGHT = 2.0
MARGIN = 4.0
# The accept weight is meant for a registry of this many people. The prior (about one in the
# registry's size) grows more negative with the registry, but blocking and the margin already make
# the decision per line (the best pair against its rivals): a larger registry's prior is not held
# against the pair (the accept weight is lowered by as much as the prior is below that of 100,000
# people; the weight used is kept in the run's model), a smaller one's still is. bench.linkage,
# profile hard at 1M: recall 0.76 without this (0.95 with it), precision 1.0 (0.9992).
REFERENCE_PEOPLE = 100_000
# EM learns m from a hash sample of this many blocked pairs per training rule (a million lines
# block into several million pairs; a sample of one million estimates the same m probabilities)
EM_MAX_PAIRS = 1_000_000
# A load of at least this many rows into PostgreSQL that at least doubles its table is written the
# way pg_restore does (indexes, unique constraints and foreign keys rebuilt after the COPY, see store())
BULK_MIN_ROWS = 100_000

_IND_SQL = ("SELECT id, household_id, cnic, full_name, father_husband_name, sex, date_of_birth, district_id, phone "
            f"FROM individual WHERE {current.CURRENT}")
_BEN_SQL = ("SELECT id, cnic, full_name, father_husband_name, sex, date_of_birth, district_id, phone "
            "FROM beneficiary WHERE run_id IS NULL")
_SCHEMA = {"id": pa.int64(), "household_id": pa.int64(), "cnic": pa.string(), "full_name": pa.string(),
           "father_husband_name": pa.string(), "sex": pa.string(), "date_of_birth": pa.date32(),
           "district_id": pa.int64(), "phone": pa.string(), "individual_id": pa.int64(), "merged_into": pa.int64()}


@dataclass
class ResolveReport:
    run_id: int
    records: int = 0
    by_cnic: int = 0
    by_splink: int = 0
    to_review: int = 0
    unlinked: int = 0           # no candidate good enough even for review
    new_persons: int = 0        # persons opened for lines that matched no one in the registry
    registry_persons: int = 0   # persons opened for registry people seen on a list for the first time
    cnic_held: int = 0          # exact CNIC whose name, sex or age disagree: not linked on the CNIC
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)

    def summary(self) -> str:
        """What happened to the lines, each counted once: linked (by CNIC or by probabilistic
        match), waiting for review, or with no match found (which is not proof that the person is
        not in the registry)."""
        held = (f" ({self.cnic_held} with a CNIC held back: its name, sex or age disagree)" if self.cnic_held else "")
        return (f"run {self.run_id}: {self.records} lines: {self.by_cnic} linked by CNIC, {self.by_splink} by "
                f"probabilistic match, {self.to_review} waiting for clerical review{held}, {self.unlinked} with no "
                f"match found in the registry; {self.new_persons} new persons for lines not linked to anyone in "
                f"the registry, {self.registry_persons} registry people seen on a list for the first time; "
                f"{self.seconds:.1f} s")


# ---------------------------------------------------------------- reading into Arrow

def read_arrow(conn: Connection, sql: str) -> pa.Table:
    """A query's rows as Arrow: COPY … TO STDOUT on PostgreSQL, the cursor on SQLite."""
    cols = [c.strip().split()[-1] for c in sql.split("FROM")[0].replace("SELECT", "").split(",")]
    schema = pa.schema([(c, _SCHEMA[c]) for c in cols])
    if conn.dialect.name == "postgresql":
        buf = io.BytesIO()
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
                for chunk in copy:
                    buf.write(chunk)
        buf.seek(0)
        if buf.getbuffer().nbytes == 0:
            return schema.empty_table()
        return pacsv.read_csv(buf, read_options=pacsv.ReadOptions(column_names=cols),
                              convert_options=pacsv.ConvertOptions(column_types=schema, strings_can_be_null=True,
                                                                   quoted_strings_can_be_null=False))
    rows = conn.exec_driver_sql(sql).fetchall()
    data = list(zip(*rows)) if rows else [[] for _ in cols]
    arrays = []
    for c, values in zip(cols, data):
        t = _SCHEMA[c]
        if t == pa.date32():
            arrays.append(pc.cast(pa.array(values, pa.string()), pa.timestamp("s")).cast(pa.date32()))
        else:
            arrays.append(pa.array(values, t))
    return pa.table(dict(zip(cols, arrays)))


def features(t: pa.Table) -> pa.Table:
    """The comparison columns Splink sees. Names come three ways: normalised with the variant table
    (``name``), as a set of parts without honorifics and "Muhammad" (``name_set``: order and titles
    do not matter) and as the :func:`isps.linkage.names.sound` keys of those parts (``name_ph``:
    spellings outside the table); ``given_ph`` is the sound of the first part as written. A date of
    birth on 1 January (the registers' placeholder, and what a year alone is read as) is
    ``dob_ph``: compared on the year only."""
    name = names.normalise_array(t["full_name"])
    fh = names.normalise_array(t["father_husband_name"])
    name_set, name_ph, given_ph, name_bits = names.keys_array(name)
    fh_set, fh_ph, fh_key, fh_bits = names.keys_array(fh)
    dob = t["date_of_birth"]
    dob_s = pc.cast(dob, pa.string())  # ISO YYYY-MM-DD (strftime costs 30 times as much)
    year = pc.year(dob)
    month, day = pc.month(dob), pc.day(dob)
    placeholder = pc.fill_null(pc.and_(pc.equal(month, 1), pc.equal(day, 1)), False)
    swapped = pc.if_else(pc.and_(pc.less_equal(day, 12), pc.not_equal(day, month)),
                         pc.binary_join_element_wise(pc.cast(year, pa.string()),
                                                     pc.utf8_lpad(pc.cast(day, pa.string()), 2, "0"),
                                                     pc.utf8_lpad(pc.cast(month, pa.string()), 2, "0"), "-"),
                         pa.scalar(None, pa.string()))
    return pa.table({"unique_id": t["id"], "name": name, "name_set": name_set, "name_ph": name_ph,
                     "given_ph": given_ph, "name_bits": name_bits, "fh": fh, "fh_set": fh_set, "fh_ph": fh_ph,
                     "fh_key": fh_key, "fh_bits": fh_bits,
                     "dob": dob_s, "dob_swapped": swapped, "dob_ph": placeholder, "yob": year,
                     "district_id": t["district_id"], "phone": t["phone"], "sex": t["sex"], "cnic": t["cnic"]})


# ---------------------------------------------------------------- the Splink model

def _lv(sql: str, label: str) -> dict:
    return {"sql_condition": sql, "label_for_charts": label}


def _null(col: str) -> dict:
    return {"sql_condition": f"{col}_l IS NULL OR {col}_r IS NULL", "label_for_charts": "missing",
            "is_null_level": True}


ELSE = _lv("ELSE", "different")


def _with_m(comparison: dict) -> dict:
    """Starting m probabilities (exact levels likely among matches), so that a model trained on
    too few pairs still scores sensibly; EM replaces them when it can."""
    levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
    ms = {2: [0.9, 0.1], 3: [0.85, 0.1, 0.05], 4: [0.7, 0.15, 0.1, 0.05], 5: [0.6, 0.15, 0.1, 0.1, 0.05],
          6: [0.5, 0.2, 0.1, 0.1, 0.05, 0.05], 7: [0.45, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05]}[len(levels)]
    for lv, m in zip(levels, ms):
        lv["m_probability"] = m
    return comparison


def _parts_within(col: str, sig: str) -> str:
    """One side's parts are all among the other's (a middle name or "Ghulam" written on one side
    only). The bit signatures (:func:`isps.linkage.names.bits`) rule out almost every pair before the
    parts are split and compared (a quarter of the time of comparing every pair's parts)."""
    both = f"({sig}_l & {sig}_r)"
    return (f"(({both} = {sig}_l OR {both} = {sig}_r) "
            f"AND (list_has_all(string_split({col}_l, ' '), string_split({col}_r, ' ')) "
            f"OR list_has_all(string_split({col}_r, ' '), string_split({col}_l, ' '))))")


def _share_part(col: str, sig: str) -> str:
    return f"(({sig}_l & {sig}_r) <> 0 AND list_has_any(string_split({col}_l, ' '), string_split({col}_r, ' ')))"


def comparisons() -> list[dict]:
    return [
        {"output_column_name": "name", "comparison_levels": [
            _null("name_ph"),
            _lv("name_l = name_r", "same name"),
            _lv("name_set_l = name_set_r OR name_ph_l = name_ph_r", "same name, other order, title or spelling"),
            _lv(_parts_within("name_ph", "name_bits"), "one name has a part the other lacks"),
            _lv("jaro_winkler_similarity(name_ph_l, name_ph_r) >= 0.88", "name nearly the same"),
            _lv(f"given_ph_l = given_ph_r OR {_share_part('name_ph', 'name_bits')}", "name shares a part"),
            ELSE]},
        {"output_column_name": "father_husband_name", "comparison_levels": [
            _null("fh_ph"),
            _lv("fh_l = fh_r", "same"),
            _lv("fh_set_l = fh_set_r OR fh_ph_l = fh_ph_r", "same, with or without Muhammad or a title"),
            _lv(_parts_within("fh_ph", "fh_bits"), "a middle name on one side only"),
            _lv("jaro_winkler_similarity(fh_ph_l, fh_ph_r) >= 0.88", "nearly the same"),
            _lv(_share_part("fh_ph", "fh_bits"), "shares a name"),
            ELSE]},
        {"output_column_name": "date_of_birth", "comparison_levels": [
            _null("dob"),
            _lv("dob_l = dob_r AND NOT dob_ph_l AND NOT dob_ph_r", "same date"),
            _lv("dob_swapped_l = dob_r", "day and month swapped"),
            _lv("yob_l = yob_r AND (dob_ph_l OR dob_ph_r)", "same year (a date is 1 January or a year only)"),
            _lv("yob_l = yob_r", "same year"),
            _lv("abs(yob_l - yob_r) <= 2", "within two years"),
            ELSE]},
        {"output_column_name": "district", "comparison_levels": [
            _null("district_id"), _lv("district_id_l = district_id_r", "same district"), ELSE]},
        {"output_column_name": "phone", "comparison_levels": [
            _null("phone"), _lv("phone_l = phone_r", "same phone"), ELSE]},
        {"output_column_name": "sex", "comparison_levels": [
            _null("sex"), _lv("sex_l = sex_r", "same sex"), ELSE]},
        {"output_column_name": "cnic", "comparison_levels": [
            _null("cnic"), _lv("cnic_l = cnic_r", "same CNIC"),
            _lv("damerau_levenshtein(cnic_l, cnic_r) <= 1", "CNIC one keystroke apart"), ELSE]},
    ]


# Which pairs are scored at all. Each rule is an equality of keys that a kind of error leaves alone,
# so that a line with any two of (imprecise date of birth, other or misspelt district, a name spelt
# outside the table, a father's name written otherwise, names in another order) still meets its true
# record under one rule:
#   date and district -> name sounds, father's key and year (or, years apart: name and father sounds);
#   date and given name -> district, given and father's keys (years within two);
#   date and father -> district and name sounds (a year apart at most);
#   district and given name -> the date with the given sound, or with the father's key;
#   district and father -> the given sound and date; any two of the names -> district and date.
# A CNIC is never a key: a slip would find the wrong person (the exact CNIC join comes before, and
# checks name, sex and age). Each rule's pairs are counted by `bench.linkage --blocking` (Splink's
# blocking analysis: 8.0 million pairs for a million lines against 1.14 million people, against 13.4
# million before the two rules without a date were bounded by the years); a rule on a name alone, or
# a name and a year, is a block of every namesake of the province and is not used.
_YEARS_CLOSE = "(l.yob IS NULL OR r.yob IS NULL OR abs(l.yob - r.yob) <= 2)"
_YEAR_OFF = "(l.yob IS NULL OR r.yob IS NULL OR abs(l.yob - r.yob) <= 1)"
BLOCKING_RULES = [
    "l.district_id = r.district_id AND l.dob = r.dob",
    "l.district_id = r.district_id AND l.dob_swapped = r.dob",
    # dates of birth not contradicting (decide() never links a pair whose dates disagree outright;
    # scoring the namesakes born years apart was three pairs in five at a million lines)
    f"l.district_id = r.district_id AND l.given_ph = r.given_ph AND l.fh_key = r.fh_key AND {_YEARS_CLOSE}",
    "l.given_ph = r.given_ph AND l.dob = r.dob",
    "l.fh_key = r.fh_key AND l.dob = r.dob AND l.sex = r.sex",
    "l.name_ph = r.name_ph AND l.fh_key = r.fh_key AND l.yob = r.yob",
    f"l.district_id = r.district_id AND l.name_ph = r.name_ph AND {_YEAR_OFF}",
    f"l.name_ph = r.name_ph AND l.fh_ph = r.fh_ph AND {_YEARS_CLOSE}",
    "l.phone = r.phone",
]


def settings(right_rows: int = 1000) -> dict:
    return {
        "link_type": "link_only",
        "probability_two_random_records_match": 1.0 / max(right_rows, 2),
        "unique_id_column_name": "unique_id",
        "comparisons": [_with_m(c) for c in comparisons()],
        "blocking_rules_to_generate_predictions": list(BLOCKING_RULES),
        "retain_intermediate_calculation_columns": True,
        "retain_matching_columns": True,
    }


FIELDS = ("name", "father_husband_name", "date_of_birth", "district", "phone", "sex", "cnic")


def _labels(linker) -> dict[str, dict[int, str]]:
    out = {}
    for comp in linker._settings_obj.comparisons:
        out[comp.output_column_name] = {lvl.comparison_vector_value: lvl.label_for_charts
                                        for lvl in comp.comparison_levels}
    return out


def _pairs_of(con, pred) -> pa.Table:
    cols = ["unique_id_l", "unique_id_r", "match_weight", "match_probability"]
    have = {r[0] for r in con.sql(f"DESCRIBE {pred.physical_name}").fetchall()}
    cols += [c if c in have else f"NULL::DOUBLE AS {c}" for c in
             [f"gamma_{f}" for f in FIELDS] + [f"mw_{f}" for f in FIELDS]]
    pairs = con.sql(f"SELECT {', '.join(cols)} FROM {pred.physical_name}").to_arrow_table()
    return pairs.read_all() if hasattr(pairs, "read_all") else pairs


def score(lf: pa.Table, rf: pa.Table, review_weight: float,
          held: tuple[pa.Table, pa.Table] | None = None) -> tuple[pa.Table, pa.Table | None, dict, dict]:
    """Train (no labels) and score partner lines (``lf``, :func:`features`) against registry
    individuals (``rf``). Returns the pairs at or above ``review_weight`` with match weight,
    probability and each field's level and weight; the pairs ``held`` (lines and the registry
    people holding their CNIC whose name, sex or age disagree), scored with the trained model
    whatever their weight; the level labels; the trained parameters."""
    from splink import DuckDBAPI, Linker, block_on

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    db = DuckDBAPI(con)
    left_df = db.register(lf, dataset_display_name="partner")
    right_df = db.register(rf, dataset_display_name="registry")
    linker = Linker([left_df, right_df], settings(rf.num_rows), log_level=logging.ERROR)
    try:
        linker.training.estimate_probability_two_random_records_match(
            ["l.name = r.name AND l.dob = r.dob AND l.district_id = r.district_id"], recall=0.6)
    except (ValueError, ZeroDivisionError):
        pass  # no exact matches at all (a list of people the registry does not hold): keep the prior
    p = linker._settings_obj._probability_two_random_records_match
    if not p or p <= 0 or p >= 1:
        linker._settings_obj._probability_two_random_records_match = 1.0 / max(rf.num_rows, 2)
    linker.training.estimate_u_using_random_sampling(max_pairs=min(1e6, max(1e5, lf.num_rows * 20.0)), seed=1)
    for rule in (block_on("district_id", "dob"), block_on("district_id", "given_ph", "fh_key")):
        # a training session sets aside the comparisons its rule blocks on and puts them back at the
        # end; one that fails (too few pairs, a level no pair reaches) must not leave them out
        kept = copy.deepcopy(linker._settings_obj.comparisons)
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True, max_pairs=EM_MAX_PAIRS)
        except Exception:  # noqa: BLE001 - too few pairs to train on: keep the starting m values
            linker._settings_obj.comparisons = kept
            logging.getLogger(__name__).info("EM did not run (too few pairs); starting m values kept")
    pred = linker.inference.predict(threshold_match_weight=review_weight, warning_mode="never")
    pairs = _pairs_of(con, pred)
    labels = _labels(linker)
    model = {"probability_two_random_records_match":
             linker._settings_obj._probability_two_random_records_match,
             "comparisons": {c.output_column_name: [
                 {"level": lvl.label_for_charts, "m": lvl.m_probability, "u": lvl.u_probability}
                 for lvl in c.comparison_levels if not lvl.is_null_level] for c in linker._settings_obj.comparisons}}
    held_pairs = None
    if held is not None and held[0].num_rows:
        # the same trained model, blocked on the CNIC alone, over just these lines and holders
        trained = copy.deepcopy(linker.misc.save_model_to_json())
        trained["blocking_rules_to_generate_predictions"] = ["l.cnic = r.cnic"]
        # (Splink puts the dataset whose name sorts first on the left: "partner…" before "registry…")
        side = Linker([db.register(held[0], dataset_display_name="partner_held"),
                       db.register(held[1], dataset_display_name="registry_holders")], trained, log_level=logging.ERROR)
        held_pairs = _pairs_of(con, side.inference.predict(warning_mode="never"))

    # the connection is left to the garbage collector: Arrow results may still share its buffers
    return pairs, held_pairs, labels, model


def explain(row: dict, labels: dict, prior_weight: float) -> list[dict]:
    """Field-by-field: the comparison level and its match weight (log2 of the Bayes factor)."""
    out = [{"field": "prior", "level": "two random records", "weight": round(prior_weight, 2)}]
    for f in FIELDS:
        mw = row[f"mw_{f}"]
        g = row[f"gamma_{f}"]
        out.append({"field": f, "level": labels[f].get(int(g), str(g)) if g is not None else "not scored",
                    "weight": round(float(mw), 2) if mw is not None else 0.0})
    return out


def explain_column(cand: pa.Table, labels: dict, prior_weight: float) -> pa.Array:
    """:func:`explain` for a whole table of pairs as JSON text, with Arrow string kernels (no Python
    loop over the rows)."""
    parts = [f'[{{"field": "prior", "level": "two random records", "weight": {round(prior_weight, 2)}}}']
    for f in FIELDS:
        g = pc.cast(cand[f"gamma_{f}"], pa.int64())
        known = labels.get(f, {})
        top = max(known) + 2 if known else 2
        lut = pa.array([known.get(i - 1, str(i - 1)) for i in range(top)], pa.string())
        label = pc.fill_null(pc.take(lut, pc.add(g, 1)), "not scored")
        mw = pc.fill_null(pc.round(pc.max_element_wise(pc.min_element_wise(
            pc.cast(cand[f"mw_{f}"], pa.float64()), 60.0), -60.0), 2), 0.0)
        parts += [f', {{"field": "{f}", "level": "', label, '", "weight": ', pc.cast(mw, pa.string()), "}"]
    if "veto" in cand.column_names:  # why an exact CNIC was not enough (letters, digits and spaces only)
        veto = cand["veto"]
        parts.append(pc.if_else(pc.is_null(veto), pa.scalar("]"), pc.binary_join_element_wise(
            ', {"field": "check", "level": "', veto, '", "weight": 0.0}]', "")))
    else:
        parts.append("]")
    n = cand.num_rows
    arrays = [p if isinstance(p, (pa.Array, pa.ChunkedArray)) else pa.array([p] * n, pa.string()) for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


# A pair whose dates of birth disagree outright (not swapped, not within two years) is never linked
# without a person looking at it, however well the names agree: namesakes with the same father's
# name in one district are common, and a wrong merge costs someone their benefit.
_NO_CONTRADICTION = "coalesce(gamma_date_of_birth, -1) <> 0"


def decide(pairs: pa.Table, accept_weight: float, review_weight: float, margin: float) -> tuple[pa.Table, pa.Table]:
    """Per partner line: its best candidate, linked or sent to review. Returns (links, reviews).
    A pair with a ``veto`` (an exact CNIC whose name, sex or age disagree) is never linked and
    always shown for review when its line is not linked to someone else."""
    if pairs.num_rows == 0:
        return pairs, pairs
    if "veto" not in pairs.column_names:
        pairs = pairs.append_column("veto", pa.nulls(pairs.num_rows, pa.string()))
    con = duckdb.connect()
    con.register("pairs", pairs)
    order = "PARTITION BY unique_id_l ORDER BY match_weight DESC, unique_id_r"
    ranked = (f"SELECT *, row_number() OVER ({order}) AS rk, lead(match_weight) OVER ({order}) AS second "
              "FROM pairs WHERE veto IS NULL")
    linked = (f"SELECT * FROM ({ranked}) WHERE rk = 1 AND match_weight >= {accept_weight} "
              f"AND (second IS NULL OR match_weight - second >= {margin}) AND {_NO_CONTRADICTION}")
    con.execute(f"CREATE TABLE linked AS {linked}")
    links = con.sql("SELECT * EXCLUDE (rk, second) FROM linked").to_arrow_table()
    reviews = con.sql(f"SELECT * FROM (SELECT *, row_number() OVER ({order}) AS rk FROM pairs) "
                      f"WHERE (rk <= 3 AND match_weight >= {review_weight} OR veto IS NOT NULL) "
                      "AND unique_id_l NOT IN (SELECT unique_id_l FROM linked)").to_arrow_table()
    links = links.read_all() if hasattr(links, "read_all") else links
    reviews = reviews.read_all() if hasattr(reviews, "read_all") else reviews
    # the connection is left to the garbage collector: Arrow results may still share its buffers
    return links, reviews


# ---------------------------------------------------------------- writing back

def _stage(conn: Connection, name: str, table: pa.Table, ddl: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({ddl})")
    insert_arrow(conn, name, table)


def store(conn: Connection, table: str, data: pa.Table) -> None:
    """Append rows to a linkage table (:func:`insert_arrow`). A large load into PostgreSQL (at least
    :data:`BULK_MIN_ROWS` rows, and no fewer than the table already holds) is written the way
    pg_restore does: the table's secondary indexes, unique constraints and foreign keys are dropped,
    the rows COPYed, then the indexes and unique constraints rebuilt (each one sort, which also
    checks uniqueness) and the foreign keys validated in one pass
    (:func:`isps.registry.bulk.deferred_constraints`): a third of the time of maintaining them row
    by row. Any violation fails the transaction as it would have row by row. The table is locked
    against readers until the transaction ends (seconds for a million lines); a smaller load, or
    one into a large table, is written row by row as usual."""
    if conn.dialect.name == "postgresql" and data.num_rows >= BULK_MIN_ROWS:
        held = conn.exec_driver_sql(
            f"SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = '{table}'::regclass").scalar_one()
        if data.num_rows >= held:
            from isps.db import Base

            uniques = [c for c in Base.metadata.tables[table].constraints if isinstance(c, UniqueConstraint)]
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
            with deferred_constraints(conn, [table]):
                for uq in uniques:
                    conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{uq.name}"')
                insert_arrow(conn, table, data)
                for uq in uniques:
                    cols = ", ".join(c.name for c in uq.columns)
                    conn.exec_driver_sql(f'ALTER TABLE {table} ADD CONSTRAINT "{uq.name}" UNIQUE ({cols})')
            return
    insert_arrow(conn, table, data)


def reserve_ids(conn: Connection, table: str, n: int) -> int:
    """Reserve ``n`` ids of an auto-increment table and return the last id in use before them.
    PostgreSQL: the table is locked against other writers for the transaction and its sequence is
    moved past the block; SQLite: the transaction already holds the database's write lock."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
        base = conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one()
        seq = conn.exec_driver_sql(f"SELECT pg_get_serial_sequence('{table}', 'id')").scalar_one()
        if n:
            conn.exec_driver_sql(f"SELECT setval('{seq}', {base + n})")
        return int(base)
    return int(conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one())


@dataclass
class Resolution:
    lines: pa.Table       # id, individual_id, household_id, link_method, match_weight, person_id
    persons: pa.Table     # new persons: id, individual_id, cnic, origin_beneficiary_id
    candidates: pa.Table  # match_candidate rows


def _arrow(rel) -> pa.Table:
    return rel.to_arrow_table()


def compute(conn: Connection, left: pa.Table, run_id: int, rep: ResolveReport, *, accept_weight: float,
            review_weight: float, margin: float, t0: float) -> Resolution:
    """Resolve lines held in memory (``left``: id, cnic, names, sex, date_of_birth, district_id, phone)
    against the registry: every decision in DuckDB, nothing written yet."""
    right = read_arrow(conn, _IND_SQL)
    known = read_arrow(conn, "SELECT id, individual_id, cnic, merged_into FROM person "
                             "WHERE individual_id IS NOT NULL OR cnic IS NOT NULL")
    rep.timings["read"] = round(time.perf_counter() - t0, 2)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.register("lines", left.select(["id", "cnic"]))
    con.register("reg", right.select(["id", "household_id", "cnic"]))
    con.register("known", known)
    lf, rf = features(left), features(right)
    con.register("lf", lf.select(["unique_id", "sex", "yob", "name", "name_set", "name_ph"]))
    con.register("rf", rf.select(["unique_id", "sex", "yob", "name", "name_set", "name_ph"]))
    # an exact CNIC links only when name, sex and age do not clearly disagree: a slip that happens
    # to be another person's CNIC (a woman born 2012 on the CNIC of one born 1998) is held back,
    # scored like a line without a CNIC, and shown for review with the reason
    con.execute(
        "CREATE TABLE cnic_hits AS SELECT l.id, m.individual_id, m.household_id, nullif(concat_ws('; ', "
        " CASE WHEN a.sex <> b.sex THEN 'sex differs (' || a.sex || ' on the list, ' || b.sex || ' in the registry)' END, "
        " CASE WHEN abs(a.yob - b.yob) > 2 THEN 'born ' || a.yob || ' on the list, ' || b.yob || ' in the registry' END, "
        " CASE WHEN NOT list_has_any(string_split(a.name_ph, ' '), string_split(b.name_ph, ' ')) "
        "      AND jaro_winkler_similarity(a.name_set, b.name_set) < 0.75 "
        "      THEN 'names share no part (' || a.name || ' on the list, ' || b.name || ' in the registry)' END), '') AS veto "
        "FROM lines l JOIN (SELECT cnic, min(id) AS individual_id, arg_min(household_id, id) AS household_id FROM reg "
        " WHERE cnic IS NOT NULL GROUP BY cnic) m ON m.cnic = l.cnic "
        "JOIN lf a ON a.unique_id = l.id JOIN rf b ON b.unique_id = m.individual_id")
    con.execute("CREATE TABLE by_cnic AS SELECT id, individual_id, household_id FROM cnic_hits WHERE veto IS NULL")
    con.execute("CREATE TABLE held AS SELECT id, individual_id, 'same CNIC, but ' || veto AS veto FROM cnic_hits "
                "WHERE veto IS NOT NULL")
    rep.by_cnic = con.execute("SELECT count(*) FROM by_cnic").fetchall()[0][0]
    rep.cnic_held = con.execute("SELECT count(*) FROM held").fetchall()[0][0]
    rep.timings["cnic"] = round(time.perf_counter() - t0, 2)
    rest = pc.invert(pc.is_in(lf["unique_id"], _arrow(con.sql("SELECT id FROM by_cnic"))["id"]))
    lf_rest = lf.filter(rest)
    empty = pa.table({"unique_id_l": pa.array([], pa.int64()), "unique_id_r": pa.array([], pa.int64()),
                      "match_weight": pa.array([], pa.float64()), "match_probability": pa.array([], pa.float64())})
    links = reviews = empty
    cand_table = None
    if lf_rest.num_rows and right.num_rows:
        held = _arrow(con.sql("SELECT * FROM held"))
        held_sides = None
        if held.num_rows:
            held_sides = (lf.filter(pc.is_in(lf["unique_id"], held["id"])),
                          rf.filter(pc.is_in(rf["unique_id"], held["individual_id"])))
        pairs, held_pairs, labels, model = score(lf_rest, rf, review_weight, held_sides)
        rep.model = model
        rep.timings["splink"] = round(time.perf_counter() - t0, 2)
        pairs = pairs.append_column("veto", pa.nulls(pairs.num_rows, pa.string()))
        if held_pairs is not None and held_pairs.num_rows:
            con.register("main_pairs", pairs)
            con.register("held_pairs", held_pairs)
            pairs = _arrow(con.sql(
                "SELECT p.* FROM main_pairs p ANTI JOIN held h ON h.id = p.unique_id_l AND h.individual_id = p.unique_id_r "
                "UNION ALL SELECT q.*, h.veto FROM held_pairs q JOIN held h "
                "ON h.id = q.unique_id_l AND h.individual_id = q.unique_id_r"))
        p = model["probability_two_random_records_match"]
        prior = math.log2(p / (1 - p))
        reference = math.log2(1 / (REFERENCE_PEOPLE - 1))
        accept_used = accept_weight - max(0.0, reference - prior)
        rep.model["accept_weight_used"] = round(accept_used, 2)
        links, reviews = decide(pairs, accept_used, review_weight, margin)
        parts = [t.select(pairs.column_names).append_column("status", pa.array([s] * t.num_rows, pa.string()))
                 for t, s in ((links, "linked"), (reviews, "review")) if t.num_rows]
        if parts:
            cand = pa.concat_tables(parts).combine_chunks().sort_by(
                [("unique_id_l", "ascending"), ("match_weight", "descending")])
            expl = explain_column(cand, labels, prior)
            cand_table = pa.table({
                "beneficiary_id": cand["unique_id_l"].cast(pa.int64()),
                "individual_id": cand["unique_id_r"].cast(pa.int64()),
                "match_weight": cand["match_weight"].cast(pa.float64()),
                "match_probability": cand["match_probability"].cast(pa.float64()),
                "explanation": expl, "status": cand["status"],
                "run_id": pa.array(np.full(cand.num_rows, run_id, dtype=np.int64))})
    rep.timings["decide"] = round(time.perf_counter() - t0, 2)
    con.register("links", links.select(["unique_id_l", "unique_id_r", "match_weight"]))
    con.register("reviews", reviews.select(["unique_id_l"]))
    con.execute(
        "CREATE TABLE res AS SELECT l.id, l.cnic, "
        " coalesce(c.individual_id, k.unique_id_r::BIGINT) AS individual_id, "
        " coalesce(c.household_id, r.household_id) AS household_id, "
        " CASE WHEN c.id IS NOT NULL THEN 'cnic' WHEN k.unique_id_l IS NOT NULL THEN 'splink' "
        "      WHEN l.id IN (SELECT unique_id_l FROM reviews) THEN 'review' ELSE 'none' END AS link_method, "
        " k.match_weight::DOUBLE AS match_weight "
        "FROM lines l LEFT JOIN by_cnic c ON c.id = l.id "
        "LEFT JOIN links k ON k.unique_id_l = l.id LEFT JOIN reg r ON r.id = k.unique_id_r")
    rep.by_splink = con.execute("SELECT count(*) FROM res WHERE link_method = 'splink'").fetchall()[0][0]
    rep.to_review = con.execute("SELECT count(*) FROM res WHERE link_method = 'review'").fetchall()[0][0]
    rep.unlinked = con.execute("SELECT count(*) FROM res WHERE link_method = 'none'").fetchall()[0][0]
    # persons: the registry individual's, else the CNIC's, else a new one of the line's own
    con.execute("CREATE TABLE pi AS SELECT individual_id, coalesce(merged_into, id) AS pid FROM known "
                "WHERE individual_id IS NOT NULL")
    con.execute("CREATE TABLE pcn AS SELECT cnic, min(coalesce(merged_into, id)) AS pid FROM known "
                "WHERE individual_id IS NULL AND cnic IS NOT NULL GROUP BY cnic")
    con.execute(
        "CREATE TABLE fresh AS "
        "SELECT individual_id, NULL::VARCHAR AS cnic, NULL::BIGINT AS origin_beneficiary_id FROM "
        " (SELECT DISTINCT individual_id FROM res WHERE individual_id IS NOT NULL "
        "  AND individual_id NOT IN (SELECT individual_id FROM pi)) "
        "UNION ALL SELECT NULL, cnic, NULL FROM (SELECT DISTINCT cnic FROM res WHERE individual_id IS NULL "
        "  AND cnic IS NOT NULL AND cnic NOT IN (SELECT cnic FROM pcn)) "
        "UNION ALL SELECT NULL, NULL, id FROM res WHERE individual_id IS NULL AND cnic IS NULL")
    n_new = con.execute("SELECT count(*) FROM fresh").fetchall()[0][0]
    base = reserve_ids(conn, "person", n_new)
    # numbered in key order, so that the person table's unique indexes are filled in order
    con.execute(f"CREATE TABLE newp AS SELECT {base} + row_number() OVER "
                "(ORDER BY individual_id NULLS LAST, cnic NULLS LAST, origin_beneficiary_id) AS id, * FROM fresh")
    rep.new_persons = con.execute("SELECT count(*) FROM newp WHERE individual_id IS NULL").fetchall()[0][0]
    rep.registry_persons = n_new - rep.new_persons
    lines = _arrow(con.sql(
        "SELECT r.id, r.individual_id, r.household_id, r.link_method, r.match_weight, "
        " coalesce(pi.pid, ni.id, pcn.pid, nc.id, no.id) AS person_id "
        "FROM res r LEFT JOIN pi ON pi.individual_id = r.individual_id "
        "LEFT JOIN newp ni ON ni.individual_id = r.individual_id "
        "LEFT JOIN pcn ON r.individual_id IS NULL AND pcn.cnic = r.cnic "
        "LEFT JOIN newp nc ON r.individual_id IS NULL AND nc.cnic = r.cnic "
        "LEFT JOIN newp no ON no.origin_beneficiary_id = r.id ORDER BY r.id"))
    persons = _arrow(con.sql("SELECT id, individual_id, cnic, origin_beneficiary_id FROM newp ORDER BY id"))
    if cand_table is None:
        cand_table = pa.table({"beneficiary_id": pa.array([], pa.int64())})
    rep.timings["persons"] = round(time.perf_counter() - t0, 2)
    return Resolution(lines, persons, cand_table)


def write_persons_and_candidates(conn: Connection, res: Resolution) -> None:
    store(conn, "person", res.persons)
    if res.candidates.num_rows:
        store(conn, "match_candidate", res.candidates)


def _finish(conn: Connection, rep: ResolveReport, t0: float) -> None:
    rep.seconds = round(time.perf_counter() - t0, 2)
    rep.timings["total"] = rep.seconds
    conn.execute(LinkageRun.__table__.update().where(LinkageRun.id == rep.run_id).values(
        seconds=rep.seconds, records=rep.records, model=rep.model or None,
        counts={"by_cnic": rep.by_cnic, "by_splink": rep.by_splink, "to_review": rep.to_review,
                "unlinked": rep.unlinked, "new_persons": rep.new_persons, "registry_persons": rep.registry_persons,
                "cnic_held": rep.cnic_held, "timings": rep.timings}))
    # programs above act on the lines this run resolved (a later list revealing a duplicate benefit)
    conn.execute(OutboxEvent.__table__.insert().values(topic=RESOLVED, aggregate="linkage_run",
                                                       aggregate_id=rep.run_id, payload={"records": rep.records}))


def start_run(conn: Connection, actor: str) -> ResolveReport:
    run_id = conn.execute(LinkageRun.__table__.insert().values(actor=actor, records=0)
                          .returning(LinkageRun.id)).scalar_one()
    return ResolveReport(run_id)


def resolve_new_lines(conn: Connection, left: pa.Table, *, actor: str, accept_weight: float = ACCEPT_WEIGHT,
                      review_weight: float = REVIEW_WEIGHT, margin: float = MARGIN) -> tuple[Resolution, ResolveReport]:
    """Resolve lines before they are stored (ingestion with ``resolve=True``): the caller inserts
    the lines with the returned resolution columns; persons and candidates are written here."""
    t0 = time.perf_counter()
    rep = start_run(conn, actor)
    rep.records = left.num_rows
    res = compute(conn, left, rep.run_id, rep, accept_weight=accept_weight, review_weight=review_weight,
                  margin=margin, t0=t0)
    write_persons_and_candidates(conn, res)
    rep.timings["written"] = round(time.perf_counter() - t0, 2)
    _finish(conn, rep, t0)
    return res, rep


def resolve(engine: Engine, *, actor: str, accept_weight: float = ACCEPT_WEIGHT, review_weight: float = REVIEW_WEIGHT,
            margin: float = MARGIN) -> ResolveReport:
    """Resolve every stored beneficiary line not yet resolved; one transaction, one UPDATE."""
    t0 = time.perf_counter()
    with engine.begin() as conn:
        rep = start_run(conn, actor)
        left = read_arrow(conn, _BEN_SQL)
        rep.records = left.num_rows
        if left.num_rows:
            res = compute(conn, left, rep.run_id, rep, accept_weight=accept_weight, review_weight=review_weight,
                          margin=margin, t0=t0)
            write_persons_and_candidates(conn, res)
            _stage(conn, "sbr_resolution", res.lines.append_column(
                "run_id", pa.array(np.full(res.lines.num_rows, rep.run_id, dtype=np.int64))),
                "id BIGINT, individual_id BIGINT, household_id BIGINT, link_method VARCHAR(10), "
                "match_weight FLOAT, person_id BIGINT, run_id BIGINT")
            conn.exec_driver_sql(
                "UPDATE beneficiary SET individual_id = s.individual_id, household_id = s.household_id, "
                "link_method = s.link_method, match_weight = s.match_weight, person_id = s.person_id, "
                "run_id = s.run_id FROM sbr_resolution s WHERE beneficiary.id = s.id")
            conn.exec_driver_sql("DROP TABLE sbr_resolution")
        _finish(conn, rep, t0)
    return rep

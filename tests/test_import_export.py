"""Import and export of households and members for partner departments, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import shutil
import uuid
from datetime import date
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from isps.db import make_engine, transaction
from isps.migrate import upgrade
from isps.registry import events, transfer
from isps.registry.models import Household, IngestBatch, Individual, OutboxEvent, ValueChange
from isps.registry.transfer import TransferError, export_households, import_households

DATA = Path(__file__).parent / "data"
GOOD_HH, GOOD_MEM = DATA / "partner_households.csv", DATA / "partner_members.csv"
BAD_HH, BAD_MEM = DATA / "malformed_households.csv", DATA / "malformed_members.csv"


# ---------------------------------------------------------------- helpers

@pytest.fixture
def empty_engine(engine, request, tmp_path):
    """A second empty registry on the same backend as ``engine``."""
    if engine.dialect.name == "sqlite":
        other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    else:
        from tests.conftest import _fresh_pg_schema

        other = _fresh_pg_schema(request.getfixturevalue("pg_database"), "o_" + uuid.uuid4().hex[:8])
    upgrade(other)
    yield other
    other.dispose()


def _counts(engine) -> dict[str, int]:
    with transaction(engine) as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Household, Individual, ValueChange, OutboxEvent, IngestBatch)}


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_csv(path: Path, rows: list[dict], columns=None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def _copy_pair(tmp_path: Path, hh: Path = GOOD_HH, mem: Path = GOOD_MEM) -> tuple[Path, Path]:
    return Path(shutil.copy(hh, tmp_path / hh.name)), Path(shutil.copy(mem, tmp_path / mem.name))


def _household(engine, ref: str) -> Household:
    with transaction(engine) as s:
        return s.scalars(select(Household).where(Household.ref == ref)).one()


def _members(engine, ref: str) -> list[Individual]:
    with transaction(engine) as s:
        hh = s.scalars(select(Household).where(Household.ref == ref)).one()
        return list(s.scalars(select(Individual).where(Individual.household_id == hh.id)
                              .order_by(Individual.roster_line)))


def _snapshot(engine) -> tuple[list, list]:
    """Every stored household and member value, for "nothing changed" checks."""
    hh_cols = [c for c in Household.__table__.columns]
    ind_cols = [c for c in Individual.__table__.columns]
    with engine.connect() as conn:
        return (conn.execute(select(*hh_cols).order_by(Household.id)).all(),
                conn.execute(select(*ind_cols).order_by(Individual.id)).all())


def _export_tables(engine, tmp_path: Path, name: str) -> tuple[pa.Table, pa.Table]:
    report = export_households(engine, tmp_path / f"{name}.parquet")
    return pq.read_table(report.paths[0]), pq.read_table(report.paths[1])


def _csv_pair_to_xlsx(hh: Path, mem: Path, out: Path) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, path in (("households", hh), ("members", mem)):
        ws = wb.create_sheet(name)
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                ws.append([v if v != "" else None for v in row])
    wb.save(out)
    return out


# ---------------------------------------------------------------- a good file

def test_a_good_csv_pair_imports(engine):
    report = import_households(engine, GOOD_HH, GOOD_MEM, actor="pspa_officer", source="partner",
                               effective_date=date(2026, 3, 1))
    assert report.ok, report.lines()
    assert (report.households.rows, report.households.inserted, report.households.rejected) == (4, 4, 0)
    assert (report.members.rows, report.members.inserted, report.members.rejected) == (10, 10, 0)
    assert report.batch_id is not None

    hh = _household(engine, "HH-0001")
    assert (hh.district_id, hh.tehsil_id, hh.uc_id) == (2, 6, 601)  # Kasur, tehsil Kasur, UC-1 Kasur
    assert hh.id // 10**10 == 2 and hh.batch_id == report.batch_id
    assert (hh.surveyed_on, hh.verified_on, hh.television, hh.fridge, hh.rooms) == (
        date(2026, 3, 1), date(2026, 3, 1), True, False, 2)
    assert _household(engine, "HH-0004").uc_id == 11202  # "2" in tehsil Depalpur is UC-2 Depalpur
    people = _members(engine, "HH-0001")
    assert [(p.roster_line, p.relation_to_head, p.cnic, p.id_document) for p in people] == [
        (1, "head", "3510212345671", "cnic"), (2, "spouse", "3510276543212", "cnic"), (3, "son", None, None)]
    assert all(p.id // 10**11 == 2 and p.member_since == date(2026, 3, 1) for p in people)
    assert people[0].phone == "03001234567" and people[2].enrolled_in_school is True
    bilal = _members(engine, "HH-0003")[3]
    assert (bilal.sex, bilal.id_document) == ("transgender", "bform")

    with transaction(engine) as s:
        batch = s.get(IngestBatch, report.batch_id)
        assert (batch.source, batch.actor, batch.effective_date) == ("partner", "pspa_officer", date(2026, 3, 1))
        assert batch.reference == "partner_households.csv + partner_members.csv"
        assert batch.summary["households"]["inserted"] == 4
        created = s.scalars(select(OutboxEvent).where(OutboxEvent.topic == events.HOUSEHOLD_CREATED)).all()
        assert len(created) == 4 and created[0].payload["batch_id"] == report.batch_id
        assert s.scalar(select(func.count()).select_from(ValueChange)) == 0


def test_members_file_is_found_beside_the_households_file(engine, tmp_path):
    hh, _ = _copy_pair(tmp_path)
    hh = hh.rename(tmp_path / "kasur_households.csv")
    (tmp_path / "partner_members.csv").rename(tmp_path / "kasur_members.csv")
    report = import_households(engine, hh, actor="t")
    assert report.members.inserted == 10 and report.reference == "kasur_households.csv + kasur_members.csv"


# ---------------------------------------------------------------- bad rows

EXPECTED_BAD = [
    ("households", 3, "HH-0102", "district", "'Karachi' is not a district of Punjab"),
    ("households", 4, "HH-0103", "tehsil", "'Model Town' is not a tehsil of district Kasur"),
    ("households", 5, "HH-0104", "roof", "must be one of rcc, iron_sheet, wood_bamboo, mud_thatch"),
    ("households", 5, "HH-0104", "rooms", "must be a number"),
    ("households", 6, "HH-0105", "household_ref", "appears more than once in the file (rows 6, 7)"),
    ("households", 7, "HH-0105", "household_ref", "appears more than once in the file (rows 6, 7)"),
    ("households", 8, "HH-0106", "members", "its head (members row 7) was rejected, so the household is rejected"),
    ("households", 9, "HH-0107", "members",
     "has no member on roster line 1 (the head), so the household is rejected"),
    ("households", 10, "HH-0108", "land_acres", "must be a number from 0 to 10000"),
    ("members", 4, "HH-0102", "household_ref",
     "household rejected: its row in the households sheet (row 3) has errors"),
    ("members", 5, "HH-0104", "household_ref",
     "household rejected: its row in the households sheet (row 5) has errors"),
    ("members", 6, "HH-0105", "household_ref",
     "household rejected: its row in the households sheet (row 6) has errors"),
    ("members", 7, "HH-0106", "cnic", "CNIC 35301-*****16-2 ends in 2, but a male holder's CNIC ends in an odd digit"),
    ("members", 8, "HH-0106", "household_ref", "household rejected: it has no valid head on roster line 1"),
    ("members", 10, "HH-0109", "date_of_birth", "is in the future"),
    ("members", 11, "HH-0109", "roster_line", "roster line 3 of this household appears more than once (rows 11, 12)"),
    ("members", 11, "HH-0109", "cnic", "CNIC '352*****11' must have 13 digits written NNNNN-NNNNNNN-N; it has 10"),
    ("members", 12, "HH-0109", "roster_line", "roster line 3 of this household appears more than once (rows 11, 12)"),
    ("members", 13, "HH-0109", "relation_to_head",
     "is head, but the head must be on roster line 1 (this row is on line 4)"),
    ("members", 14, "HH-9999", "household_ref", "is neither in the households sheet nor in the registry"),
    ("members", 15, "HH-0109", "sex", "must be one of male, female, transgender"),
    ("members", 15, "HH-0109", "enrolled_in_school", "must be yes or no"),
]


def test_a_malformed_file_loads_its_valid_rows_and_reports_every_bad_row(engine, tmp_path):
    report = import_households(engine, BAD_HH, BAD_MEM, actor="t")
    got = [(e.sheet, e.row, e.household_ref, e.field, e.reason) for e in report.errors]
    assert got == EXPECTED_BAD
    assert (report.households.rows, report.households.inserted, report.households.rejected) == (10, 2, 8)
    assert (report.members.rows, report.members.inserted, report.members.rejected) == (15, 4, 11)
    with transaction(engine) as s:
        assert sorted(s.scalars(select(Household.ref))) == ["HH-0101", "HH-0109"]
    assert [p.full_name for p in _members(engine, "HH-0101")] == ["Sajjad Hussain", "Parveen Akhtar", "Ahmad Sajjad"]
    assert [p.full_name for p in _members(engine, "HH-0109")] == ["Naveed Anjum"]

    # the printed form, the rows for a table, and the rejected-rows file
    assert str(report.errors[12]) == ("members row 7 (household HH-0106): cnic: CNIC 35301-*****16-2 ends in 2, "
                                      "but a male holder's CNIC ends in an odd digit")
    assert report.to_rows()[0] == {"sheet": "households", "row": 3, "household_ref": "HH-0102",
                                   "field": "district", "reason": "'Karachi' is not a district of Punjab"}
    assert "8 rejected" in report.summary() and "11 rejected" in report.summary()
    out = report.write_csv(tmp_path / "rejected.csv")
    rows = _read_csv(out)
    assert len(rows) == len(EXPECTED_BAD) and rows[0]["field"] == "district"
    text = out.read_text()
    for raw in ("3530111111162", "35301-1111116-2", "3520211111"):
        assert raw not in text  # CNICs are masked in every message


def test_row_numbers_follow_the_file_kind(engine, tmp_path):
    """Excel rows are the sheet's row numbers (header row 1); Parquet rows are 1-based indexes."""
    book = _csv_pair_to_xlsx(BAD_HH, BAD_MEM, tmp_path / "bad.xlsx")
    report = import_households(engine, book, actor="t")
    assert [(e.sheet, e.row, e.field) for e in report.errors] == [(s, r, f) for s, r, _, f, _ in EXPECTED_BAD]

    hh, mem = tmp_path / "bad_households.parquet", tmp_path / "bad_members.parquet"
    pq.write_table(pacsv.read_csv(BAD_HH, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)), hh)
    pq.write_table(pacsv.read_csv(BAD_MEM, convert_options=pacsv.ConvertOptions(
        column_types={"cnic": pa.string(), "phone": pa.string(), "date_of_death": pa.string(),
                      "id_document": pa.string()})), mem)
    report = import_households(engine, hh, mem, actor="t")  # typed columns (ints, floats, dates) are read too
    assert [(e.sheet, e.row, e.field) for e in report.errors] == [(s, r - 1, f) for s, r, _, f, _ in EXPECTED_BAD]
    assert report.errors[4].reason == "appears more than once in the file (rows 5, 6)"
    assert report.errors[8].reason == "must be a number from 0 to 10000"


def test_a_failed_row_leaves_stored_data_unchanged(engine, tmp_path):
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t", effective_date=date(2026, 1, 1))
    before = _snapshot(engine)
    hh_rows = _read_csv(GOOD_HH)
    mem_rows = _read_csv(GOOD_MEM)
    hh_rows[0]["rooms"] = "5"          # a valid change ...
    hh_rows[0]["toilet"] = "golden"    # ... on a row that is invalid: neither lands
    mem_rows[3]["education"] = "matric"   # a valid change on a member row ...
    mem_rows[3]["cnic"] = "35102-2345678-5"  # ... whose CNIC ends odd for a woman: the row is rejected
    hh_file = _write_csv(tmp_path / "hh.csv", hh_rows)
    mem_file = _write_csv(tmp_path / "mem.csv", mem_rows)
    report = import_households(engine, hh_file, mem_file, actor="t", effective_date=date(2026, 5, 1))
    assert [(e.sheet, e.row, e.field) for e in report.errors] == [
        ("households", 2, "toilet"),
        ("members", 2, "household_ref"), ("members", 3, "household_ref"), ("members", 4, "household_ref"),
        ("members", 5, "cnic")]
    assert report.errors[1].reason == "household rejected: its row in the households sheet (row 2) has errors"
    assert report.households.unchanged == 3 and report.members.unchanged == 6
    assert _snapshot(engine) == before
    assert _counts(engine)["value_change"] == 0 and report.batch_id is None


def test_importing_the_same_file_twice_changes_nothing(engine):
    first = import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    assert first.households.inserted == 4
    counts, before = _counts(engine), _snapshot(engine)
    second = import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    assert second.ok and second.batch_id is None
    assert (second.households.inserted, second.households.updated, second.households.unchanged) == (0, 0, 4)
    assert (second.members.inserted, second.members.updated, second.members.unchanged) == (0, 0, 10)
    assert (second.value_changes, second.events) == (0, 0)
    assert _counts(engine) == counts and _snapshot(engine) == before


def test_a_changed_value_updates_the_record_and_leaves_its_history(engine, tmp_path):
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t", effective_date=date(2026, 1, 1))
    old_hh = _household(engine, "HH-0002")
    hh_rows, mem_rows = _read_csv(GOOD_HH), _read_csv(GOOD_MEM)
    hh_rows[1]["rooms"] = "2"
    hh_rows[1]["motorcycle"] = "yes"
    mem_rows[4]["education"] = "matric"          # HH-0002 line 2
    mem_rows.append({**mem_rows[4], "roster_line": "3", "cnic": "", "full_name": "Sobia Imran",
                     "sex": "female", "relation_to_head": "daughter_in_law"})
    hh_file = _write_csv(tmp_path / "survey_households.csv", hh_rows)
    mem_file = _write_csv(tmp_path / "survey_members.csv", mem_rows)
    report = import_households(engine, hh_file, mem_file, actor="field_team", source="survey",
                               effective_date=date(2026, 4, 15))
    assert report.ok, report.lines()
    assert (report.households.updated, report.households.unchanged) == (1, 3)
    assert (report.members.updated, report.members.inserted, report.members.unchanged) == (1, 1, 9)
    assert report.value_changes == 3

    hh = _household(engine, "HH-0002")
    assert (hh.rooms, hh.motorcycle, hh.version) == (2, True, old_hh.version + 1)
    assert hh.verified_on == date(2026, 4, 15) and hh.surveyed_on == date(2026, 1, 1)
    people = _members(engine, "HH-0002")
    assert [(p.full_name, p.education) for p in people] == [
        ("Zubaida Khatoon", "none"), ("Imran Ali", "matric"), ("Sobia Imran", "matric")]
    assert people[2].member_since == date(2026, 4, 15) and people[2].batch_id == report.batch_id
    with transaction(engine) as s:
        changes = s.scalars(select(ValueChange).order_by(ValueChange.entity, ValueChange.field)).all()
        assert [(c.entity, c.field, c.old_value, c.new_value) for c in changes] == [
            ("household", "motorcycle", "no", "yes"), ("household", "rooms", "1", "2"),
            ("individual", "education", "middle", "matric")]
        assert {(c.source, c.actor, c.effective_date, c.batch_id, c.source_ref, c.household_id) for c in changes} == {
            ("survey", "field_team", date(2026, 4, 15), report.batch_id,
             "survey_households.csv + survey_members.csv", hh.id)}
        changed = s.scalars(select(OutboxEvent).where(OutboxEvent.topic == events.HOUSEHOLD_CHANGED)).all()
        assert [e.aggregate_id for e in changed] == [hh.id]
        assert set(changed[0].payload["fields"]) == {"rooms", "motorcycle", "member.education", "member.added"}

    # the same file again: nothing new
    again = import_households(engine, hh_file, mem_file, actor="field_team", source="survey",
                              effective_date=date(2026, 4, 15))
    assert again.value_changes == 0 and again.batch_id is None and again.households.unchanged == 4


def test_late_news_is_kept_as_history_without_moving_the_current_value(engine, tmp_path):
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t", effective_date=date(2026, 1, 1))
    hh_rows = _read_csv(GOOD_HH)
    hh_rows[0]["rooms"] = "4"
    newer = _write_csv(tmp_path / "newer.csv", hh_rows)
    import_households(engine, newer, actor="t", effective_date=date(2026, 6, 1))
    hh_rows[0]["rooms"] = "3"
    older = _write_csv(tmp_path / "older.csv", hh_rows)
    report = import_households(engine, older, actor="t", effective_date=date(2026, 3, 1))
    assert report.value_changes == 1 and report.events == 0
    assert _household(engine, "HH-0001").rooms == 4
    again = import_households(engine, older, actor="t", effective_date=date(2026, 3, 1))
    assert again.value_changes == 0 and again.batch_id is None


def test_an_import_cannot_move_a_household_to_another_district(engine, tmp_path):
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    hh_rows = _read_csv(GOOD_HH)
    hh_rows[0].update(district="Lahore", tehsil="Raiwind", uc="")
    report = import_households(engine, _write_csv(tmp_path / "moved.csv", hh_rows), actor="t")
    assert [(e.row, e.field, e.reason) for e in report.errors] == [
        (2, "district", "the household is registered in Kasur; an import cannot move it to another district")]
    assert _household(engine, "HH-0001").district_id == 2


def test_a_crash_in_the_middle_leaves_nothing_half_written(engine, monkeypatch):
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    counts, before = _counts(engine), _snapshot(engine)
    real = transfer.write.insert_arrow

    def failing(conn, table, data):
        if table == "individual":
            raise RuntimeError("disk full")
        return real(conn, table, data)

    monkeypatch.setattr(transfer.write, "insert_arrow", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        import_households(engine, BAD_HH, BAD_MEM, actor="t")
    assert _counts(engine) == counts and _snapshot(engine) == before


# ---------------------------------------------------------------- export and round trips

@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_export_of_the_province_imports_back_unchanged(province, empty_engine, tmp_path, fmt):
    report = export_households(province, tmp_path / f"punjab.{fmt}")
    with transaction(province) as s:
        n_hh = s.scalar(select(func.count()).select_from(Household))
        n_ind = s.scalar(select(func.count()).select_from(Individual))
    assert (report.households, report.members) == (n_hh, n_ind)
    if fmt == "xlsx":
        assert [p.name for p in report.paths] == ["punjab.xlsx"]
        assert openpyxl.load_workbook(report.paths[0], read_only=True).sheetnames == ["households", "members"]
    else:
        assert [p.name for p in report.paths] == [f"punjab_households.{fmt}", f"punjab_members.{fmt}"]
    hh_path, mem_path = report.paths[0], (report.paths[1] if len(report.paths) > 1 else None)
    if fmt == "csv":
        first = _read_csv(mem_path)[0]
        assert len(first["cnic"]) == 15 and first["cnic"][5] == "-" and first["cnic"][13] == "-"

    # into an empty registry: every household and member, with the same values
    loaded = import_households(empty_engine, hh_path, mem_path, actor="t", source="partner")
    assert loaded.ok, loaded.lines()[:5]
    assert (loaded.households.inserted, loaded.members.inserted) == (n_hh, n_ind)
    original, copy = _export_tables(province, tmp_path, "a"), _export_tables(empty_engine, tmp_path, "b")
    assert original[0].equals(copy[0]) and original[1].equals(copy[1])

    # into the registry it came from: nothing changes
    counts = _counts(province)
    again = import_households(province, hh_path, mem_path, actor="t")
    assert again.ok and again.households.unchanged == n_hh and again.members.unchanged == n_ind
    assert _counts(province) == counts


def test_export_of_one_district(province, tmp_path):
    report = export_households(province, tmp_path / "kasur.csv", district_id=2)
    with transaction(province) as s:
        n_hh = s.scalar(select(func.count()).select_from(Household).where(Household.district_id == 2))
        n_ind = s.scalar(select(func.count()).select_from(Individual).where(Individual.district_id == 2))
    assert (report.households, report.members) == (n_hh, n_ind) and n_hh > 0
    rows = _read_csv(report.paths[0])
    assert len(rows) == n_hh and {r["district"] for r in rows} == {"Kasur"}
    assert {r["urban"] for r in rows} <= {"yes", "no"}
    assert len(_read_csv(report.paths[1])) == n_ind


# ---------------------------------------------------------------- files that cannot be imported

def test_missing_columns_are_named(engine, tmp_path):
    rows = _read_csv(GOOD_HH)
    columns = [c for c in rows[0] if c not in ("rooms", "tenure")]
    hh = _write_csv(tmp_path / "hh.csv", rows, columns)
    with pytest.raises(TransferError) as err:
        import_households(engine, hh, GOOD_MEM, actor="t")
    assert str(err.value).startswith("hh.csv (households): missing required columns: tenure, rooms.")

    mem_rows = _read_csv(GOOD_MEM)
    mem = _write_csv(tmp_path / "mem.csv", mem_rows, [c for c in mem_rows[0] if c != "sex"])
    with pytest.raises(TransferError, match=r"mem.csv \(members\): missing required columns: sex\."):
        import_households(engine, GOOD_HH, mem, actor="t")
    assert _counts(engine)["household"] == 0


def test_files_that_cannot_be_read_give_a_clear_error(engine, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text(GOOD_HH.read_text().splitlines()[0] + "\n")
    garbage = tmp_path / "broken.parquet"
    garbage.write_bytes(b"not a parquet file at all")
    book = tmp_path / "wrong.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "Sheet1"
    wb.create_sheet("members")
    wb.save(book)
    cases = [
        (empty, GOOD_MEM, "empty.csv: the file is empty"),
        (header_only, GOOD_MEM, "header.csv (households): there are no household rows"),
        (garbage, None, "broken.parquet: cannot be read as Parquet"),
        (book, None, "wrong.xlsx: the workbook needs the sheets 'households' and 'members'; 'households' is missing"),
        (tmp_path / "nowhere.csv", GOOD_MEM, "nowhere.csv: no such file"),
        (tmp_path / "data.json", None, "data.json: the file type '.json' is not supported"),
    ]
    for hh, mem, message in cases:
        with pytest.raises(TransferError) as err:
            import_households(engine, hh, mem, actor="t")
        assert str(err.value).startswith(message), str(err.value)


def test_a_csv_row_with_the_wrong_number_of_values_is_reported(engine, tmp_path):
    lines = GOOD_MEM.read_text().splitlines()
    lines[3] = lines[3] + ",extra,values"   # members row 4
    mem = tmp_path / "mem.csv"
    mem.write_text("\n".join(lines) + "\n")
    report = import_households(engine, GOOD_HH, mem, actor="t")
    assert [(e.sheet, e.row, e.field) for e in report.errors] == [("members", 4, "row")]
    assert "has 19 values but the header has 17 columns" in report.errors[0].reason
    assert report.members.rejected == 1 and report.members.inserted == 9


# ---------------------------------------------------------------- hostile and broken values (issue 9)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_text_fields_refuse_control_characters_and_formula_starts(engine, tmp_path):
    """A NUL or other control character, or a name that begins like a spreadsheet formula, is refused
    at import with the row and field named; the rest of the file lands."""
    hh_rows, mem_rows = _read_csv(GOOD_HH), _read_csv(GOOD_MEM)
    mem_rows[2]["full_name"] = "Ali\x00Raza"                                     # members row 4
    mem_rows[4]["father_husband_name"] = '=HYPERLINK("http://evil.example","x")'  # members row 6
    mem_rows[7]["occupation"] = "@SUM(1+1)"                                      # members row 9
    mem_rows[8]["full_name"] = "Bilal\x1bTariq"                                  # members row 10
    hh_rows[3]["address"] = "+cmd|' /C calc'!A0"                                 # households row 5
    hh = _write_csv(tmp_path / "x_households.csv", hh_rows)
    mem = _write_csv(tmp_path / "x_members.csv", mem_rows)
    report = import_households(engine, hh, mem, actor="t")
    found = {(e.sheet, e.row, e.field): e.reason for e in report.errors}
    assert "contains a control character (U+0000)" in found[("members", 4, "full_name")]
    assert "contains a control character (U+001B)" in found[("members", 10, "full_name")]
    assert "may not begin with '='" in found[("members", 6, "father_husband_name")]
    assert "may not begin with '@'" in found[("members", 9, "occupation")]
    assert "may not begin with '+'" in found[("households", 5, "address")]
    assert report.households.inserted == 3 and report.members.inserted == 5, report.lines()
    with transaction(engine) as s:
        names = s.scalars(select(Individual.full_name)).all()
    assert not any("\x00" in n or n.startswith(_FORMULA_STARTS) for n in names)


def test_edits_share_the_text_rules():
    from isps.registry.fields import INDIVIDUAL_FIELDS, check_value

    with pytest.raises(ValueError, match="full_name may not begin with '='"):
        check_value(INDIVIDUAL_FIELDS["full_name"], "=1+1")
    with pytest.raises(ValueError, match=r"full_name contains a control character \(U\+0000\)"):
        check_value(INDIVIDUAL_FIELDS["full_name"], "Ali\x00")
    assert check_value(INDIVIDUAL_FIELDS["phone"], "+923001234567") == "+923001234567"  # not a name


def _plant(engine, ref: str, line: int, **values) -> None:
    """Store a value as older data or another door might have, past today's import rules."""
    with transaction(engine) as s:
        hh = s.scalars(select(Household).where(Household.ref == ref)).one()
        person = s.scalars(select(Individual).where(Individual.household_id == hh.id,
                                                    Individual.roster_line == line)).one()
        for k, v in values.items():
            setattr(person, k, v)


_PLANTED = {("HH-0001", 1): {"full_name": '=HYPERLINK("http://evil.example","x")'},
            ("HH-0001", 2): {"father_husband_name": "+cmd|' /C calc'!A0"},
            ("HH-0001", 3): {"occupation": "@SUM(1+1)"},
            ("HH-0002", 1): {"full_name": "-2+3"},
            ("HH-0002", 2): {"occupation": "\tTab"},
            ("HH-0003", 1): {"full_name": "Tariq\x01Mehmood\x1f"},
            ("HH-0003", 2): {"full_name": "\r=1+1"},
            ("HH-0004", 1): {"phone": "+923001234567"}}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_neutralises_formulas_and_control_characters(engine, tmp_path, fmt):
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    for (ref, line), values in _PLANTED.items():
        _plant(engine, ref, line, **values)
    report = export_households(engine, tmp_path / f"out.{fmt}")
    if fmt == "csv":
        rows = [list(r.values()) for p in report.paths for r in _read_csv(p)]
        members = {(r["household_ref"], r["roster_line"]): r for r in _read_csv(report.paths[1])}
        raw = report.paths[1].read_text(encoding="utf-8")
        assert '"\'=HYPERLINK(""http://evil.example"",""x"")"' in raw  # quoted, quotes doubled
    else:
        book = openpyxl.load_workbook(report.paths[0])  # formulas kept as formulas if any were written
        cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
        assert not [c.coordinate for c in cells if c.data_type == "f"]
        rows = [[c.value for c in row] for ws in book.worksheets for row in ws.iter_rows()]
        ws = book["members"]
        header = [c.value for c in ws[1]]
        members = {(r[0], str(r[1])): dict(zip(header, r)) for r in ws.iter_rows(min_row=2, values_only=True)}
    texts = [v for r in rows for v in r if isinstance(v, str)]
    assert not [v for v in texts if v.startswith(_FORMULA_STARTS)]
    assert not [v for v in texts if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in v)]
    assert members[("HH-0001", "1")]["full_name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert members[("HH-0001", "2")]["father_husband_name"] == "'+cmd|' /C calc'!A0"
    assert members[("HH-0001", "3")]["occupation"] == "'@SUM(1+1)"
    assert members[("HH-0002", "1")]["full_name"] == "'-2+3"
    assert members[("HH-0002", "2")]["occupation"] == "'\tTab"
    assert members[("HH-0003", "1")]["full_name"] == "Tariq\ufffdMehmood\ufffd"
    assert members[("HH-0003", "2")]["full_name"] in ("'\r=1+1", "'\n=1+1")  # XML reads CR back as LF
    assert members[("HH-0004", "1")]["phone"] == "'+923001234567"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_escaped_export_imports_back_unchanged(engine, tmp_path, fmt):
    """The quote the export puts before a leading + (a phone in international form) is taken off
    again at import, so the round trip changes nothing."""
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    _plant(engine, "HH-0004", 1, phone="+923001234567")
    before = _snapshot(engine)
    report = export_households(engine, tmp_path / f"out.{fmt}")
    again = import_households(engine, report.paths[0], report.paths[1] if fmt == "csv" else None, actor="t")
    assert again.ok and again.batch_id is None, again.lines()
    assert _snapshot(engine) == before


# ---------------------------------------------------------------- one CNIC, one living person (issue 9)

def test_a_cnic_held_by_another_living_person_is_refused(engine, tmp_path):
    first = import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    holder = _household(engine, "HH-0001")
    mem_rows = _read_csv(GOOD_MEM)
    mem_rows[4]["cnic"] = "35102-1234567-1"     # row 5: HH-0002 line 2 takes HH-0001's head's CNIC
    mem_rows[6]["cnic"] = "35202-9999999-6"     # rows 7 and 8: two people of one file, one new CNIC
    mem_rows[7]["cnic"] = "35202-9999999-6"
    mem_rows[1]["cnic"] = "35102-2345678-4"     # row 2 takes HH-0002's head's CNIC, who (row 4) ...
    mem_rows[3]["cnic"] = "35102-2345678-6"     # ... gets another one in the same file: allowed
    mem = _write_csv(tmp_path / "m_members.csv", mem_rows[1:])  # HH-0001's head is not in this file
    report = import_households(engine, GOOD_HH, mem, actor="t", effective_date=date(2026, 5, 1))
    found = {(e.row, e.field): e.reason for e in report.errors if e.sheet == "members"}
    assert set(found) == {(5, "cnic"), (7, "cnic"), (8, "cnic")}, report.lines()
    assert found[(5, "cnic")] == (f"CNIC 35102-*****67-1 is already held by a living member of household "
                                  f"HH-0001 ({holder.id}), roster line 1: a CNIC identifies one person")
    assert found[(7, "cnic")] == "CNIC 35202-*****99-6 is given to more than one person in this file (rows 7, 8)"
    assert found[(8, "cnic")] == found[(7, "cnic")]
    assert [p.cnic for p in _members(engine, "HH-0002")] == ["3510223456786", "3510234567893"]
    assert _members(engine, "HH-0001")[1].cnic == "3510223456784"
    with transaction(engine) as s:
        from isps.registry.service import find_by_cnic

        for number in ("35102-1234567-1", "35102-2345678-4"):
            assert len(find_by_cnic(s, number)) == 1
    assert first.ok


def test_the_cnic_of_a_dead_person_does_not_block(engine, tmp_path):
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    _plant(engine, "HH-0001", 1, date_of_death=date(2025, 1, 1))
    mem_rows = _read_csv(GOOD_MEM)
    mem_rows[4]["cnic"] = "35102-1234567-1"
    report = import_households(engine, GOOD_HH, _write_csv(tmp_path / "m_members.csv", mem_rows[1:]), actor="t")
    assert report.ok, report.lines()
    assert _members(engine, "HH-0002")[1].cnic == "3510212345671"


def test_an_edit_cannot_give_a_cnic_held_by_another_living_person(engine):
    from isps.registry.service import Provenance, RegistryError, change_individual

    import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    holder = _household(engine, "HH-0001")
    imran = _members(engine, "HH-0002")[1]
    with transaction(engine) as s, pytest.raises(RegistryError) as err:
        change_individual(s, imran.id, {"cnic": "35102-1234567-1"}, Provenance("operator", "clerk", date(2026, 5, 1)))
    assert str(err.value) == (f"individual {imran.id}: CNIC 35102-*****67-1 is already held by a living member of "
                              f"household HH-0001 ({holder.id}), roster line 1: a CNIC identifies one person")
    with transaction(engine) as s:  # giving a person the CNIC they already hold is no conflict
        assert change_individual(s, imran.id, {"cnic": "35102-3456789-3"}, Provenance("operator", "clerk", date(2026, 5, 1))) == []


# ---------------------------------------------------------------- the same content twice (issue 9)

def test_the_same_content_under_another_name_changes_nothing(engine, tmp_path):
    import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    counts = _counts(engine)
    hh = Path(shutil.copy(GOOD_HH, tmp_path / "renamed_households.csv"))
    mem = Path(shutil.copy(GOOD_MEM, tmp_path / "renamed_members.csv"))
    again = import_households(engine, hh, mem, actor="t")
    assert again.ok and again.batch_id is None
    assert (again.households.unchanged, again.members.unchanged) == (4, 10)
    assert _counts(engine) == counts


def test_losing_a_race_to_the_same_content_gives_a_clear_error(engine, tmp_path, monkeypatch):
    """Two imports of one content both find its households missing; the one that commits second
    meets the unique key and says which batch already holds them (simulated here by hiding the
    registry's households from the second import's look-up, as a concurrent import would)."""
    first = import_households(engine, GOOD_HH, GOOD_MEM, actor="t")
    counts = _counts(engine)
    real = transfer.write._fetch

    def blind(conn, columns, key_column, keys):
        if key_column is Household.__table__.c.ref:
            keys = keys[:0]
        return real(conn, columns, key_column, keys)

    monkeypatch.setattr(transfer.write, "_fetch", blind)
    monkeypatch.setattr(transfer.write, "_one_person_per_cnic", lambda *args: None)  # nor their people
    hh = Path(shutil.copy(GOOD_HH, tmp_path / "renamed_households.csv"))
    mem = Path(shutil.copy(GOOD_MEM, tmp_path / "renamed_members.csv"))
    with pytest.raises(TransferError) as err:
        import_households(engine, hh, mem, actor="t")
    assert str(err.value) == (f"renamed_households.csv + renamed_members.csv: this file's content was already "
                              f"imported as batch {first.batch_id} (households HH-0001, HH-0002, HH-0003, HH-0004 are "
                              f"in the registry); nothing from this file was stored. Import it again to apply any "
                              f"differences.")
    assert _counts(engine) == counts


def test_two_concurrent_imports_of_one_content_store_it_once(engine, tmp_path, monkeypatch):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: two imports cannot race")
    import threading

    barrier = threading.Barrier(2, timeout=30)
    real = transfer.write.insert_arrow

    def meet(conn, table, data):
        if table == "household":
            barrier.wait()  # both have read the registry and found nothing
        return real(conn, table, data)

    monkeypatch.setattr(transfer.write, "insert_arrow", meet)
    outcomes: list = []

    def run(name: str) -> None:
        hh = Path(shutil.copy(GOOD_HH, tmp_path / f"{name}_households.csv"))
        mem = Path(shutil.copy(GOOD_MEM, tmp_path / f"{name}_members.csv"))
        try:
            outcomes.append(import_households(engine, hh, mem, actor=name))
        except Exception as exc:  # noqa: BLE001 - the test looks at what came out
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    reports = [o for o in outcomes if not isinstance(o, Exception)]
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(reports) == 1 and len(errors) == 1, outcomes
    assert isinstance(errors[0], TransferError), repr(errors[0])
    assert f"already imported as batch {reports[0].batch_id}" in str(errors[0])
    counts = _counts(engine)
    assert (counts["household"], counts["individual"], counts["ingest_batch"]) == (4, 10, 1)

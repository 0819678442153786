"""The one file layout that imports read and exports write: sheet names, columns, formats."""

from __future__ import annotations

from pathlib import Path

from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS, Field
from isps.registry.transfer.report import TransferError


HOUSEHOLDS = "households"
MEMBERS = "members"

_HH_REST = tuple(n for n in HOUSEHOLD_FIELDS if n not in ("urban", "address"))
HOUSEHOLD_COLUMNS: tuple[str, ...] = ("household_ref", "district", "tehsil", "uc", "urban", "address", *_HH_REST)
HOUSEHOLD_OPTIONAL = frozenset({"uc", *(n for n, f in HOUSEHOLD_FIELDS.items() if not f.required)})
MEMBER_COLUMNS: tuple[str, ...] = ("household_ref", "roster_line", "cnic", "id_document", *INDIVIDUAL_FIELDS,
                                   "date_of_death")
MEMBER_OPTIONAL = frozenset({"cnic", "id_document", "date_of_death",
                             *(n for n, f in INDIVIDUAL_FIELDS.items() if not f.required)})

_REF = Field("household_ref", "text", max_len=40)
_ROSTER = Field("roster_line", "int", low=1, high=99)
_ID_DOCUMENT = Field("id_document", "choice", required=False, choices=("cnic", "bform"))
_DEATH = Field("date_of_death", "date", required=False)
_TEXT_COLUMNS = ("household_ref", "district", "tehsil", "uc", "cnic")

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx"}
_EXCEL_MAX_ROWS = 1_048_576
_IN_CHUNK = 2_000
_KEY = 100_000  # household_id * _KEY + roster_line identifies a roster line


def _format_of(path: Path, fmt: str | None = None) -> str:
    if fmt:
        key = fmt.lower().lstrip(".")
        key = {"pq": "parquet", "excel": "xlsx"}.get(key, key)
        if key not in ("csv", "parquet", "xlsx"):
            raise TransferError(f"format '{fmt}' is not supported; use csv, parquet or xlsx")
        return key
    found = _FORMATS.get(path.suffix.lower())
    if found is None:
        raise TransferError(f"{path.name}: the file type '{path.suffix or '(none)'}' is not supported; "
                            "use .csv, .parquet or .xlsx")
    return found

"""Text cells a spreadsheet can open safely: no live formulas, no characters that break a workbook.

A name such as ``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)`` or ``-2+3`` is run as a formula by
Excel or LibreOffice when it opens a CSV or an Excel file (CSV injection). Imports refuse such
names today (:mod:`isps.registry.fields`), but older data, other doors or other kinds of text
(a phone in international form, ``+92...``) may still hold them, so every export to a spreadsheet
format neutralises them as OWASP recommends: a single quote before any text that begins with
``= + - @``, tab or carriage return. An import takes that quote off again, so an export imports
back unchanged. Control characters, which openpyxl refuses with a traceback (so one bad value
could break a whole district's workbook), are replaced by U+FFFD, visibly.

Everything here is one Arrow compute call over a whole column, never a loop over rows.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

FORMULA_START = r"^[=+\-@\t\r]"
_ESCAPED = r"^'([=+\-@\t\r])"
# what an Excel sheet cannot hold (openpyxl's ILLEGAL_CHARACTERS_RE) plus DEL: tab, LF and CR stay
_UNWRITABLE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
REPLACEMENT = "\ufffd"


def spreadsheet_safe(column: pa.Array) -> pa.Array:
    """A text column as a spreadsheet should receive it: control characters replaced, and a quote
    before text that would otherwise start a formula. Other columns are returned unchanged."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    clean = pc.replace_substring_regex(column, _UNWRITABLE, REPLACEMENT)
    return pc.if_else(pc.match_substring_regex(clean, FORMULA_START), pc.binary_join_element_wise("'", clean, ""),
                      clean)


def unescape(column: pa.Array) -> pa.Array:
    """Undo :func:`spreadsheet_safe`'s quote on a text column read from a CSV or Excel file."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    return pc.replace_substring_regex(column, _ESCAPED, r"\1")


def string_cells(ws, column: list, mask: list[bool] | None) -> list:
    """openpyxl types a str beginning with '=' as a formula and '#N/A' and the like as errors;
    the values at ``mask`` become cells explicitly typed as text (the others stay plain values)."""
    if not mask or not any(mask):
        return column
    from openpyxl.cell import WriteOnlyCell

    out = list(column)
    for i, hit in enumerate(mask):
        if hit:  # only the rare values openpyxl would mistype
            cell = WriteOnlyCell(ws, value=None)
            cell.value = out[i]
            cell.data_type = "s"
            out[i] = cell
    return out


def append_rows(ws, columns: list[pa.Array]) -> None:
    """Append a chunk of (already :func:`spreadsheet_safe`) columns to a write-only worksheet. Text
    that openpyxl would store as a formula or an error value (``#N/A``) becomes an explicit text cell
    (:func:`string_cells`); the rest stays plain values. One writer for every Excel export."""
    from openpyxl.cell.cell import ERROR_CODES

    errors = pa.array(list(ERROR_CODES), pa.string())
    cells = []
    for col in columns:
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        mistyped = None
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            mistyped = pc.fill_null(pc.or_(pc.starts_with(col, "="), pc.is_in(col, value_set=errors)),
                                    False).to_pylist()
        cells.append(string_cells(ws, col.to_pylist(), mistyped))
    for row in zip(*cells):  # the workbook writer walks rows
        ws.append(row)


def safe_text(value: object) -> object:
    """One cell of a small report as :func:`spreadsheet_safe` would write it (numbers unchanged)."""
    if not isinstance(value, str):
        return value
    import re

    clean = re.sub(_UNWRITABLE, REPLACEMENT, value)
    return "'" + clean if re.match(FORMULA_START, clean) else clean


def write_report_csv(path: Path | str, header: list[str], rows) -> Path:
    """A rejected-rows report (imports, feeds, partner lists) as CSV. Its cells echo what partners
    sent (references, values quoted in reasons), so each is made :func:`safe_text` before a clerk
    opens the file in a spreadsheet. Reports hold only the refused rows: small, written row by row."""
    import csv

    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows([safe_text(v) for v in row] for row in rows)
    return path

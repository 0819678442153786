"""Import and export of households and their members, for partner departments.

Files come in one layout, read and written alike so that an export imports back
unchanged: a *households* table and a *members* table, either as two CSV or two
Parquet files (``<stem>_households.csv`` and ``<stem>_members.csv``) or as one Excel
workbook with the sheets ``households`` and ``members``.

An import is checked column by column with :func:`isps.registry.fields.parse_column`
(the one definition of valid values) and Arrow/NumPy set operations, never row by
row. Valid rows land, invalid rows do not, and every rejected row is reported with
the row number the user sees, the field and the reason. A household whose row is
invalid is rejected with its members; a new household whose head (roster line 1) is
missing or invalid is rejected too. Existing records (matched by household_ref, and
members by household and roster line) are updated with one ``value_change`` row per
changed field, carrying source, effective date, actor, file name and batch, as
:mod:`isps.registry.service` does for an operator's edit. Importing the same file
twice changes nothing. The whole import is one transaction.

The package is split by job: :mod:`.readers` (CSV, Parquet and Excel in),
:mod:`.validate` (column-wise checks), :mod:`.write` (applying rows to the registry),
:mod:`.export` (writers out) and :mod:`.report` (the row-by-row report and the
domain error); :mod:`.layout` and :mod:`.arrays` hold what they share. Callers import
from here.
"""

from isps.registry.transfer.export import export_households
from isps.registry.transfer.layout import (HOUSEHOLD_COLUMNS, HOUSEHOLD_OPTIONAL, HOUSEHOLDS, MEMBER_COLUMNS,
                                           MEMBER_OPTIONAL, MEMBERS)
from isps.registry.transfer.readers import _read_csv, _read_parquet
from isps.registry.transfer.report import ExportReport, ImportReport, RowError, SheetCounts, TransferError
from isps.registry.transfer.validate import _mask_cnics, _parse_cnic
from isps.registry.transfer.write import _allocate, import_households

__all__ = ["HOUSEHOLDS", "MEMBERS", "HOUSEHOLD_COLUMNS", "HOUSEHOLD_OPTIONAL", "MEMBER_COLUMNS", "MEMBER_OPTIONAL",
           "TransferError", "RowError", "SheetCounts", "ImportReport", "ExportReport", "import_households",
           "export_households"]

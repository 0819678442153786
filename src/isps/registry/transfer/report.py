"""What an import or export tells the user: row-by-row problems, counts, and the domain error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from isps.registry.transfer.cells import write_report_csv


class TransferError(ValueError):
    """A file that cannot be imported or an export that cannot be written; the message names
    the file and what is wrong with it, fit to show to the user as it is."""


# ---------------------------------------------------------------- reports

@dataclass(frozen=True)
class RowError:
    sheet: str          # households | members
    row: int            # as the user sees it: header is row 1 (CSV, Excel); 1-based index (Parquet)
    household_ref: str
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.sheet} row {self.row}"
        if self.household_ref:
            where += f" (household {self.household_ref})"
        return f"{where}: {self.field}: {self.reason}"


@dataclass
class SheetCounts:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def __str__(self) -> str:
        return (f"{self.rows} rows: {self.inserted} inserted, {self.updated} updated, "
                f"{self.unchanged} unchanged, {self.rejected} rejected")


class RowErrors:
    """What every row-by-row report answers about its ``errors`` (imports here, feed deliveries in
    :mod:`isps.interop.feeds.framework`): whether all went through, one line per problem, and the
    problems as dicts for a CSV or a JSON answer."""

    errors: list

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]

    def to_rows(self) -> list[dict]:
        return [asdict(e) for e in self.errors]


@dataclass
class ImportReport(RowErrors):
    reference: str
    source: str
    actor: str
    effective_date: date
    households: SheetCounts = field(default_factory=SheetCounts)
    members: SheetCounts = field(default_factory=SheetCounts)
    errors: list[RowError] = field(default_factory=list)
    value_changes: int = 0
    events: int = 0
    batch_id: int | None = None  # None when nothing was written

    def summary(self) -> str:
        batch = f"batch {self.batch_id}" if self.batch_id is not None else "nothing written"
        out = [f"{self.reference}: {batch} (source {self.source}, effective {self.effective_date.isoformat()}, "
               f"by {self.actor})",
               f"  households: {self.households}",
               f"  members:    {self.members}",
               f"  value changes recorded: {self.value_changes}; events for re-scoring: {self.events}"]
        if self.errors:
            rows = len({(e.sheet, e.row) for e in self.errors})
            out.append(f"  {len(self.errors)} problems on {rows} rejected rows")
        return "\n".join(out)

    def write_csv(self, path: Path | str) -> Path:
        """The rejected-rows report: one line per problem (CNICs masked, as in the messages)."""
        return write_report_csv(path, ["sheet", "row", "household_ref", "field", "reason"],
                                ((e.sheet, e.row, e.household_ref, e.field, e.reason) for e in self.errors))


@dataclass
class ExportReport:
    paths: list[Path]
    fmt: str
    district_id: int | None
    households: int
    members: int

    def summary(self) -> str:
        where = "the province" if self.district_id is None else f"district {self.district_id}"
        files = ", ".join(str(p) for p in self.paths)
        return f"exported {self.households} households and {self.members} members of {where} to {files}"

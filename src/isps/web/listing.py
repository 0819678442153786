"""What every list page shares: a keyset page, the total for the current filters, the links to the
next page and back to the first, and the export of the whole filtered list (CSV and Excel).

A list page asks its domain module for one page (``after`` the last id shown, never an OFFSET, so
page 1,000 costs what page 1 does) and for the COUNT of the same filtered query; :func:`pager`
turns that into what ``_pager.html`` shows. :func:`export` writes the whole filtered list by
walking the same keyset a thousand rows at a time, each chunk made spreadsheet-safe as one Arrow
column operation (:func:`isps.registry.transfer.cells.spreadsheet_safe`: a name never becomes a
formula), and audits the export.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.csv as pacsv
from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit
from isps.keyset import Sort, SortError, parse  # noqa: F401  (SortError: what pages catch)
from isps.registry.transfer.cells import append_rows, spreadsheet_safe
from isps.web.common import CHANNEL, SECURITY_HEADERS

PAGE = 50           # rows on one page of any list
EXPORT_CHUNK = 1_000  # rows fetched per keyset step of an export
FORMATS = {"csv": ("text/csv; charset=utf-8", "csv"),
           "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx")}


@dataclass
class Pager:
    """What ``_pager.html`` shows: "rows a-b of total", next and first-page links, export links."""

    total: int
    start: int          # 1-based position of the first row shown (0 when nothing is shown)
    shown: int
    next_url: str | None
    first_url: str | None
    csv_url: str | None
    xlsx_url: str | None
    id: str = "list"


def _url(request: Request, drop: tuple[str, ...], path: str | None = None, **extra: object) -> str:
    """This page's address (or ``path``) with its filters kept, the cursor (and anything in
    ``drop``) removed."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in drop and k not in extra and v != ""]
    params += [(k, str(v)) for k, v in extra.items() if v is not None]
    return (path or request.url.path) + ("?" + urlencode(params) if params else "")


def pager(request: Request, *, total: int, shown: int, next_after: int | None, cursor: str = "after",
          position: int | None = None, exportable: bool = True, id: str = "list",
          others: tuple[str, ...] = ()) -> Pager:
    """The pager of one list. ``cursor`` is the query parameter that holds the keyset cursor;
    ``others`` are the parameters of other lists on the same page (kept as they are); the start
    position travels in ``at`` only to number the rows, never to page the query."""
    at = position if position is not None else _position(request, cursor)
    drop = (cursor, f"{cursor}_at", "format", "done")
    next_url = (_url(request, drop, **{cursor: next_after, f"{cursor}_at": at + shown}) if next_after is not None
                else None)
    first_url = _url(request, drop) if request.query_params.get(cursor) else None
    csv_url = _url(request, (*drop, *others), format="csv", list=id) if exportable else None
    xlsx_url = _url(request, (*drop, *others), format="xlsx", list=id) if exportable else None
    return Pager(total, at + 1 if shown else 0, shown, next_url, first_url, csv_url, xlsx_url, id)


@dataclass
class Column:
    """One sortable column header: the address that sorts by it (ascending first, then the other
    way), and its ``aria-sort`` state for screen readers."""

    url: str
    aria: str    # ascending | descending | none
    arrow: str   # ▲ ▼ or nothing (the arrow is decoration; aria-sort says it)


def sort_of(request: Request, allowed: tuple[str, ...], default: Sort, param: str = "sort") -> Sort:
    """The order asked for in ``param`` (``key`` or ``-key``), whitelisted; raises
    :class:`isps.keyset.SortError` for anything else (the page answers 400, never 500)."""
    return parse(request.query_params.get(param), allowed, default)


def columns(request: Request, allowed: tuple[str, ...], current: Sort, *, param: str = "sort",
            cursor: str = "after", path: str | None = None) -> dict[str, Column]:
    """The header links of a list's sortable columns (to ``path``, by default this page). A new
    order starts again at page 1 (the cursor and its position are dropped); the filters and the
    other lists' cursors are kept."""
    drop = (cursor, f"{cursor}_at", "format", "list", "done")
    out = {}
    for key in allowed:
        if key == current.key:
            nxt, aria, arrow = Sort(key, not current.desc), ("descending" if current.desc else "ascending"), \
                ("▼" if current.desc else "▲")
        else:
            nxt, aria, arrow = Sort(key), "none", ""
        out[key] = Column(_url(request, drop, path, **{param: nxt.param}), aria, arrow)
    return out


def _position(request: Request, cursor: str) -> int:
    raw = request.query_params.get(f"{cursor}_at", "")
    return int(raw) if raw.isdigit() and len(raw) < 10 and request.query_params.get(cursor) else 0


def wants_export(request: Request, id: str) -> str | None:
    """The export format asked for (``?format=csv|xlsx``) for this list, else None."""
    fmt = request.query_params.get("format", "")
    return fmt if fmt in FORMATS and request.query_params.get("list", id) == id else None


def keyset_chunks(fetch: Callable[[int | None, int], list[dict]], cursor_of: Callable[[dict], int],
                  chunk: int = EXPORT_CHUNK) -> Iterator[list[dict]]:
    """The whole filtered list, one keyset page of ``chunk`` rows at a time (never an OFFSET)."""
    after = None
    while True:
        rows = fetch(after, chunk)
        if rows:
            yield rows
        if len(rows) < chunk:
            return
        after = cursor_of(rows[-1])


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> pa.Table:
    """One chunk as text columns, spreadsheet-safe (one Arrow call per column)."""
    arrays = []
    for key, _ in columns:
        values = [None if r.get(key) is None else str(r[key]) for r in rows]
        arrays.append(spreadsheet_safe(pa.array(values, pa.string())))
    return pa.Table.from_arrays(arrays, names=[header for _, header in columns])


def export(request: Request, session: Session, who: Principal, fmt: str, *, name: str, entity: str,
           columns: list[tuple[str, str]], chunks: Iterator[list[dict]], detail: str) -> StreamingResponse:
    """The whole filtered list as a CSV or Excel download, audited as an ``export`` of ``entity``.
    Written chunk by chunk to a spooled temporary file (memory stays bounded however long the
    list), then streamed. ``columns`` are (row key, header) pairs; CNICs must come masked."""
    media, suffix = FORMATS[fmt]
    out = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    count = 0
    if fmt == "csv":
        schema = pa.schema([(header, pa.string()) for _, header in columns])
        writer = pacsv.CSVWriter(out, schema, write_options=pacsv.WriteOptions(quoting_style="all_valid"))
        for rows in chunks:
            writer.write_table(_table(rows, columns))
            count += len(rows)
        writer.close()
    else:
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet(name[:31])
        ws.append([header for _, header in columns])
        for rows in chunks:
            append_rows(ws, _table(rows, columns).columns)
            count += len(rows)
        wb.save(out)
    audit(session, who, CHANNEL, "export", entity, None, who.scope, detail=f"{detail}: {count} rows as {suffix}")
    session.commit()
    out.seek(0)

    def stream() -> Iterator[bytes]:
        with out:
            while block := out.read(1 << 16):
                yield block

    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}.{suffix}"'}
    return StreamingResponse(stream(), media_type=media, headers=headers)

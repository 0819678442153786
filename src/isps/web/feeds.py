"""Feed deliveries in the browser, for administrators and program managers (``registry.import``, as
the API's delivery route): the list of deliveries (newest first, keyset pager with total, filters by
feed, source, day and outcome, CSV/Excel export), uploading a delivery file for a chosen feed, and a
delivery's row report (counts, every refused row with its reason, the conflicts it raised), itself
downloadable as CSV or Excel.

The upload route is a plain ``def``: FastAPI runs it in a worker thread, so a large file is read,
parsed and applied without blocking the event loop. A file refused as a whole stores nothing and
the page says why; re-scoring and the programs' response follow in the background, as in the API.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit
from isps.api.params import Day, Id, QueryId
from isps.interop import feeds
from isps.interop.feeds import delivery_log as dl
from isps.services.events import drain
from isps.web import common as r
from isps.web.common import DB, User
from isps.web.listing import PAGE, export, keyset_chunks, pager, wants_export

router = APIRouter(include_in_schema=False)
ACT = "registry.import"
FILE_MAX = 512 * 1024 * 1024   # a NADRA delivery of a few million rows is well below this
SUFFIXES = (".csv", ".parquet", ".pq")
CONFLICTS_SHOWN = 200
LIST_COLUMNS = [(k, k) for k in ("id", "feed", "source", "reference", "actor", "received_at", "records", "accepted",
                                 "rejected", "repeated", "conflicts", "outcome")]
REPORT_COLUMNS = [("row", "row"), ("record_ref", "record_ref"), ("field", "field"), ("reason", "reason")]


def _refused(request: Request, session: Session, who: Principal, action: str, entity_id: int | None,
             what: str) -> Response:
    tr = r._tr(request)
    audit(session, who, r.CHANNEL, action, "feed_delivery", entity_id, who.scope, outcome="denied",
          detail=f"refused: a {who.role.replace('_', ' ')} may not {what}")
    return r.error_page(request, session, who, 403, tr("admin.forbidden", role=tr(f"role.{who.role}")))


def _guard(request: Request, session: Session, who: Principal, action: str, entity_id: int | None,
           what: str) -> Response | None:
    return None if who.can(ACT) else _refused(request, session, who, action, entity_id, what)


def _list(request: Request, session: Session, who: Principal, f: dl.DeliveryFilter, before: int | None, *,
          error: str | None = None, form: dict | None = None, status: int = 200) -> Response:
    fmt = wants_export(request, "deliveries")
    if fmt:
        chunks = keyset_chunks(lambda b, n: dl.list_deliveries(session, f, before=b, limit=n), lambda d: d["id"])
        return export(request, session, who, fmt, name="feed_deliveries", entity="feed_delivery",
                      columns=LIST_COLUMNS, chunks=chunks, detail="the feed deliveries")
    rows = dl.list_deliveries(session, f, before=before, limit=PAGE + 1)
    shown = rows[:PAGE]
    more = rows[PAGE - 1]["id"] if len(rows) > PAGE else None
    pg = pager(request, total=dl.count_deliveries(session, f), shown=len(shown), next_after=more, cursor="before",
               id="deliveries")
    audit(session, who, r.CHANNEL, "read", "feed_delivery", None, None, detail=f"listed {len(shown)} deliveries")
    return r.render(request, "admin_feeds.html", {
        "rows": shown, "pager": pg, "feeds": sorted(feeds.FEEDS.values(), key=lambda s: s.name),
        "sources": dl.sources(), "outcomes": dl.OUTCOMES, "error": error, "form": form or {},
        "filters": {"feed": f.feed or "", "source": f.source or "", "since": f.since or "", "until": f.until or "",
                    "outcome": f.outcome or ""}}, who=who, session=session, status=status)


def _filter(feed: str, source: str, since, until, outcome: str) -> dl.DeliveryFilter:
    feeds.feed_named("nadra")  # the adapters are registered
    return dl.DeliveryFilter(feed if feed in feeds.FEEDS else None, source if source in dl.sources() else None,
                             since, until, outcome if outcome in dl.OUTCOMES else None)


@router.get("/feeds/deliveries")
def deliveries_page(request: Request, session: DB, who: User, feed: Annotated[str, Query(max_length=20)] = "",
                    source: Annotated[str, Query(max_length=20)] = "", since: Day = None, until: Day = None,
                    outcome: Annotated[str, Query(max_length=10)] = "", before: QueryId = None) -> Response:
    """Every delivery newest first, with the form to upload one."""
    return _guard(request, session, who, "read", None, "read the feed deliveries") or _list(
        request, session, who, _filter(feed, source, since, until, outcome), before)


def _save(upload: UploadFile, name: str, folder: str) -> Path | None:
    """The uploaded file on disk under its own name (the readers take a path and name it in their
    messages), copied in blocks; None past :data:`FILE_MAX`."""
    path = Path(folder) / (re.sub(r"[^A-Za-z0-9._-]", "_", name) or "delivery.csv")
    copied = 0
    with path.open("wb") as out:
        while block := upload.file.read(1 << 20):
            copied += len(block)
            if copied > FILE_MAX:
                return None
            out.write(block)
    return path


@router.post("/feeds/deliveries")
def upload(request: Request, session: DB, who: User, background: BackgroundTasks,
           feed: Annotated[str, Form()] = "", reference: Annotated[str, Form()] = "",
           file: Annotated[UploadFile | None, File()] = None) -> Response:
    """Apply one delivery file (CSV or Parquet) for the chosen feed; its row report is the answer."""
    refused = _guard(request, session, who, "import", None, f"upload a {feed[:20]} delivery")
    if refused:
        return refused
    tr = r._tr(request)
    name = Path(file.filename or "").name[:120] if file is not None else ""
    reference = (reference.strip() or name)[:200]
    form = {"feed": feed[:20], "reference": reference}
    suffix = Path(name).suffix.lower()

    def again(message: str, status: int) -> Response:
        audit(session, who, r.CHANNEL, "import", "feed_delivery", None, None, outcome="failed",
              detail=f"refused {feed[:20]} delivery {name or '(no file)'}: {message[:200]}")
        return _list(request, session, who, _filter("", "", None, None, ""), None, error=message, form=form,
                     status=status)

    if file is None or not name:
        return again(tr("admin.feeds.no_file"), 422)
    if suffix not in SUFFIXES:
        return again(tr("admin.feeds.bad_suffix", name=name), 422)
    with tempfile.TemporaryDirectory(prefix="isps-feed-") as folder:
        path = _save(file, name, folder)
        if path is None:
            return again(tr("admin.feeds.too_big", name=name, mb=FILE_MAX >> 20), 413)
        engine = request.app.state.engine
        try:
            report = feeds.apply_delivery(engine, feed, path, reference=reference, actor=who.username)
        except feeds.FeedError as exc:  # a file refused as a whole: nothing stored
            return again(str(exc), 409 if isinstance(exc, feeds.DeliveryConflict) else 422)
    audit(session, who, r.CHANNEL, "import", "feed_delivery", report.delivery_id, None,
          detail=(f"{feed} {reference}: applied before as delivery {report.delivery_id}" if report.already_applied
                  else f"{feed} {reference}: {report.records} records, {report.accepted} accepted, "
                       f"{report.rejected} refused, {report.conflicts} conflicts"))
    session.commit()  # before the background step, which writes (SQLite has one writer at a time)
    if not report.already_applied:
        background.add_task(drain, engine)
    done = "again" if report.already_applied else "applied"
    return RedirectResponse(f"/feeds/deliveries/{report.delivery_id}?done={done}", status_code=303)


@router.get("/feeds/deliveries/{delivery_id}")
def report_page(request: Request, delivery_id: Id, session: DB, who: User, after: QueryId = None) -> Response:
    """A delivery's row report: counts, every refused row with its reason (paged), the conflicts it raised."""
    refused = _guard(request, session, who, "read", delivery_id, f"read delivery {delivery_id}")
    if refused:
        return refused
    tr = r._tr(request)
    try:
        d = dl.delivery(session, delivery_id)
    except feeds.FeedError:
        return r.error_page(request, session, who, 404, tr("admin.feeds.unknown"))
    fmt = wants_export(request, "rejections")
    if fmt:
        chunks = keyset_chunks(lambda a, n: dl.rejections(session, delivery_id, after=a, limit=n), lambda e: e["seq"])
        return export(request, session, who, fmt, name=f"delivery-{delivery_id}-report", entity="feed_delivery",
                      columns=REPORT_COLUMNS, chunks=chunks, detail=f"the row report of delivery {delivery_id}")
    rows = dl.rejections(session, delivery_id, after=after, limit=PAGE + 1)
    shown = rows[:PAGE]
    more = rows[PAGE - 1]["seq"] if len(rows) > PAGE else None
    pg = pager(request, total=dl.count_rejections(session, delivery_id), shown=len(shown),
               next_after=more, id="rejections")
    n_conflicts, conflicts = dl.conflicts_raised(session, d, limit=CONFLICTS_SHOWN)
    done = request.query_params.get("done", "")
    notice = tr(f"admin.feeds.done.{done}") if done in ("applied", "again") else None
    audit(session, who, r.CHANNEL, "read", "feed_delivery", delivery_id, None, detail=f"row report of {d['reference']}")
    return r.render(request, "admin_feed_report.html", {
        "d": d, "rows": shown, "pager": pg, "conflicts": conflicts, "n_conflicts": n_conflicts, "notice": notice},
        who=who, session=session)

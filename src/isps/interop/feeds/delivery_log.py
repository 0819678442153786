"""Feed deliveries as an officer reads them: the list (newest first, by keyset, filtered by feed,
source, day and outcome) with its total, and one delivery's row report (its counts, every refused
row with the field and reason, and the conflicts between sources it raised).

The refused rows are kept in ``feed_rejection`` by :func:`.framework.apply_delivery`, in the
delivery's own transaction; a file refused as a whole (unknown feed, missing columns, unreadable)
stores nothing, so it has no report here: its sender got the reason at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from isps.interop.feeds.framework import FEEDS, ConflictView, FeedError, feed_named
from isps.interop.models import FeedDelivery, FeedRejection, SourceConflict
from isps.registry import cnic as cnic_rules

OUTCOMES = ("clean", "partial", "none")  # every record accepted | some refused | none accepted


@dataclass(frozen=True)
class DeliveryFilter:
    feed: str | None = None
    source: str | None = None     # the registry source a feed's changes carry: nadra | partner
    since: date | None = None
    until: date | None = None
    outcome: str | None = None    # one of OUTCOMES

    def where(self) -> list:
        d = FeedDelivery
        out = []
        if self.feed:
            out.append(d.feed == self.feed)
        if self.source:
            out.append(d.feed.in_(sorted(n for n, f in FEEDS.items() if f.source == self.source) or [""]))
        if self.since is not None:
            out.append(d.received_at >= datetime.combine(self.since, datetime.min.time()))
        if self.until is not None:  # the whole last day
            out.append(d.received_at < datetime.combine(self.until + timedelta(days=1), datetime.min.time()))
        if self.outcome == "clean":
            out.append(d.rejected == 0)
        elif self.outcome == "partial":
            out.append(and_(d.rejected > 0, d.accepted > 0))
        elif self.outcome == "none":
            out.append(d.accepted == 0)
        return out


def sources() -> list[str]:
    feed_named("nadra")  # registers the adapters
    return sorted({f.source for f in FEEDS.values()})


def list_deliveries(session: Session, filters: DeliveryFilter, *, before: int | None = None,
                    limit: int = 50) -> list[dict]:
    """Deliveries newest first, a keyset page at a time (``before`` the last id shown)."""
    stmt = select(FeedDelivery).where(*filters.where())
    if before:
        stmt = stmt.where(FeedDelivery.id < before)
    return [_row(d) for d in session.scalars(stmt.order_by(FeedDelivery.id.desc()).limit(limit))]


def count_deliveries(session: Session, filters: DeliveryFilter) -> int:
    return session.scalar(select(func.count()).select_from(FeedDelivery).where(*filters.where())) or 0


def _row(d: FeedDelivery) -> dict:
    summary = d.summary or {}
    outcome = "none" if not d.accepted else ("partial" if d.rejected else "clean")
    return {"id": d.id, "feed": d.feed, "source": FEEDS[d.feed].source if d.feed in FEEDS else "",
            "reference": d.reference, "actor": d.actor,
            "received_at": d.received_at.strftime("%Y-%m-%d %H:%M") if d.received_at else "",
            "records": d.records, "accepted": d.accepted, "rejected": d.rejected,
            "repeated": summary.get("repeated", 0), "conflicts": summary.get("conflicts", 0),
            "applied": summary.get("applied", 0), "late": summary.get("late", 0), "outcome": outcome}


def delivery(session: Session, delivery_id: int) -> dict:
    d = session.get(FeedDelivery, delivery_id)
    if d is None:
        raise FeedError(f"no delivery {delivery_id}")
    return _row(d)


def rejections(session: Session, delivery_id: int, *, after: int | None = None, limit: int = 100) -> list[dict]:
    """A delivery's refused rows in report order, by keyset (``after`` the last ``seq`` shown)."""
    stmt = select(FeedRejection).where(FeedRejection.delivery_id == delivery_id)
    if after:
        stmt = stmt.where(FeedRejection.seq > after)
    return [{"seq": r.seq, "row": r.row, "record_ref": r.record_ref, "field": r.field, "reason": r.reason}
            for r in session.scalars(stmt.order_by(FeedRejection.seq).limit(limit))]


def _conflict_prefix(d: dict) -> str:
    return f"{d['feed']} {d['reference']} #"  # framework.Job.source_ref


def conflicts_raised(session: Session, d: dict, *, limit: int = 200) -> tuple[int, list[ConflictView]]:
    """How many conflicts between sources the delivery raised, and the first ``limit`` of them."""
    where = SourceConflict.source_ref.startswith(_conflict_prefix(d), autoescape=True)
    total = session.scalar(select(func.count()).select_from(SourceConflict).where(where)) or 0
    rows = session.scalars(select(SourceConflict).where(where).order_by(SourceConflict.id).limit(limit))
    return total, [ConflictView(r.id, r.entity, r.entity_id, r.household_id, r.district_id, r.field,
                                cnic_rules.mask(r.kept_value) if r.field == "cnic" else r.kept_value, r.kept_source,
                                r.kept_since, cnic_rules.mask(r.offered_value) if r.field == "cnic" else r.offered_value,
                                r.offered_source, r.offered_effective, r.source_ref, r.status, r.recorded_at)
                   for r in rows]


def count_rejections(session: Session, delivery_id: int) -> int:
    return session.scalar(select(func.count()).select_from(FeedRejection)
                          .where(FeedRejection.delivery_id == delivery_id)) or 0

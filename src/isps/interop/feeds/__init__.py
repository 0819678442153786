"""NSER Plus data feeds: one adapter per source, on one framework (:mod:`.framework`).

Public functions::

    apply_delivery(engine, feed, path_or_records, *, reference, actor) -> FeedReport
    after_delivery(engine, on=None, cutoff=32) -> int   # re-score (pmt.process_events) and record
                                           # household.crossed_cutoff events; run after deliveries
    generate_sample(engine, feed, n, seed) -> pyarrow.Table
    list_conflicts(session, district_scope=None, status="open", ...)
    resolve_conflict(session, conflict_id, actor, resolution)
    list_accounts(session, household_id=..., individual_id=...)   # numbers masked
    exclusions(session, district_scope=None)

Change requests (maker-checker) and re-certification are in :mod:`.changes`; the list of
deliveries and one delivery's stored row report in :mod:`.delivery_log`.

The formats are documented in ``docs/feeds.md``.
"""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from isps.db import transaction
from isps.interop.feeds.framework import (FEEDS, HOUSEHOLD_CROSSED_CUTOFF, ConflictView, DeliveryConflict, Feed, FeedError, FeedReport, FeedRowError,
                                          after_delivery, apply_delivery, deliveries, feed_named, list_conflicts,
                                          resolve_conflict, to_json_batch)
from isps.interop.feeds import accounts, electricity, land, nadra, ngo, payroll, telecom, vehicles  # noqa: F401
from isps.interop.feeds.accounts import list_accounts
from isps.interop.models import ExclusionFlag

FEED_NAMES = tuple(FEEDS)


def generate_sample(engine: Engine, feed: str, n: int, seed: int) -> pa.Table:
    """A seeded synthetic delivery of ``feed`` with about ``n`` records about real registry records."""
    spec = feed_named(feed)
    with transaction(engine) as s:
        return spec.generate(s, n, seed)


def exclusions(session: Session, district_scope: int | None = None, active: bool = True) -> list[ExclusionFlag]:
    q = select(ExclusionFlag).where(ExclusionFlag.active == active)
    if district_scope is not None:
        q = q.where(ExclusionFlag.district_id == district_scope)
    return list(session.scalars(q.order_by(ExclusionFlag.individual_id)))


__all__ = ["FEEDS", "FEED_NAMES", "HOUSEHOLD_CROSSED_CUTOFF", "ConflictView", "DeliveryConflict", "Feed", "FeedError", "FeedReport", "FeedRowError",
           "after_delivery", "apply_delivery", "deliveries", "exclusions", "generate_sample", "list_accounts",
           "list_conflicts", "resolve_conflict", "to_json_batch"]

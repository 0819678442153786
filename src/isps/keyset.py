"""Keyset pages in a user-chosen order: the composite keyset (sort value, id), NULLs last in
either direction, with no OFFSET, so page 1,000 costs what page 1 does given an index on
(filters…, sort column, id).

The cursor a page hands on is still one id (the last row shown): the sort value is read back from
that row, so addresses keep one integer cursor whatever the order. A page is at most two range
reads: the rows with a value past the cursor's (``value > v OR (value = v AND id > c)``, written
``value >= v AND (value > v OR id > c)`` so the index range starts at ``v``), then, once they run
out, the rows without a value in id order. Ties in the sort value are ordered by id, so no row is
shown twice or skipped at a page boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement


class SortError(ValueError):
    """A sort the list does not offer; the message names the parameter."""


@dataclass(frozen=True)
class Sort:
    """A chosen order: a whitelisted key and its direction."""

    key: str
    desc: bool = False

    @property
    def param(self) -> str:
        """As it travels in an address: ``pmt`` or ``-pmt``."""
        return ("-" if self.desc else "") + self.key


def parse(raw: str | None, allowed: tuple[str, ...], default: Sort) -> Sort:
    """``sort=<key>`` or ``sort=-<key>`` (descending), among ``allowed`` only; empty → ``default``.
    Anything else raises :class:`SortError` (the web answers 400 with the allowed keys)."""
    raw = (raw or "").strip()
    if not raw:
        return default
    desc = raw.startswith("-")
    key = raw[1:] if desc else raw
    if key not in allowed:
        raise SortError(f"sort must be one of {', '.join(allowed)} (with '-' before it for descending), "
                        f"not {raw[:40]!r}")
    return Sort(key, desc)


def page(session: Session, stmt: Select, value: ColumnElement, id_col: ColumnElement, *, after: int | None,
         limit: int, desc: bool = False, nullable: bool = True) -> list:
    """One page of ``stmt`` (a filtered select) ordered by (``value``, ``id_col``) in one direction,
    NULL values last, after the row whose id is ``after``. Returns the result rows (as
    ``session.execute`` gives them). ``value`` may be ``id_col`` itself (plain id order)."""
    same = value is id_col
    if same:
        nullable = False
    cursor_value, cursor_null = None, False
    if after is not None and not same:
        found = session.execute(stmt.with_only_columns(value).where(id_col == after).limit(1)).first()
        if found is None:  # the row left the list since the page was shown: continue by id alone
            found = (None,)
        cursor_value = found[0]
        cursor_null = cursor_value is None
    past_id = (id_col < after if desc else id_col > after) if after is not None else None
    order = [id_col.desc() if desc else id_col.asc()]
    if not same:
        order.insert(0, value.desc() if desc else value.asc())
    rows: list = []
    if not cursor_null:
        valued = stmt.where(value.is_not(None)) if nullable else stmt
        if after is not None:
            if same:
                valued = valued.where(past_id)
            else:
                further = value < cursor_value if desc else value > cursor_value
                reach = value <= cursor_value if desc else value >= cursor_value
                valued = valued.where(and_(reach, or_(further, past_id)))
        rows = list(session.execute(valued.order_by(*order).limit(limit)))
    if nullable and len(rows) < limit:
        empty = stmt.where(value.is_(None))
        if after is not None and cursor_null:
            empty = empty.where(past_id)
        rows += session.execute(empty.order_by(id_col.desc() if desc else id_col.asc()).limit(limit - len(rows)))
    return rows

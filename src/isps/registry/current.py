"""Who is a current member of a household: the one definition every query uses.

A person stays on record after they die (``date_of_death``) or leave the household (``left_on``,
``left_reason``: married away, migrated, whereabouts unknown, entered in error); neither is a
current member. PMT member aggregates, the eligibility rule compiler, the vulnerability index,
enrolment, cycles, reassessment, linkage and labour all ask this module, as SQL text
(:func:`sql`, for statements written as text) or as an SQLAlchemy expression (:func:`clause`), so a
new way of ceasing to be a member is added here once. The partial index
``ix_individual_district_alive`` (migration ``0016_onewindow``) has the same predicate.
"""

from __future__ import annotations

from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

# the predicate over the table ``individual`` unaliased (the partial index's WHERE)
CURRENT = "date_of_death IS NULL AND left_on IS NULL"


def sql(alias: str | None = None) -> str:
    """``alias.date_of_death IS NULL AND alias.left_on IS NULL``: a current member, as SQL text."""
    if not alias:
        return CURRENT
    if not alias.isidentifier():
        raise ValueError(f"not a table alias: {alias!r}")
    return f"{alias}.date_of_death IS NULL AND {alias}.left_on IS NULL"


def clause(entity=None) -> ColumnElement[bool]:
    """The same as an SQLAlchemy expression over ``Individual`` (or an alias of it, or a table's ``c``)."""
    if entity is None:
        from isps.registry.models import Individual
        entity = Individual
    cols = getattr(entity, "c", entity)
    return and_(cols.date_of_death.is_(None), cols.left_on.is_(None))


def is_current(person) -> bool:
    """A loaded ``Individual``: alive and still in the household."""
    return person.date_of_death is None and getattr(person, "left_on", None) is None

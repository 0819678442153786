"""Work given to enumerators: households to survey, verification visits, distribution sites; and progress.

A supervisor assigns by area (a tehsil, a union council, or chosen households) to a user of the
district who collects (``field.collect``), set-based: one ``INSERT ... SELECT`` over the district's
households. A household has at most one open survey assignment (partial unique index
``uq_field_assignment_open_household``): assigning it to someone else moves it (the old assignment is
``cancelled``, kept as history, and a new one opened), in two set-based statements.

A visit is an application's ``verify`` step done in the field: assigning it to an enumerator schedules
the visit through ``citizen.applications.service.schedule_visit`` (the one path: the step's owner and
``visit_on``, an application event) when it is not already scheduled for that enumerator. A site is
given to the distribution staff who hand over there (several may share one).

``complete`` is called by ``fieldwork.apply`` when a submission is accepted; ``progress`` counts, in one
grouped query, what was assigned, collected (submissions), accepted, refused, still open and late, per
enumerator or per area.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from isps.access.models import User
from isps.access.service import PERMISSIONS, Principal, audit
from isps.fieldwork.models import DistributionSite, FieldAssignment
from isps.registry.models import Tehsil, UnionCouncil

KINDS = ("survey", "visit", "site")
STATUSES = ("open", "done", "cancelled")
BY = ("enumerator", "area")


class AssignmentError(ValueError):
    """An assignment that cannot be made; the message names the record and the field."""


class OutOfScope(PermissionError):
    """The enumerator, area, application or site lies outside the user's district."""


def collectors(session: Session, district_id: int | None) -> list[str]:
    """The active users of a district who may collect (enumerators, supervisors, district officers)."""
    q = select(User.username).where(User.active.is_(True), User.role.in_(PERMISSIONS["field.collect"]),
                                    User.district_id.is_not(None))
    if district_id is not None:
        q = q.where(User.district_id == district_id)
    return list(session.scalars(q.order_by(User.username)))


def _enumerator(session: Session, who: Principal, username: str) -> User:
    u = session.scalar(select(User).where(User.username == (username or "").strip()))
    if u is None or not u.active or u.role not in PERMISSIONS["field.collect"] or u.district_id is None:
        raise AssignmentError(f"enumerator: '{(username or '')[:40]}' is not an active field user of a district")
    if who.scope is not None and u.district_id != who.scope:
        raise OutOfScope(f"enumerator: {u.username} works outside your district")
    return u


def _union_council(session: Session, district_id: int, tehsil_id: int | None, union_council: str) -> UnionCouncil:
    """A union council of the district by id or by name (within the tehsil when one is given)."""
    q = select(UnionCouncil).join(Tehsil, Tehsil.id == UnionCouncil.tehsil_id).where(Tehsil.district_id == district_id)
    uc = union_council.strip()
    q = q.where(UnionCouncil.id == int(uc)) if uc.isdigit() else q.where(UnionCouncil.name == uc)
    if tehsil_id is not None:
        q = q.where(UnionCouncil.tehsil_id == tehsil_id)
    rows = list(session.scalars(q.limit(2)))
    if len(rows) != 1:
        raise AssignmentError(f"union_council: '{uc[:40]}' is {'not' if not rows else 'more than one'} union council "
                              f"of district {district_id}{' in tehsil ' + str(tehsil_id) if tehsil_id else ''}")
    return rows[0]


def assign(session: Session, who: Principal, *, kind: str, enumerator: str, household_ids: list[int] | None = None,
           tehsil_id: int | None = None, union_council: str | None = None, application_id: int | None = None,
           site_id: int | None = None, due_on: date | None = None, now: datetime | None = None) -> int:
    """Give work to an enumerator of the user's district; how many assignments were made (or moved to
    them). Surveys by area: the households of a tehsil, of a union council, or chosen ones (the
    filters given are combined); a visit: one application; a site: one distribution site."""
    who.require("field.assign")
    now = now or datetime.now()
    if kind not in KINDS:
        raise AssignmentError(f"kind: '{str(kind)[:20]}' is not one of {', '.join(KINDS)}")
    user = _enumerator(session, who, enumerator)
    if due_on is not None and due_on < now.date():
        raise AssignmentError(f"due_on: {due_on.isoformat()} is in the past")
    if kind == "survey":
        n = _assign_surveys(session, who, user, household_ids, tehsil_id, union_council, due_on, now)
    elif kind == "visit":
        n = _assign_visit(session, who, user, application_id, due_on, now)
    else:
        n = _assign_site(session, who, user, site_id, due_on, now)
    audit(session, who, "field", "assign", "field_assignment", None, user.district_id,
          detail=f"{kind} to {user.username}: {n}")
    return n


def _assign_surveys(session: Session, who: Principal, user: User, household_ids: list[int] | None,
                    tehsil_id: int | None, union_council: str | None, due_on: date | None, now: datetime) -> int:
    district = user.district_id
    where, params = ["h.district_id = :d"], {"d": district}
    if tehsil_id is not None:
        t = session.get(Tehsil, tehsil_id)
        if t is None or t.district_id != district:
            raise AssignmentError(f"tehsil_id: tehsil {tehsil_id} is not in district {district}")
        where.append("h.tehsil_id = :t")
        params["t"] = tehsil_id
    if union_council:
        uc = _union_council(session, district, tehsil_id, union_council)
        where.append("h.uc_id = :uc")
        params["uc"] = uc.id
    ids: list[int] = []
    if household_ids:
        ids = sorted({int(h) for h in household_ids})
        found = set(session.execute(text("SELECT id FROM household WHERE district_id = :d AND id IN :ids")
                                    .bindparams(bindparam("ids", expanding=True)), {"d": district, "ids": ids})
                    .scalars())
        missing = [h for h in ids if h not in found]
        if missing:
            raise AssignmentError(f"household_ids: {', '.join(map(str, missing[:5]))}"
                                  f"{' …' if len(missing) > 5 else ''} not households of district {district}")
        where.append("h.id IN :ids")
        params["ids"] = ids
    if len(where) == 1:
        raise AssignmentError("area: choose a tehsil, a union council or households")
    chosen = " AND ".join(where)

    def bound(sql: str):
        t = text(sql)
        return t.bindparams(bindparam("ids", expanding=True)) if ids else t

    params |= {"e": user.username, "by": who.username, "at": now, "due": due_on}
    # reassigning moves it: the open assignments of these households held by someone else are cancelled
    session.execute(bound(f"""UPDATE field_assignment SET status = 'cancelled', done_at = :at
        WHERE kind = 'survey' AND status = 'open' AND enumerator <> :e
          AND household_id IN (SELECT h.id FROM household h WHERE {chosen})"""), params).rowcount
    added = session.execute(bound(f"""INSERT INTO field_assignment (kind, enumerator, district_id, tehsil_id,
            union_council, household_id, status, assigned_by, assigned_at, due_on)
        SELECT 'survey', :e, h.district_id, h.tehsil_id, uc.name, h.id, 'open', :by, :at, :due
        FROM household h LEFT JOIN union_council uc ON uc.id = h.uc_id
        WHERE {chosen} AND NOT EXISTS (SELECT 1 FROM field_assignment a WHERE a.kind = 'survey'
              AND a.status = 'open' AND a.household_id = h.id)"""), params).rowcount
    return added  # a moved household is counted here: it has a new open assignment


def _assign_visit(session: Session, who: Principal, user: User, application_id: int | None, due_on: date | None,
                  now: datetime) -> int:
    from isps.citizen import receipts
    from isps.citizen.applications import service as apps
    from isps.citizen.applications.models import Application

    if not application_id:
        raise AssignmentError("application_id: a visit is assigned for one application")
    app = session.get(Application, application_id)
    if app is None:
        raise AssignmentError(f"application_id: application {application_id} does not exist")
    if app.district_id != user.district_id or (who.scope is not None and app.district_id != who.scope):
        raise OutOfScope(f"application {receipts.make('application', app.id)} is outside the district of "
                         f"{user.username}")
    step = apps.current_step(session, app.id)
    if app.status != "open" or step is None or step.name != "verify":
        raise AssignmentError(f"application_id: application {receipts.make('application', app.id)} is not waiting "
                              "for verification")
    if step.visit_on is None or step.owner != user.username or (due_on and due_on != step.visit_on):
        # the one path that schedules a visit (a second person who may decide the step)
        when = due_on or (step.visit_on if step.visit_on and step.visit_on >= now.date() else now.date() + timedelta(1))
        try:
            step = apps.schedule_visit(session, who, app.id, when, user.username, now=now)
        except apps.NotAllowed:
            raise AssignmentError(
                f"application_id: application {receipts.make('application', app.id)} has "
                + (f"its visit scheduled for {step.owner} on {step.visit_on}" if step.visit_on else "no visit scheduled")
                + f"; a {who.role.replace('_', ' ')} may not schedule it: ask a district officer") from None
    session.execute(text("""UPDATE field_assignment SET status = 'cancelled', done_at = :at
        WHERE kind = 'visit' AND status = 'open' AND application_id = :a"""), {"at": now, "a": app.id})
    session.add(FieldAssignment(kind="visit", enumerator=user.username, district_id=app.district_id,
                                household_id=app.household_id, application_id=app.id, status="open",
                                assigned_by=who.username, assigned_at=now, due_on=step.visit_on))
    session.flush()
    return 1


def _assign_site(session: Session, who: Principal, user: User, site_id: int | None, due_on: date | None,
                 now: datetime) -> int:
    if not site_id:
        raise AssignmentError("site_id: choose a distribution site")
    s = session.get(DistributionSite, site_id)
    if s is None:
        raise AssignmentError(f"site_id: site {site_id} does not exist")
    if s.district_id != user.district_id or (who.scope is not None and s.district_id != who.scope):
        raise OutOfScope(f"site {site_id} is outside the district of {user.username}")
    have = session.scalar(select(FieldAssignment.id).where(FieldAssignment.kind == "site",
                                                           FieldAssignment.site_id == s.id,
                                                           FieldAssignment.enumerator == user.username,
                                                           FieldAssignment.status == "open"))
    if have:
        return 0
    session.add(FieldAssignment(kind="site", enumerator=user.username, district_id=s.district_id,
                                tehsil_id=s.tehsil_id, site_id=s.id, status="open", assigned_by=who.username,
                                assigned_at=now, due_on=due_on or s.closes_on))
    session.flush()
    return 1


def complete(session: Session, *, kind: str, submission_id: int, at: datetime, household_id: int | None = None,
             application_id: int | None = None, site_id: int | None = None) -> int:
    """Close the open assignments an accepted submission did: the household's survey, the application's
    visit; a site's assignments once nothing is left to hand over on its list. How many were closed."""
    params = {"s": submission_id, "at": at}
    if kind == "survey" and household_id is not None:
        where, params["h"] = "kind = 'survey' AND household_id = :h", household_id
    elif kind == "visit" and application_id is not None:
        where, params["a"] = "kind = 'visit' AND application_id = :a", application_id
    elif kind == "site" and site_id is not None:
        where, params["site"] = ("kind = 'site' AND site_id = :site AND NOT EXISTS (SELECT 1 FROM distribution_entry d "
                                 "WHERE d.site_id = :site AND d.handed_over_at IS NULL)"), site_id
    else:
        return 0
    return session.execute(text(f"""UPDATE field_assignment SET status = 'done', done_at = :at, submission_id = :s
        WHERE status = 'open' AND {where}"""), params).rowcount


def open_for(session: Session, username: str, kind: str) -> list[FieldAssignment]:
    """A user's open assignments of one kind, oldest first (what their device's lists are built from)."""
    return list(session.scalars(select(FieldAssignment).where(FieldAssignment.enumerator == username,
                                                              FieldAssignment.kind == kind,
                                                              FieldAssignment.status == "open")
                                .order_by(FieldAssignment.id)))


def progress(session: Session, who: Principal, *, by: str = "enumerator", kind: str | None = None,
             district_id: int | None = None, on: date | None = None) -> list[dict]:
    """Per enumerator (``by="enumerator"``) or per area (``by="area"``: tehsil and union council) of the
    user's district: assignments made (not cancelled), still open, late (open past their due date), and
    submissions collected, accepted, refused; one grouped query over both tables."""
    if by not in BY:
        raise AssignmentError(f"by: '{str(by)[:20]}' is not one of {', '.join(BY)}")
    district = who.scope if who.scope is not None else district_id
    on = on or date.today()
    jobs = {"survey": "survey", "visit": "visit", "site": "receipt"}
    a_where, s_where = ["a.status <> 'cancelled'"], ["1 = 1"]
    params: dict = {"on": on}
    if district is not None:
        a_where.append("a.district_id = :d")
        s_where.append("s.district_id = :d")
        params["d"] = district
    if kind is not None:
        if kind not in KINDS:
            raise AssignmentError(f"kind: '{str(kind)[:20]}' is not one of {', '.join(KINDS)}")
        a_where.append("a.kind = :k")
        s_where.append("s.job = :j")
        params |= {"k": kind, "j": jobs[kind]}
    if by == "enumerator":
        a_key, s_key, s_join = "a.enumerator AS k1, NULL AS k2", "s.username AS k1, NULL AS k2", ""
    else:
        a_key = "a.tehsil_id AS k1, a.union_council AS k2"
        s_key = "h.tehsil_id AS k1, uc.name AS k2"
        s_join = "LEFT JOIN household h ON h.id = s.household_id LEFT JOIN union_council uc ON uc.id = h.uc_id"
    rows = session.execute(text(f"""SELECT k1, k2, SUM(assigned), SUM(still_open), SUM(late), SUM(collected),
            SUM(accepted), SUM(refused)
        FROM (SELECT {a_key}, 1 AS assigned, CASE WHEN a.status = 'open' THEN 1 ELSE 0 END AS still_open,
                     CASE WHEN a.status = 'open' AND a.due_on < :on THEN 1 ELSE 0 END AS late,
                     0 AS collected, 0 AS accepted, 0 AS refused
              FROM field_assignment a WHERE {' AND '.join(a_where)}
              UNION ALL
              SELECT {s_key}, 0, 0, 0, 1, CASE WHEN s.status = 'accepted' THEN 1 ELSE 0 END,
                     CASE WHEN s.status = 'refused' THEN 1 ELSE 0 END
              FROM field_submission s {s_join} WHERE {' AND '.join(s_where)}) t
        GROUP BY k1, k2 ORDER BY k1, k2"""), params).all()
    names = {}
    if by == "area":
        names = dict(session.execute(select(Tehsil.id, Tehsil.name)).all())
    out = []
    for k1, k2, assigned, still_open, late, collected, accepted, refused in rows:
        row = {"enumerator": k1} if by == "enumerator" else \
            {"tehsil_id": k1, "tehsil": names.get(k1, ""), "union_council": k2}
        row |= {"assigned": int(assigned or 0), "open": int(still_open or 0), "late": int(late or 0),
                "collected": int(collected or 0), "accepted": int(accepted or 0), "refused": int(refused or 0)}
        out.append(row)
    return out


__all__ = ["KINDS", "STATUSES", "AssignmentError", "OutOfScope", "collectors", "assign", "complete", "open_for",
           "progress"]

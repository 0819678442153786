"""/api/v1: sign-in, registry reads and edits, PMT models, geography and the audit log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.access import service as access
from isps.access.service import AccessError, AuthError, Principal, audit, audit_trail
from isps.api import schemas
from isps.api.deps import api_principal, bearer_token, client_address, DB, require, tokens
from isps.api.errors import responses
from isps.api.params import After, Id, Limit, Name, QueryId, RequiredDay, Score, Text
from isps.registry.cnic import CnicError
from isps.registry.models import District, Tehsil
from isps.registry.service import OutOfScope, RegistryError
from isps.services import household_file as files
from isps.services.household_file import search_sentence
from isps.targeting import pmt
from isps.targeting.models import PmtModel
from isps.targeting.search import SearchError, search_households

router = APIRouter(prefix="/api/v1")
Reader = Annotated[Principal, Depends(require("registry.read"))]


def _score(f: files.HouseholdFile) -> schemas.Score | None:
    if f.score is None:
        return None
    return schemas.Score(model=f.model_name, model_version=f.model_version, score=round(f.score.score, 2),
                         scored_at=f.score.scored_at)


def _open(session: Session, who: Principal, household_id: int) -> files.HouseholdFile:
    try:
        return files.open_household(session, who, household_id, "api")
    except OutOfScope as exc:
        session.commit()  # keep the audit record of the refusal
        raise HTTPException(403, str(exc)) from None
    except files.NotFound as exc:
        session.commit()
        raise HTTPException(404, str(exc)) from None


@router.post("/auth/token", response_model=schemas.Token, tags=["auth"],
             responses={**responses(401, 403, 422, 429)})
def sign_in(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: DB) -> schemas.Token:
    """Exchange a username and password for a bearer token (OAuth2 password flow). Throttled and
    audited: 5 failures in 15 minutes lock the account until an administrator unlocks it."""
    try:
        who = access.sign_in(session, form.username, form.password, client_address(request), "api")
    except AuthError as exc:
        session.commit()  # the failure's count and audit record are kept
        status = (429 if isinstance(exc, access.TooManyAttempts) else 403 if isinstance(exc, access.AccountLocked)
                  else 401)
        raise HTTPException(status, str(exc)) from None
    return schemas.Token(access_token=tokens(request).issue(session, who, "api"), role=who.role, district_id=who.scope)


@router.post("/auth/logout", status_code=204, tags=["auth"])
def sign_out(request: Request, session: DB, who: Annotated[Principal, Depends(api_principal)]) -> None:
    """Revoke the bearer token sent with this request: it no longer works, in any process."""
    tokens(request).revoke(session, bearer_token(request))
    audit(session, who, "api", "sign_out", "user", detail=f"bearer token revoked from {client_address(request)}")


@router.post("/users/{username}/unlock", tags=["auth"])
def unlock_user(username: str, request: Request, session: DB,
                who: Annotated[Principal, Depends(require("users.manage"))]) -> dict:
    """An administrator unlocks an account locked after failed sign-ins (and clears its count)."""
    try:
        was_locked = access.unlock(session, who, username, "api")
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"username": username, "was_locked": was_locked}


@router.get("/households/{household_id}", response_model=schemas.Household, tags=["registry"])
def read_household(household_id: Id, session: DB, who: Reader) -> schemas.Household:
    """A household with its members and current PMT score. Audited."""
    f = _open(session, who, household_id)
    data = {c: getattr(f.household, c) for c in schemas.Household.model_fields if hasattr(f.household, c)}
    return schemas.Household(**data, district=f.district, tehsil=f.tehsil, pmt=_score(f),
                             members=[schemas.Member.model_validate(m) for m in f.members])


@router.get("/households/{household_id}/history", response_model=list[schemas.HistoryEntry], tags=["registry"])
def read_history(household_id: Id, session: DB, who: Reader) -> list[schemas.HistoryEntry]:
    """Every change to the household and its members, newest first, with source and dates. Audited."""
    _open(session, who, household_id)
    from isps.registry.service import history
    return [schemas.HistoryEntry(**vars(e)) for e in history(session, household_id)]


@router.get("/households/{household_id}/as-of", response_model=schemas.Snapshot, tags=["registry"])
def read_as_of(household_id: Id, on: RequiredDay, session: DB, who: Reader,
               known_by: datetime | None = None) -> schemas.Snapshot:
    """What the registry knew about the household on date `on` (as recorded by `known_by`), and from whom."""
    try:
        snap = files.household_as_of(session, who, household_id, on, known_by, "api")
    except OutOfScope as exc:
        session.commit()
        raise HTTPException(403, str(exc)) from None
    except files.NotFound as exc:
        session.commit()
        raise HTTPException(404, str(exc)) from None
    return schemas.Snapshot(household_id=snap.household_id, on=snap.on, known_by=snap.known_by,
                            household={k: vars(v) for k, v in snap.household.items()},
                            members={i: {k: vars(v) for k, v in m.items()} for i, m in snap.members.items()})


@router.patch("/households/{household_id}", response_model=schemas.ChangeResult, tags=["registry"])
def change_household(household_id: Id, body: schemas.HouseholdChange, session: DB,
                     who: Annotated[Principal, Depends(require("registry.write"))]) -> schemas.ChangeResult:
    """Change indicators of a household; the change is kept with its source and the PMT re-scored."""
    try:
        changed = files.edit_household(session, who, household_id, body.changes, files.USER_SOURCE,
                                       body.effective_date, body.source_ref, "api")
    except OutOfScope as exc:
        session.commit()
        raise HTTPException(403, str(exc)) from None
    except (RegistryError, AccessError) as exc:
        raise HTTPException(422 if isinstance(exc, RegistryError) else 403, str(exc)) from None
    f = files.open_household(session, who, household_id, "api")
    return schemas.ChangeResult(changed=changed, pmt=_score(f))


@router.get("/individuals/by-cnic/{cnic}", response_model=list[schemas.Person], tags=["registry"])
def read_by_cnic(cnic: Annotated[str, Path(max_length=40)], session: DB, who: Reader) -> list[schemas.Person]:
    """The person (or persons, where a CNIC is registered twice) holding a CNIC. Audited."""
    try:
        people = files.lookup_cnic(session, who, cnic, "api")
    except CnicError as exc:
        raise HTTPException(422, str(exc)) from None
    except OutOfScope as exc:
        session.commit()
        raise HTTPException(403, str(exc)) from None
    except files.NotFound as exc:
        session.commit()
        raise HTTPException(404, str(exc)) from None
    return [schemas.Person.model_validate(p) for p in people]


@router.get("/households", response_model=schemas.HouseholdPage, tags=["registry"])
def search(session: DB, who: Reader, district_id: QueryId = None, tehsil_id: QueryId = None,
           pmt_min: Score = None, pmt_max: Score = None, name: Name = None,
           after: After = None, limit: Limit(500) = 50) -> schemas.HouseholdPage:
    """Households by district, tehsil, PMT range and head's name; a page at a time (pass `next_after` on)."""
    model = pmt.active_model(session)
    try:
        page = search_households(session, district_id=district_id, tehsil_id=tehsil_id, pmt_min=pmt_min,
                                 pmt_max=pmt_max, name=name, model_id=model.id if model else None, after=after,
                                 limit=limit, district_scope=who.scope)
    except OutOfScope as exc:
        audit(session, who, "api", "search", "household", district_id=district_id, outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} of district {who.scope} asked for households of "
                     f"district {district_id}" + (f" (tehsil {tehsil_id})" if tehsil_id else ""))
        session.commit()  # keep the audit record of the refusal
        raise HTTPException(403, str(exc)) from None
    except SearchError as exc:
        raise HTTPException(422, str(exc)) from None
    audit(session, who, "api", "search", "household", district_id=district_id or who.scope,
          detail=search_sentence(tehsil_id, pmt_min, pmt_max, name, len(page.rows)))
    return schemas.HouseholdPage(items=[schemas.HouseholdRow(**r) for r in page.rows], next_after=page.next_after)


@router.get("/geography/districts", tags=["geography"])
def districts(session: DB, who: Reader) -> list[dict]:
    """Punjab's districts with their tehsils."""
    tehsils: dict[int, list[dict]] = {}
    for t in session.scalars(select(Tehsil).order_by(Tehsil.id)):
        tehsils.setdefault(t.district_id, []).append({"id": t.id, "name": t.name})
    return [{"id": d.id, "name": d.name, "name_ur": d.name_ur, "tehsils": tehsils.get(d.id, [])}
            for d in session.scalars(select(District).order_by(District.name))]


@router.get("/pmt/models", tags=["targeting"])
def pmt_models(session: DB, who: Reader) -> list[dict]:
    """PMT model versions with their status and their coefficients per region."""
    out = []
    for m in session.scalars(select(PmtModel).order_by(PmtModel.id)):
        coefs = pmt.coefficients(session, m.id)
        out.append({"id": m.id, "name": m.name, "version": m.version, "status": m.status,
                    "description": m.description, "score_floor": m.score_floor, "score_ceiling": m.score_ceiling,
                    "activated_at": m.activated_at,
                    "coefficients": [{"region": c.region, "indicator": c.indicator, "level": c.level,
                                      "weight": c.weight} for c in coefs]})
    return out


@router.get("/audit", response_model=list[schemas.AuditEntry], tags=["audit"])
def read_audit(session: DB, who: Annotated[Principal, Depends(require("audit.read"))], entity: Text = None,
               entity_id: QueryId = None, actor: Text = None, before_id: QueryId = None,
               limit: Limit(1000) = 200) -> list[schemas.AuditEntry]:
    """Who read or changed which record, when and through which channel; newest first."""
    return [schemas.AuditEntry.model_validate(a) for a in
            audit_trail(session, entity=entity, entity_id=entity_id, actor=actor, limit=limit, before_id=before_id)]


@router.get("/me", tags=["auth"])
def me(who: Annotated[Principal, Depends(api_principal)]) -> dict:
    return {"username": who.username, "role": who.role, "district_id": who.scope}

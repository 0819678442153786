"""A registration verified and then scored: the one place that needs both the One Window
(``citizen.applications``) and the events' drain (``services.events``), which citizen/ may not import.

The verification is the officer's act (one transaction: the household enters the registry with its
``household.created`` event); the scoring follows through the events like any other change
(:func:`isps.services.events.drain`: the PMT re-scores the new household, the programs re-assess
it, and ``citizen.applications.process_events`` disposes the application "registered"). The page
verifies at once and starts the drain in the background (:mod:`isps.services.jobs`), so it answers
at once and shows the score when the job is done.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from isps.access.service import Principal, audit
from isps.citizen import applications
from isps.db import transaction
from isps.services import jobs

JOB = "application.score"


def score_after_verification(engine: Engine) -> dict:
    """Run the events' consumers: the new household is scored, re-assessed, and its application disposed."""
    from isps.services.events import drain

    return drain(engine)


def verify_and_score(engine: Engine, who: Principal, application_id: int, note: str | None = None,
                     channel: str = "web", now: datetime | None = None) -> dict:
    """Verify a staged registration (a second person) and score it, in the caller's thread: the
    CLI's and tests' path; pages use :func:`start_scoring` after :func:`verify`."""
    with transaction(engine) as s:
        verify(s, who, application_id, note, channel, now)
    score_after_verification(engine)
    with transaction(engine) as s:
        return applications.status_of(s, application_id) or {}


def verify(session: Session, who: Principal, application_id: int, note: str | None = None, channel: str = "web",
           now: datetime | None = None):
    """The verification and its audit record, in the caller's transaction."""
    household = applications.verify(session, who, application_id, note, now)
    audit(session, who, channel, "verify", "application", application_id, household.district_id,
          detail=f"registration verified: household {household.ref} ({household.id})")
    return household


def start_scoring(engine: Engine, who: Principal, application_id: int) -> jobs.Job:
    """The drain in the background (the page polls the job, then shows the score and eligibility)."""
    def work(session: Session, progress) -> dict:
        progress("scoring the household and re-assessing its eligibility")
        result = score_after_verification(engine)
        return {"application_id": application_id, "rescored": result.get("rescored", 0),
                "registrations_disposed": result.get("registrations_disposed", 0)}

    return jobs.start(engine, JOB, who.username, f"application {application_id}", work)

"""The registry's events, acted on by every module above it, in dependency order.

A lower module never calls a higher one: a NADRA death is written to the registry with a
``member.deceased`` event in the outbox, in the same transaction. Each consumer keeps its own
cursor and acts on the events past it. :func:`drain` is the one place that runs them all, bottom
up, so that each sees what the one below it did:

1. targeting re-scores the households named (``household.changed``, ``member.deceased`` ...) and
   records ``household.crossed_cutoff`` where the active score moved across the cut-off;
2. programs re-assess eligibility for the households named (``programs.reassessment``): the newly
   eligible go through the one enrolment path ("eligible after registry update"), enrolments no
   longer eligible are flagged for an officer's review, never ended by a feed;
3. programs end the enrolments of the dead, pass a benefit whose recipient died to another adult
   member, and fill the freed places from the waiting list;
4. programs flag for an officer's review the enrolments a partner's list resolved since shows to be
   duplicate benefits (``programs.duplicates``: never ended by a list);
5. payments stop every instruction not yet sent for a person who has died (money back to the fund)
   and count those already sent for recall;
6. the One Window disposes the applications decided below it: a change application whose change
   request was approved or rejected, a registration whose new household is now scored.

It runs after every feed delivery (in the background of the API call, at the end of ``isps feeds
apply``), every few seconds in ``isps worker`` (task ``events``), and may be run at any time
(``isps events``); running it again does nothing new. Runs never overlap, whichever process starts
them: :func:`drain` holds the ``events`` lease (:mod:`isps.services.leases`, the same lease the
worker's task takes) for as long as it runs, and waits for it when another process has it.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from isps.db import transaction
from isps.services import leases

LEASE = "events"        # the worker's task of the same name holds it too
WAIT_SECONDS = 900.0    # a caller waits this long for a run in another process to end


def drain(engine: Engine, on: date | None = None, wait: float = WAIT_SECONDS) -> dict:
    """Run every consumer of registry events once (:func:`run_consumers`), never at the same time
    as another run in any process: waits up to ``wait`` seconds for the ``events`` lease (raises
    :class:`isps.services.leases.Busy` after that)."""
    with leases.held(engine, LEASE, wait=wait):
        return run_consumers(engine, on)


def run_consumers(engine: Engine, on: date | None = None) -> dict:
    """Run every consumer of registry events once, each in its own transaction, bottom up, by a
    caller that holds the ``events`` lease (:func:`drain` or the worker's task). Returns
    the households re-scored (``rescored``) and re-assessed (``reassessed``), those listed and enrolled
    after the update, the enrolments flagged for review (and cleared), and the payments' counts
    (``stopped``, ``to_recall``, ``enrolments_ended``, ``promoted``)."""
    from isps.citizen import applications
    from isps.interop.feeds import after_delivery
    from isps.payments.payroll import stop_for_deaths
    from isps.programs import duplicates, reassessment

    rescored = after_delivery(engine, on=on)
    with transaction(engine) as s:
        re = reassessment.process_events(s, on=on)
    with transaction(engine) as s:
        dup = duplicates.process_events(s, on=on)
    with transaction(engine) as s:
        payments = stop_for_deaths(s, on=on)
    with transaction(engine) as s:
        citizen = applications.process_events(s)
    return {**citizen, "rescored": rescored, "reassessed": re["households"], "listed_after_update": re["listed"],
            "enrolled_after_update": re["enrolled"], "flagged_for_review": re["flagged"],
            "reviews_cleared": re["cleared"], "duplicates_flagged": dup["flagged"], **payments}

"""The One Window's applications: registration of a never-surveyed household, a program
application or referral, a change (an appeal of a PMT score or an exclusion, a data correction),
each tracked from its receipt to its final disposal through steps with owners, service-level
times and escalation. See :mod:`isps.citizen.applications.service`."""

from isps.citizen.applications.models import Application, ApplicationEvent, ApplicationStep
from isps.citizen.applications.service import (CHANNELS, CONSUMER, DECIDED, DISPOSALS, KINDS, ApplicationError,
                                               NotAllowed, OutOfScope, applications_of, current_step, decide,
                                               dispose, escalate_late, get, history, note, open_application,
                                               process_events, record_visit, schedule_visit, status_of, steps,
                                               steps_of, verify)

__all__ = ["Application", "ApplicationEvent", "ApplicationStep", "CHANNELS", "CONSUMER", "DECIDED", "DISPOSALS",
           "KINDS", "ApplicationError", "NotAllowed", "OutOfScope", "applications_of", "current_step", "decide",
           "dispose", "escalate_late", "get", "history", "note", "open_application", "process_events",
           "record_visit", "schedule_visit", "status_of", "steps", "steps_of", "verify"]

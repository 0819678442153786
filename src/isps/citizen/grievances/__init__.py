"""Grievance redress for every program (issue 11): filing, routing, escalation, resolution with a root
cause, the citizen's confirmation or reopening, and the analytics of causes. The contract others code
against is re-exported here."""

from isps.citizen.grievances.service import (CATEGORIES, CHANNELS, ROOT_CAUSES, GrievanceError, NotFound, confirm,
                                             escalate_late, file_grievance, grievances_of, status_of)

__all__ = ["CATEGORIES", "CHANNELS", "ROOT_CAUSES", "GrievanceError", "NotFound", "file_grievance", "status_of",
           "grievances_of", "escalate_late", "confirm"]

"""The citizen's door: the One Window counter, applications and their steps, grievance redress, the
SMS short code and the citizen's own pages (issue 11).

Sits above ``programs/`` and ``payments/`` (an application for a program ends in the one enrolment
path; a grievance about a payment links the instruction and its ledger trail) and above
``messaging/`` (receipts, status replies and one-time codes are messages of the one outbound queue).
Nothing below imports it.
"""

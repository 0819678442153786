"""Field work without a network (issue 17): surveys, verification visits, distribution hand-overs and
grievance intake collected on ODK Collect / KoboCollect (ISPS speaks OpenRosa) or in the browser offline.

Above ``citizen/`` (a visit completes an application's step, an intake files a grievance) and
``payments/`` (a site's cash list comes from a payroll's pickup slots); below ``services/`` and the
adapters. The parts:

* ``forms``: the XLSForms kept in ``fieldwork/data/forms`` (English and Urdu), converted with pyxform,
  and the reader of a submitted instance;
* ``media``: the pre-loaded lists a form needs (places, the enumerator's assignments, a site's list);
* ``devices``: devices registered to a user and a district, and their authentication (token or digest);
* ``inbox``: submissions kept idempotent by ``instanceID``, attachments, refusals with their reason;
* ``apply``: what a submission becomes (value changes with source ``survey``, a visit's outcome, a
  hand-over, a grievance), set-based for batches;
* ``assignments``: households, visits and sites given to enumerators by area, and progress;
* ``distribution``: distribution sites, their lists (cash from pickup slots, or in-kind items) and
  the hand-over, marked once.
"""

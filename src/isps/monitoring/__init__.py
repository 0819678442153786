"""Monitoring, evaluation and the delivery unit (issue 14): is ISPS working, and who can see it.

At the top of the domain (below ``services/`` and the adapters): it reads the registry, the SBR,
enrolments, payments, grievances, applications, feeds and field work set-based, and nothing below
imports it. The parts:

* ``catalogue``: the indicators as data (``monitoring/data/indicators.json``): code, English and Urdu
  title and definition, unit, which direction is better, the breakdowns it has, the list behind it;
* ``indicators``: one computation per month (``indicator_run``) writing every indicator's values by
  breakdown (``indicator_value``), set-based SQL; a run is kept, never updated, so what was known on a
  date is the newest run made by then;
* ``pdf``: PDF documents in English and Urdu (shaped with HarfBuzz), with tables and charts;
* ``packs``: the program review pack and the District Social Protection Committee pack (PDF, Excel);
* ``delivery``: the delivery unit's priorities, targets and trajectories, baselines and their justified
  changes, the monthly data routine, stocktake packs, minutes and actions, league tables;
* ``public``: the public transparency figures, small cells suppressed with complementary suppression.
"""

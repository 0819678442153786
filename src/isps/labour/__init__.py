"""Labour and local registries: the people the household survey misses (DOMAIN 001 §3.2).

Each register has its own door and attaches its records to registry persons (by CNIC) with source
and date: employers' and contractors' uploads (:mod:`.uploads`: PESSI/EOBI contributions, ADP
contractor labour, domestic, home-based, auto-workshop, hotel and fuel-station workers),
shopkeepers with a printable certificate (:mod:`.shops`), daily wagers at booths with a rotation
of offered work (:mod:`.wagers`), laid-off workers and the job board (:mod:`.jobs`), and the
quarterly self-report of employment status (:mod:`.reports`).

What the registers say about a person's labour status reaches the registry as the feeds' changes
do (:mod:`.status`, source ``labour``), so the PMT re-scoring and the vulnerability index follow
through the registry's events. The module sits above ``interop/`` (it writes through the feed
framework's set-based change writer) and beside ``linkage/`` and ``targeting/``, which it never
imports; the tables are in :mod:`.models` (migration ``0015_labour``). Formats: ``docs/labour.md``.
"""

"""``isps sbr``: the Single Beneficiary Registry from the command line — the program catalogue,
partner lists (files), identity resolution, the review queue, merges and the duplication reports.

Register with ``app.add_typer(linkage_app, name="sbr")`` in :mod:`isps.cli.main`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from isps.cli.common import Table
from isps.db import transaction

linkage_app = typer.Typer(help="Single Beneficiary Registry: partner lists, identity resolution, duplicates.",
                          no_args_is_help=True)


@linkage_app.command("catalogue")
def catalogue_cmd(pillar: Annotated[Optional[str], typer.Option(help="social_assistance, social_insurance, "
                                                                     "labour_market or social_care")] = None) -> None:
    """List the program catalogue."""
    from isps.cli.common import _engine, console
    from isps import catalogue

    table = Table("code", "program", "agency", "pillar", "life stage", "benefit", "PKR a year")
    with transaction(_engine()) as s:
        for p in catalogue.programs(s, pillar=pillar):
            table.add_row(p.code, p.name, p.agency, p.pillar, p.life_stage, p.benefit_type,
                          f"{p.yearly_value:,.0f}" if p.yearly_value else "—")
    console.print(table)


@linkage_app.command("ingest")
def ingest_cmd(program: str, path: Path, partner: Annotated[str, typer.Option(help="who sent the list")],
               actor: Annotated[str, typer.Option(help="who is loading it")] = "cli",
               reference: Annotated[Optional[str], typer.Option(help="the partner's reference (default: file name)")] = None,
               report: Annotated[Optional[Path], typer.Option(help="write the row-by-row report (CSV) here")] = None) -> None:
    """Take a partner's beneficiary list (CSV, Parquet or Excel) for a program."""
    from isps.cli.common import _engine, _fail, console
    from isps.linkage import ingest

    try:
        rep = ingest.ingest_file(_engine(), program, path, partner=partner, actor=actor, reference=reference)
    except ingest.IngestError as exc:
        _fail(str(exc))
    console.print(rep.summary())
    for p in rep.problems[:50]:
        console.print(f"  {p}")
    if len(rep.problems) > 50:
        console.print(f"  … and {len(rep.problems) - 50} more")
    if report:
        rep.write_csv(report)
        console.print(f"report written to {report}")
    _flag_duplicates()


def _flag_duplicates() -> None:
    """After a list is resolved: programs flag for review the enrolments it shows to be duplicates."""
    from isps.cli.common import _engine, console
    from isps.services.events import drain

    flagged = drain(_engine())["duplicates_flagged"]
    if flagged:
        console.print(f"{flagged:,} enrolments flagged for an officer's review: the list shows another benefit "
                      "they cannot be combined with (web: the program's enrolment page)")


@linkage_app.command("resolve")
def resolve_cmd(actor: str = "cli", accept_weight: float = 8.0, review_weight: float = 2.0) -> None:
    """Resolve every line not yet resolved: exact CNIC, then probabilistic linkage (Splink)."""
    from isps.cli.common import _engine, console
    from isps.linkage import resolve

    rep = resolve.resolve(_engine(), actor=actor, accept_weight=accept_weight, review_weight=review_weight)
    console.print(rep.summary())
    _flag_duplicates()


@linkage_app.command("review")
def review_cmd(limit: int = 20) -> None:
    """Show pairs waiting for clerical review: the partner's line (program, reference, district,
    masked CNIC) beside the registry person, with each field's weight and any reason it was held."""
    from isps.cli.common import _engine, console
    from isps.linkage import persons
    from isps.registry import geography
    from isps.registry.cnic import mask

    district = {d.id: d.name for d in geography.districts()}

    def side(p) -> str:
        dob = p.date_of_birth.isoformat() if p.date_of_birth else "—"
        where = district.get(p.district_id, "—") if p.district_id is not None else "—"
        return (f"{p.full_name or '—'} / {p.father_husband_name or '—'} / born {dob} / {where} / "
                f"CNIC {mask(p.cnic) if p.cnic else '—'}")

    with transaction(_engine()) as s:
        items = persons.review_queue(s, limit=limit)
        if not items:
            console.print("no pairs waiting for review")
        for item in items:
            c, b, i = item.candidate, item.beneficiary, item.individual
            console.print(f"[bold]pair {c.id}[/bold] weight {c.match_weight:+.1f}: "
                          f"{b.program_code} line {b.partner_ref}: {side(b)}")
            console.print(f"   ~ registry {c.individual_id}: {side(i) if i else 'no longer in the registry'}")
            console.print("   " + "; ".join(f"{e['field']}: {e['level']} {e['weight']:+.1f}" for e in c.explanation))


@linkage_app.command("decide")
def decide_cmd(candidate_id: int, accept: Annotated[bool, typer.Option("--accept/--reject")],
               actor: str = "cli") -> None:
    """Accept or reject a review pair."""
    from isps.cli.common import _engine, _fail, console
    from isps.linkage import persons

    try:
        with transaction(_engine()) as s:
            c = persons.decide(s, candidate_id, accept, actor)
            console.print(f"pair {c.id}: {c.status}")
    except persons.LinkageError as exc:
        _fail(str(exc))


@linkage_app.command("merge")
def merge_cmd(person_a: int, person_b: int, actor: str = "cli", reason: str = "") -> None:
    """Two persons are one (the smaller id survives)."""
    from isps.cli.common import _engine, _fail, console
    from isps.linkage import persons

    try:
        with transaction(_engine()) as s:
            h = persons.merge(s, person_a, person_b, actor, reason)
            console.print(f"merged {h.other_person_id} into {h.person_id} (history {h.id})")
    except persons.LinkageError as exc:
        _fail(str(exc))


@linkage_app.command("unmerge")
def unmerge_cmd(history_id: int, actor: str = "cli") -> None:
    """Undo a merge by its history id."""
    from isps.cli.common import _engine, _fail, console
    from isps.linkage import persons

    try:
        with transaction(_engine()) as s:
            h = persons.unmerge(s, history_id, actor)
            console.print(f"person {h.person_id} restored (history {h.id})")
    except persons.LinkageError as exc:
        _fail(str(exc))


@linkage_app.command("report")
def report_cmd(name: Annotated[str, typer.Argument(help="same_kind, household_overlaps, household_ceiling, "
                                                        "overlap_matrix or by_district_program")],
               program: Optional[str] = None, district: Optional[int] = None, ceiling: float = 150_000.0,
               csv: Annotated[Optional[Path], typer.Option(help="write the whole report here as CSV")] = None) -> None:
    """A duplication or concentration report."""
    from isps.cli.common import _engine, _fail, console
    from isps.linkage import reports

    if name not in reports.REPORTS:
        _fail(f"no report '{name}'; reports: {', '.join(reports.REPORTS)}")
    with transaction(_engine()) as s:
        rows = reports.run_report(s, name, district_id=district, program=program, ceiling=ceiling)
    if csv:
        csv.write_text(reports.to_csv(rows, name), encoding="utf-8")
        console.print(f"{len(rows)} rows written to {csv}")
        return
    if not rows:
        console.print("nothing to report")
        return
    dicts = [asdict(r) for r in rows[:100]]
    table = Table(*dicts[0].keys())
    for d in dicts:
        table.add_row(*(str(v) for v in d.values()))
    console.print(table)
    console.print(f"{len(rows)} rows")

"""``isps feeds`` and ``isps recert``: NSER Plus deliveries from other registries, conflicts between
sources, and households due for re-certification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from isps.cli.common import Table
from isps.db import transaction

feeds_app = typer.Typer(help="Data feeds from NADRA, DISCOs, telcos, Excise, land records, payrolls, NGOs, banks.",
                        no_args_is_help=True)
recert_app = typer.Typer(help="Re-certification of households not verified for a while.", no_args_is_help=True)


@feeds_app.command("apply")
def apply(feed: str, path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
          reference: Annotated[Optional[str], typer.Option(help="the delivery's own reference (default: file name)")] = None,
          actor: Annotated[str, typer.Option()] = "cli",
          errors: Annotated[Optional[Path], typer.Option(help="write rejected rows here (CSV)")] = None) -> None:
    """Apply one delivery (CSV or Parquet) with a row-by-row report, then act on its events: re-score
    what changed, end the enrolments of people who died and stop their unsent payments."""
    from isps.cli.common import _engine, _fail, console
    from isps.interop import feeds

    engine = _engine()
    try:
        with console.status(f"applying {feed} delivery"):
            report = feeds.apply_delivery(engine, feed, path, reference=reference or path.name, actor=actor)
    except feeds.FeedError as exc:
        _fail(str(exc))
    console.print(report.summary())
    for line in report.lines()[:200]:
        console.print(f"  [yellow]{line}[/yellow]")
    if errors:
        report.write_csv(errors)
    _drain(engine, console)


def _drain(engine, console) -> None:
    from isps.services.events import drain

    with console.status("acting on the delivery's events: re-scoring, enrolments, payments"):
        out = drain(engine)
    console.print(f"re-scored {out['rescored']:,} households; re-assessed {out['reassessed']:,} for the running "
                  f"programs: {out['listed_after_update']:,} newly eligible listed ({out['enrolled_after_update']:,} "
                  f"enrolled), {out['flagged_for_review']:,} enrolments flagged for review")
    console.print(f"{out['enrolments_ended']:,} enrolments ended by a death, {out['promoted']:,} enrolled from "
                  f"waiting lists; {out['stopped']:,} unsent payments stopped, {out['to_recall']:,} sent ones to recall")


@feeds_app.command("events")
def events_cmd() -> None:
    """Act on the registry's events now (after feeds, edits, imports): re-score, end the enrolments of
    the dead and fill their places, stop their unsent payments. Running it again does nothing new."""
    from isps.cli.common import _engine, console

    _drain(_engine(), console)


@feeds_app.command("sample")
def sample(feed: str, out: Path, n: Annotated[int, typer.Option("-n")] = 1000,
           seed: Annotated[int, typer.Option()] = 1) -> None:
    """Write a synthetic delivery consistent with the registry (CSV or Parquet by the suffix)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from isps.cli.common import _engine, _fail, console
    from isps.interop import feeds

    try:
        table = feeds.generate_sample(_engine(), feed, n, seed)
    except feeds.FeedError as exc:
        _fail(str(exc))
    (pq.write_table if out.suffix == ".parquet" else pacsv.write_csv)(table, str(out))
    console.print(f"{table.num_rows:,} {feed} records written to {out}")


@feeds_app.command("conflicts")
def conflicts(limit: Annotated[int, typer.Option()] = 50) -> None:
    """Open conflicts between sources, for an operator to settle."""
    from isps.cli.common import _engine, console
    from isps.interop import feeds

    with transaction(_engine()) as s:
        rows = feeds.list_conflicts(s, limit=limit)
    table = Table("id", "record", "field", "kept (source, since)", "offered (source, effective)", "reference")
    for c in rows:
        table.add_row(str(c.id), f"{c.entity} {c.entity_id}", c.field, f"{c.kept_value} ({c.kept_source}, {c.kept_since})",
                      f"{c.offered_value} ({c.offered_source}, {c.offered_effective})", c.source_ref or "")
    console.print(table if rows else "no open conflicts")


@recert_app.command("due")
def due(older_than_days: Annotated[int, typer.Option()] = 1095,
        limit: Annotated[int, typer.Option()] = 50) -> None:
    """Households not verified for ``older_than_days`` days, by district and the oldest first."""
    from isps.cli.common import _engine, _fail, console
    from isps.interop.feeds import changes
    from isps.registry.geography import districts

    names = {d.id: d.name for d in districts()}
    try:
        with transaction(_engine()) as s:
            counts = changes.count_recertification_due(s, older_than_days)
            rows = changes.recertification_due(s, older_than_days, limit=max(1, limit), oldest_first=True)
    except changes.ChangeRequestError as exc:
        _fail(str(exc))
    console.print(f"{sum(counts.values()):,} households due: " +
                  ", ".join(f"{names[d]} {n:,}" for d, n in sorted(counts.items(), key=lambda kv: -kv[1])[:10]))
    for r in rows:
        console.print(f"  household {r.household_id} ({r.ref}), {names[r.district_id]}: "
                      f"last verified {r.verified_on}, {r.days_since:,} days ago")

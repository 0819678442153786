"""Stream a synthetic province into the registry, chunk by chunk, in one ingest batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
from sqlalchemy import Engine, func, select, text

from isps.registry.bulk import deferred_constraints, insert_arrow
from isps.registry.ids import HOUSEHOLD_RANGE, INDIVIDUAL_RANGE
from isps.registry.models import Household, IngestBatch, Individual
from isps.synth.generator import Chunk, DirtOptions, generate

BULK_TABLES = ["household", "individual", "household_consumption", "synth_truth"]


class SynthError(RuntimeError):
    pass


@dataclass
class LoadReport:
    batch_id: int
    households: int
    individuals: int
    duplicate_households: int


def _district_counts(conn, model, range_size: int) -> dict[int, int]:
    """How far each district's id range is used already."""
    rows = conn.execute(select(model.district_id, func.max(model.id)).group_by(model.district_id))
    return {int(d): int(mx) - int(d) * range_size for d, mx in rows}


def _constant(value: int, n: int) -> pa.Array:
    return pa.array(np.full(n, value, dtype=np.int64))


def _prefetched(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """Generate the next chunk on a worker thread while the database stores this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


def load_synthetic(engine: Engine, households: int, seed: int, dirt: DirtOptions | None = None,
                   progress: Callable[[int], None] | None = None, actor: str = "synth") -> LoadReport:
    """Generate and store ``households`` households; ``progress`` is told how many landed."""
    with engine.begin() as conn:
        if conn.scalar(select(Household.id).where(Household.ref == f"SYN{seed}-00000000")) is not None:
            raise SynthError(f"households of seed {seed} are already loaded; choose another --seed")
        hh_counts = _district_counts(conn, Household, HOUSEHOLD_RANGE)
        ind_counts = _district_counts(conn, Individual, INDIVIDUAL_RANGE)
        batch_id = conn.execute(IngestBatch.__table__.insert().values(
            source="synthetic", reference=f"isps synth --households {households} --seed {seed}",
            effective_date=date(2023, 12, 31), actor=actor).returning(IngestBatch.id)).scalar_one()
    start = {d: (hh_counts.get(d, 0), ind_counts.get(d, 0)) for d in set(hh_counts) | set(ind_counts)}
    totals = {"households": 0, "individuals": 0, "duplicates": 0}

    def store(conn, chunk) -> None:
        n_h = chunk.households.num_rows
        insert_arrow(conn, "household", chunk.households.append_column("batch_id", _constant(batch_id, n_h)))
        insert_arrow(conn, "individual", chunk.individuals.append_column(
            "batch_id", _constant(batch_id, chunk.individuals.num_rows)))
        insert_arrow(conn, "household_consumption", chunk.consumption.append_column(
            "source", pa.array(["synthetic_truth"] * n_h)))
        insert_arrow(conn, "synth_truth", chunk.truth)
        totals["households"] += n_h
        totals["individuals"] += chunk.individuals.num_rows
        totals["duplicates"] += chunk.stats.get("duplicate_households", 0)
        if progress:
            progress(n_h)

    chunks = _prefetched(generate(households, seed, dirt, start_counts=start))
    first_load = not hh_counts and engine.dialect.name == "postgresql"
    if first_load:
        # an empty registry: one transaction, constraints checked set-based at the end
        with engine.begin() as conn, deferred_constraints(conn, BULK_TABLES):
            for chunk in chunks:
                store(conn, chunk)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE " + ", ".join(BULK_TABLES)))
    else:
        # a registry in use: each chunk commits on its own, constraints checked as rows arrive
        for chunk in chunks:
            with engine.begin() as conn:
                store(conn, chunk)
    total_h, total_i, dups = totals["households"], totals["individuals"], totals["duplicates"]
    with engine.begin() as conn:
        conn.execute(IngestBatch.__table__.update().where(IngestBatch.id == batch_id).values(
            summary={"households": total_h, "individuals": total_i, "duplicate_households": dups}))
    return LoadReport(batch_id, total_h, total_i, dups)

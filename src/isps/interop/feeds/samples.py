"""Helpers of the synthetic sample generators: real records of the registry, drawn set-based.

Each generator draws the people or households its records are about from the registry (so
records match), with NumPy over whole arrays and a seed, and returns an Arrow table in the
feed's documented format (as a partner would send it).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import text
from sqlalchemy.orm import Session
from isps.registry import current


def rng_for(seed: int, feed: str) -> np.random.Generator:
    return np.random.default_rng([seed, sum(feed.encode())])


def people(session: Session, n: int, rng: np.random.Generator, where: str = "1=1", adults: bool = True) -> dict:
    """Up to ``n`` distinct living individuals with an identity number, drawn at random from a window
    of the registry (columns as NumPy arrays)."""
    doc = "i.id_document = 'cnic'" if adults else "i.id_document = 'bform'"
    total = session.scalar(text(f"SELECT COUNT(*) FROM individual i WHERE i.cnic IS NOT NULL AND "
                                f"{current.sql('i')} AND {doc} AND {where}")) or 0
    if total == 0:
        return {"id": np.zeros(0, dtype=np.int64)}
    take = min(total, max(n * 2, n + 100))
    offset = int(rng.integers(0, max(total - take, 0) + 1))
    rows = session.execute(text(
        f"SELECT i.id, i.household_id, i.cnic, i.sex, i.date_of_birth, i.marital_status, i.relation_to_head, "
        f"h.ref FROM individual i JOIN household h ON h.id = i.household_id "
        f"WHERE i.cnic IS NOT NULL AND {current.sql('i')} AND {doc} AND {where} "
        f"ORDER BY i.id LIMIT {take} OFFSET {offset}")).all()
    cols = [np.asarray(c, dtype=object) for c in zip(*rows)]
    pick = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    names = ("id", "household_id", "cnic", "sex", "date_of_birth", "marital_status", "relation_to_head", "ref")
    return {k: c[pick] for k, c in zip(names, cols)}


def households(session: Session, n: int, rng: np.random.Generator, columns: str = "", where: str = "1=1") -> dict:
    total = session.scalar(text(f"SELECT COUNT(*) FROM household h WHERE {where}")) or 0
    if total == 0:
        return {"id": np.zeros(0, dtype=np.int64)}
    take = min(total, max(n * 2, n + 100))
    offset = int(rng.integers(0, max(total - take, 0) + 1))
    extra = (", " + columns) if columns else ""
    rows = session.execute(text(f"SELECT h.id, h.ref, h.district_id{extra} FROM household h WHERE {where} "
                                f"ORDER BY h.id LIMIT {take} OFFSET {offset}")).all()
    cols = [np.asarray(c, dtype=object) for c in zip(*rows)]
    pick = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    names = ["id", "ref", "district_id", *[c.strip().split(".")[-1].split(" ")[-1] for c in columns.split(",") if c.strip()]]
    return {k: c[pick] for k, c in zip(names, cols)}


def dates(rng: np.random.Generator, n: int, first: date = date(2025, 1, 1), last: date = date(2026, 6, 30)) -> pa.Array:
    lo, hi = np.datetime64(first, "D"), np.datetime64(last, "D")
    days = rng.integers(0, int((hi - lo).astype(int)) + 1, n)
    return pa.array(lo + days.astype("timedelta64[D]"))


def refs(prefix: str, seed: int, n: int) -> pa.Array:
    return pa.array((f"{prefix}-{seed}-" + np.char.zfill(np.arange(1, n + 1).astype(str), 8).astype(object)).tolist(),
                    pa.string())


def written_cnic(numbers: np.ndarray) -> pa.Array:
    """13 digits as NNNNN-NNNNNNN-N, the way NADRA writes them (Arrow string kernels, no row loop)."""
    a = pa.array(numbers.astype(str).tolist(), pa.string())
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(a, 0, 5), pc.utf8_slice_codeunits(a, 5, 12),
                                       pc.utf8_slice_codeunits(a, 12, 13), "-")

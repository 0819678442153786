"""Name normalisation for linkage: one canonical spelling per transliteration variant.

``Mohammad``, ``Muhammed`` and ``M.`` are all written ``muhammad``; ``Abdur Rahman`` becomes
``abdul rehman``. The variant table is :data:`isps.registry.name_variants.VARIANTS` (the one list of
spellings seen in Punjab's registers). Work is done once per distinct value and mapped back with
Arrow, so a million names cost what a few thousand distinct ones do.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from isps.registry import name_variants

_NON_ALPHA = re.compile(r"[^a-z ]+")
# honorifics and filler that registers add or drop
_DROP = {"mr", "mrs", "ms", "miss", "dr", "haji", "hafiz", "syed", "mst", "mussarat", "d/o", "s/o", "w/o"}


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, str], list[tuple[str, str]]]:
    single: dict[str, str] = {}
    phrases: list[tuple[str, str]] = []
    for canon, variants in name_variants.VARIANTS.items():
        c = canon.lower()
        for v in [canon, *variants]:
            key = v.lower().replace(".", " ").strip()
            key = " ".join(key.split())
            if " " in key or " " in c:
                if key != c:
                    phrases.append((key, c))
            else:
                single[key] = c
    single.setdefault("m", "muhammad")
    single.setdefault("mohd", "muhammad")
    phrases.sort(key=lambda kv: -len(kv[0]))
    return single, phrases


def normalise(name: str | None) -> str | None:
    """The canonical, lower-case spelling of a name; None for a blank one."""
    if name is None:
        return None
    text = name.lower().replace(".", " ").replace("-", " ")
    text = " ".join(_NON_ALPHA.sub(" ", text).split())
    if not text:
        return None
    single, phrases = _tables()
    padded = f" {text} "
    for key, canon in phrases:
        if f" {key} " in padded:
            padded = padded.replace(f" {key} ", f" {canon} ")
    out = [single.get(t, t) for t in padded.split() if t not in _DROP]
    return " ".join(out) or None


def normalise_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`normalise` over a column, computed once per distinct value."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.string())
    uniq = pc.unique(values)
    mapped = pa.array([normalise(v) for v in uniq.to_pylist()], type=pa.string())
    return pc.take(mapped, pc.index_in(values, uniq))


def given_token(name: str | None) -> str | None:
    """The first name token that is not ``muhammad`` (so Muhammad Ali and Ali compare alike)."""
    if not name:
        return None
    for t in name.split():
        if t != "muhammad":
            return t
    return name.split()[0]


def tokens_array(norm: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(given token, last token) of normalised names."""
    uniq = pc.unique(norm)
    first, last = [], []
    for v in uniq.to_pylist():
        first.append(given_token(v))
        last.append(v.split()[-1] if v else None)
    idx = pc.index_in(norm, uniq)
    return pc.take(pa.array(first, pa.string()), idx), pc.take(pa.array(last, pa.string()), idx)


def _np(a) -> np.ndarray:
    return a.to_numpy(zero_copy_only=False)

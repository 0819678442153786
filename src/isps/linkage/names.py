"""Name normalisation for linkage: one canonical spelling per transliteration variant, and keys that
do not care about spelling, titles or order (:func:`keys`, :func:`sound`).

``Mohammad``, ``Muhammed`` and ``M.`` are all written ``muhammad``; ``Abdur Rahman`` becomes
``abdul rehman``. The variant table is :data:`isps.registry.name_variants.VARIANTS` (the one list of
spellings seen in Punjab's registers). Work is done once per distinct value and mapped back with
Arrow, so a million names cost what a few thousand distinct ones do.
"""

from __future__ import annotations

import re
import zlib
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


# Titles and honorifics that one register writes and another leaves out (some are also family names:
# they are dropped from both sides alike, so "Malik Ali" and "Ali" compare as the same person)
HONORIFICS = frozenset({
    "syed", "sayed", "sayyed", "sayyid", "sayyad", "malik", "bibi", "mst", "mussammat", "musammat", "mussamat",
    "mosammat", "musamat", "mian", "ch", "chaudhry", "rana", "sheikh", "shaikh", "hafiz", "haji", "hajji",
    "alhaj", "mr", "mrs", "ms", "miss", "dr", "pir", "sardar", "khawaja", "khwaja", "rao", "begum", "sahib", "sb",
    "mohtarma", "janab", "so", "do", "wo", "bin", "binte", "bint", "mussarat", "syeda", "sayeda"})
# "Muhammad" is written, abbreviated or left out at will: it never tells two people apart
FILLER = frozenset({"muhammad"})
_FOLD = (("x", "ks"), ("kh", "k"), ("gh", "g"), ("ph", "f"), ("th", "t"), ("dh", "d"), ("bh", "b"), ("sh", "s"),
         ("q", "k"), ("ck", "k"), ("z", "s"), ("w", "v"))
_VOWELS = re.compile(r"[aeiouy]")


@lru_cache(maxsize=65536)
def sound(token: str) -> str:
    """A spelling-blind key of one name token: the transliteration pairs folded (kh/k, gh/g, q/k, z/s,
    w/v, sh/s, ph/f), every ``h`` after the first letter dropped, vowels dropped after the first
    letter (a leading vowel kept as ``a``), doubled letters collapsed. ``Usman``, ``Osman`` and
    ``Usmaan`` are ``asmn``; ``Yasmeen`` and ``Yasmin`` are ``ysmn``; ``Bakhsh`` and ``Bux`` are ``bks``."""
    t = token.lower()
    for a, b in _FOLD:
        t = t.replace(a, b)
    if not t:
        return t
    head = "a" if t[0] in "aeiou" else t[0]
    rest = _VOWELS.sub("", t[1:].replace("h", ""))
    out = head
    for ch in rest:
        if ch != out[-1]:
            out += ch
    return out


def _keep(tokens: list[str]) -> list[str]:
    return [t for t in tokens if t not in HONORIFICS and t not in FILLER and len(t) > 1]


@lru_cache(maxsize=262144)
def keys(norm: str | None) -> tuple[str | None, str | None, str | None]:
    """(token set, sound set, given sound) of a normalised name: its parts without honorifics and
    "Muhammad", sorted (so order does not matter), as spelt and as :func:`sound` keys; and the sound
    of the first such part in the order written."""
    if not norm:
        return None, None, None
    kept = _keep(norm.split())
    if not kept:
        return None, None, None
    sounds = [sound(t) for t in kept]
    return " ".join(sorted(set(kept))), " ".join(sorted(set(sounds))), sounds[0]


def bits(sounds: str | None) -> int | None:
    """A 63-bit signature of a sound set: one bit per part (its CRC-32 modulo 63). Two sets that share
    a part share a bit, and a set within another has its bits within the other's: a bitwise test
    that lets the database skip the exact comparison of parts for almost every pair."""
    if not sounds:
        return None
    out = 0
    for part in sounds.split(" "):
        out |= 1 << (zlib.crc32(part.encode()) % 63)
    return out


def keys_array(norm: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """:func:`keys` over a column of normalised names, once per distinct value, and the
    :func:`bits` of the sound sets."""
    if isinstance(norm, pa.ChunkedArray):
        norm = norm.combine_chunks()
    uniq = pc.unique(norm)
    rows = [keys(v) for v in uniq.to_pylist()]
    cols = [list(c) for c in zip(*rows)] if rows else [[], [], []]
    idx = pc.index_in(norm, uniq)
    out = [pc.take(pa.array(c, pa.string()), idx) for c in cols]
    out.append(pc.take(pa.array([bits(v) for v in cols[1]], pa.int64()), idx))
    return tuple(out)  # type: ignore[return-value]


def _np(a) -> np.ndarray:
    return a.to_numpy(zero_copy_only=False)

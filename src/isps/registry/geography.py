"""Punjab's administrative geography: province, division, district, tehsil, union council.

Divisions, districts and tehsils are the real ones (2017 census, with population and
urban share used to weight synthetic data). Union councils are numbered within each
tehsil (``UC-12 Kasur``), as their real registers are not public in one list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.registry.models import District, Division, Tehsil, UnionCouncil

UC_PER_MILLION = 30  # Punjab: about 3,400 union councils for 110 million people


@dataclass(frozen=True)
class DistrictInfo:
    id: int
    name: str
    name_ur: str
    division: str
    population_2017_m: float
    urban_share: float
    tehsils: tuple[tuple[int, str], ...]


@lru_cache(maxsize=1)
def punjab() -> dict:
    return json.loads(resources.files("isps.registry.data").joinpath("punjab.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def districts() -> tuple[DistrictInfo, ...]:
    out = []
    for div in punjab()["divisions"]:
        for d in div["districts"]:
            out.append(DistrictInfo(d["id"], d["name"], d["name_ur"], div["name"], d["population_2017_m"],
                                    d["urban_share"], tuple((t["id"], t["name"]) for t in d["tehsils"])))
    return tuple(out)


@lru_cache(maxsize=1)
def tehsil_names_ur() -> dict[int, str]:
    """Each tehsil's name in Urdu, by tehsil id (as districts carry ``name_ur``)."""
    return {t["id"]: t["name_ur"] for div in punjab()["divisions"] for d in div["districts"] for t in d["tehsils"]
            if t.get("name_ur")}


def district_by_name(name: str) -> DistrictInfo | None:
    key = name.strip().lower()
    return next((d for d in districts() if d.name.lower() == key), None)


# Names partners really write for a district: abbreviations, old (colonial) names, short forms and
# the spellings of compound names. Keys are compared after :func:`_compact` (letters only).
DISTRICT_ALIASES: dict[str, tuple[str, ...]] = {
    "Dera Ghazi Khan": ("D.G. Khan", "DG Khan", "D G Khan", "Dera Ghazi", "D.G.K", "DGK"),
    "Rahim Yar Khan": ("R.Y. Khan", "RY Khan", "R Y Khan", "Rahimyar Khan", "RYK"),
    "Toba Tek Singh": ("T.T. Singh", "TT Singh", "T T Singh", "Toba", "TTS"),
    "Mandi Bahauddin": ("M.B. Din", "MB Din", "M B Din", "Mandi Baha-ud-Din", "Mandi Baha ud Din", "Mandi Bahaudin",
                        "Mandi"),
    "Rawalpindi": ("Pindi", "Rawal Pindi", "RWP", "Rwp"),
    "Faisalabad": ("Lyallpur", "Lyalpur", "Faisal Abad", "FSD", "Fsd"),
    "Attock": ("Campbellpur", "Campbellpore", "Campbelpur", "Atak"),
    "Sahiwal": ("Montgomery", "Montgomry"),
    "Lahore": ("LHR", "Lahor"),
    "Kasur": ("Kasoor", "Qasur", "Qasoor"),
    "Chiniot": ("Chinyot",),
    "Muzaffargarh": ("Muzaffar Garh", "Muzafargarh", "MZG"),
    "Bahawalnagar": ("Bahawal Nagar", "BWN"),
    "Bahawalpur": ("Bahawal Pur", "BWP"),
    "Pakpattan": ("Pak Pattan", "Pakpatan", "Pakpattan Sharif"),
    "Nankana Sahib": ("Nankana",),
    "Sheikhupura": ("Shekhupura", "Sheikhopura"),
    "Gujranwala": ("GRW", "Gujranwalla"),
    "Sialkot": ("SKT",),
    "Jhelum": ("Jehlum",),
    "Mianwali": ("Mianwalli",),
    "Khanewal": ("Khanewaal",),
}


def _compact(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalpha())


@lru_cache(maxsize=1)
def _district_keys() -> tuple[dict[str, int], dict[str, int]]:
    """(exact keys, tehsil keys): a compacted name, alias or id to a district id."""
    exact: dict[str, int] = {}
    by_name = {d.name: d.id for d in districts()}
    for d in districts():
        exact[_compact(d.name)] = d.id
        exact[_compact(d.name_ur)] = d.id
    for name, aliases in DISTRICT_ALIASES.items():
        for a in aliases:
            exact.setdefault(_compact(a), by_name[name.strip()])
    tehsils: dict[str, set[int]] = {}
    for d in districts():
        for _, t in d.tehsils:
            tehsils.setdefault(_compact(t), set()).add(d.id)
    return exact, {k: next(iter(v)) for k, v in tehsils.items() if len(v) == 1 and k not in exact}


def read_district(text: str) -> tuple[int | None, str | None]:
    """The district a partner meant, and a note when it was a guess: its id, a name, a known alias
    (``D.G. Khan``, ``Pindi``, ``Lyallpur``), a tehsil of one district (``Jaranwala``: Faisalabad),
    or a misspelling one or two letters from exactly one district (``Faislabad``, noted). ``(None,
    reason)`` when none fits."""
    raw = text.strip()
    ids = {d.id for d in districts()}
    if raw.isdigit():
        return (int(raw), None) if int(raw) in ids else (None, f"district '{text}' is not a Punjab district")
    key = _compact(raw)
    exact, tehsils = _district_keys()
    names = {d.id: d.name for d in districts()}
    if key in exact:
        return exact[key], None
    if key in tehsils:
        return tehsils[key], None
    if len(key) >= 5:
        import difflib

        close = {exact[k] for k in difflib.get_close_matches(key, list(exact), n=3, cutoff=0.84)}
        if len(close) == 1:
            found = close.pop()
            return found, f"district '{text}' read as {names[found]}"
    return None, f"district '{text}' is not a Punjab district"


def union_councils(district: DistrictInfo) -> list[tuple[int, int, str]]:
    """(uc_id, tehsil_id, name) for a district: UCs split evenly over its tehsils."""
    total = max(len(district.tehsils), round(district.population_2017_m * UC_PER_MILLION))
    per = max(1, total // len(district.tehsils))
    return [(tid * 100 + n, tid, f"UC-{n} {tname}") for tid, tname in district.tehsils for n in range(1, per + 1)]


def seed(session: Session) -> None:
    """Load the geography once; a no-op when it is already there."""
    if session.scalar(select(District.id).limit(1)) is not None:
        return
    for div in punjab()["divisions"]:
        session.add(Division(id=div["id"], name=div["name"], name_ur=div["name_ur"]))
    session.flush()
    for d in districts():
        div_id = next(v["id"] for v in punjab()["divisions"] if v["name"] == d.division)
        session.add(District(id=d.id, division_id=div_id, name=d.name, name_ur=d.name_ur,
                             population_2017_m=d.population_2017_m, urban_share=d.urban_share))
    session.flush()
    for d in districts():
        for tid, tname in d.tehsils:
            session.add(Tehsil(id=tid, district_id=d.id, name=tname, name_ur=tehsil_names_ur().get(tid)))
    session.flush()
    session.add_all(UnionCouncil(id=u, tehsil_id=t, name=n) for d in districts() for u, t, n in union_councils(d))
    session.flush()

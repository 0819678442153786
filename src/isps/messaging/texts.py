"""The fixed texts ISPS sends (``messaging/data/texts.json``), in Urdu and English."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

URDU = range(0x0600, 0x0700)


@lru_cache(maxsize=1)
def _texts() -> dict:
    return json.loads((Path(__file__).parent / "data" / "texts.json").read_text(encoding="utf-8"))


def text(name: str, lang: str) -> str:
    return _texts()[name]["ur" if lang == "ur" else "en"]


def language_of(message: str) -> str:
    """``ur`` for a text in the Urdu script, else ``en`` (answers follow the citizen's script)."""
    return "ur" if any(ord(ch) in URDU for ch in message or "") else "en"

"""The web app's two languages: English (the default) and Urdu, written right to left.

Every label the pages show is a key in ``i18n/en.json`` (or in a file of ``i18n/en/``, one
per part of the app, so that screens added side by side do not edit one file); ``i18n/ur.json``
and ``i18n/ur/`` hold the Urdu for the same keys. A key missing in Urdu falls back to English, and a key missing
in both shows a readable form of itself, so a page never breaks for want of a label.
Codes from the registry's vocabularies (``roof: rcc``) are labelled through the same
catalogues (``v.roof.rcc``).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from isps.registry import vocab
from isps.registry.fields import HOUSEHOLD_FIELDS, INDIVIDUAL_FIELDS

LANGUAGES = ("en", "ur")
DEFAULT = "en"
RTL = ("ur",)
COOKIE = "lang"
FOLDER = Path(__file__).parent / "i18n"

CHOICES: dict[str, tuple[str, ...]] = {**vocab.HOUSEHOLD_CATEGORICAL, **vocab.INDIVIDUAL_CATEGORICAL,
                                       "head_education": vocab.EDUCATION, "source": vocab.SOURCES}
BOOLEAN_FIELDS = {name for name, f in {**HOUSEHOLD_FIELDS, **INDIVIDUAL_FIELDS}.items() if f.kind == "bool"}
# vocabularies shared by two fields are labelled once
VOCAB_OF = {"head_education": "education"}


@lru_cache(maxsize=len(LANGUAGES))
def catalogue(code: str) -> dict[str, str]:
    """All labels of one language: ``<code>.json`` and every ``<code>/*.json``, in name order.
    A key defined twice is a mistake, refused here so that one file cannot hide another's label."""
    labels: dict[str, str] = {}
    for path in [FOLDER / f"{code}.json", *sorted((FOLDER / code).glob("*.json"))]:
        part = json.loads(path.read_text(encoding="utf-8"))
        twice = sorted(set(labels) & set(part))
        if twice:
            raise ValueError(f"{path.name}: labels already defined in another file: {', '.join(twice[:5])}")
        labels.update(part)
    return labels


def humanise(code: str) -> str:
    return code.rsplit(".", 1)[-1].replace("_", " ")


class Translator:
    """Labels in one language, with English behind every missing key."""

    def __init__(self, code: str) -> None:
        self.code = code if code in LANGUAGES else DEFAULT
        self.dir = "rtl" if self.code in RTL else "ltr"
        self.other = "en" if self.code == "ur" else "ur"
        self._own = catalogue(self.code)
        self._en = catalogue(DEFAULT)

    def get(self, key: str) -> str | None:
        return self._own.get(key) or self._en.get(key)

    def __call__(self, key: str, **values: object) -> str:
        text = self.get(key)
        if text is None:
            return humanise(key)
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    # -- registry values

    def field(self, name: str) -> str:
        """A field's label ("f.rooms")."""
        return self(f"f.{name}")

    def value(self, field: str, value: object) -> str:
        """A field's value as a person reads it: vocabulary codes and yes/no translated, numbers tidy.
        Accepts the typed value or its text form from the history (``"yes"``, ``"rcc"``, ``"2.5"``)."""
        if value is None or value == "":
            return "—"
        if isinstance(value, bool):
            return self("yes" if value else "no")
        if field in BOOLEAN_FIELDS and value in ("yes", "no"):
            return self(str(value))
        if field in CHOICES and str(value) in CHOICES[field]:
            return self(f"v.{VOCAB_OF.get(field, field)}.{value}")
        if isinstance(value, float):
            return f"{value:.2f}".rstrip("0").rstrip(".")
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M")
        if isinstance(value, date):
            return value.isoformat()
        return str(value)


@lru_cache(maxsize=len(LANGUAGES))
def translator(code: str | None) -> Translator:
    return Translator(code or DEFAULT)

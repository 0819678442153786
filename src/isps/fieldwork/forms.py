"""The four field forms (XLSForms kept in ``fieldwork/data/forms``) and the reader and writer of their
submitted instances.

The forms are kept as pyxform's Markdown XLSForm tables (``<form_id>.md``): the same ``survey``,
``choices`` and ``settings`` sheets and columns as the .xlsx a field team edits in Excel or Kobo, but a
text file whose changes git can show line by line. :func:`xlsx` writes the .xlsx for whoever edits a
form in a spreadsheet (and back: convert the edited workbook's sheets to the table with the same columns).
Each form is converted with pyxform once per process, at first use.

An instance is what ODK Collect, KoboCollect or Enketo sends: the form's primary instance filled in
(root element named by the form id, ``id`` and ``version`` attributes, ``meta/instanceID``). It is read
with the standard library's parser after refusing any DOCTYPE, so an entity bomb or an external entity
is an :class:`InstanceError`, never a hang or a file read.
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources

JOBS = ("survey", "visit", "receipt", "grievance")
FORM_IDS = {"survey": "isps_survey", "visit": "isps_visit", "receipt": "isps_receipt", "grievance": "isps_grievance"}
JOB_OF = {form_id: job for job, form_id in FORM_IDS.items()}
XF = "{http://www.w3.org/2002/xforms}"
JR = "{http://openrosa.org/javarosa}"
_MEDIA = re.compile(r'src="jr://file-csv/([A-Za-z0-9_.-]+)"')
# A form's text is small; a submitted survey of 40 members is some 20 KB. The inbox bounds the bytes
# it reads; this bounds what the parser is asked to hold, whoever calls it.
MAX_INSTANCE_BYTES = 2_000_000


class InstanceError(ValueError):
    """A submitted instance that cannot be read: ``field`` names the element at fault (``xml`` when the
    document itself is not well-formed or not allowed), and the message says why, fit for the device."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class FormSpec:
    form_id: str
    job: str
    version: str                        # the XLSForm settings version, e.g. "2026120801"
    title: str                          # English
    title_ur: str
    xml: bytes                          # the XForm converted by pyxform
    md5: str                            # hex md5 of xml (formList's hash is "md5:" + md5)
    media: tuple[str, ...]              # the CSV files the form reads (jr://file-csv/...), served by media.py
    accepted_versions: tuple[str, ...]  # the current version first; a submission of any other is refused


@dataclass
class Instance:
    form_id: str
    version: str
    instance_id: str                    # "uuid:..." from meta/instanceID
    job: str
    device_id: str | None               # the form's deviceid (or meta/deviceID) when Collect sends it
    collected_at: datetime | None       # the form's end (else start) time, naive server-local
    values: dict[str, str]              # every non-repeat leaf outside meta, by name, as text ("" when empty)
    repeats: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    attachments: tuple[str, ...] = ()   # file names named by binary fields (the receipt's photo)


@dataclass(frozen=True)
class _Shape:
    """What the reader needs of a form: its repeats, binary fields and every leaf name, and the
    primary instance as a template for :func:`build_instance`."""
    template: ET.Element
    repeats: frozenset[str]
    binaries: frozenset[str]
    leaves: frozenset[str]              # outside repeats (and outside meta)
    repeat_leaves: dict[str, frozenset[str]]


def _source(form_id: str) -> str:
    return resources.files("isps.fieldwork").joinpath("data", "forms", f"{form_id}.md").read_text(encoding="utf-8")


def convert(form_id: str, *, validate: bool = False) -> str:
    """The XForm of one kept XLSForm, converted by pyxform; ``validate`` also runs ODK Validate (Java),
    which the tests do and a server start need not."""
    from pyxform.xls2xform import convert as pyxform_convert   # a second to import: only when converting

    result = pyxform_convert(xlsform=io.BytesIO(_source(form_id).encode("utf-8")), file_type=".md",
                             form_name=form_id, validate=validate)
    return result.xform


def _settings(form_id: str) -> dict[str, str]:
    """The settings sheet's one row. ``form_title_ur`` is ours (XLSForm has one form_title, not one
    per language; pyxform ignores a column it does not know)."""
    from pyxform.xls2json_backends import md_to_dict

    return md_to_dict(io.BytesIO(_source(form_id).encode("utf-8")))["settings"][0]


@lru_cache(maxsize=1)
def catalogue() -> tuple[FormSpec, ...]:
    """Every field form, converted once per process."""
    out = []
    for job in JOBS:
        form_id = FORM_IDS[job]
        xform, settings = convert(form_id), _settings(form_id)
        data = xform.encode("utf-8")
        media = tuple(dict.fromkeys(_MEDIA.findall(xform)))
        version = str(settings["version"])
        out.append(FormSpec(form_id, job, version, settings["form_title"], settings["form_title_ur"], data,
                            hashlib.md5(data).hexdigest(), media, (version,)))
    return tuple(out)


def form(form_id: str) -> FormSpec | None:
    return next((f for f in catalogue() if f.form_id == form_id), None)


@lru_cache(maxsize=8)
def _shape(form_id: str) -> _Shape:
    spec = form(form_id)
    root = ET.fromstring(spec.xml)
    model = root.find(f".//{XF}model")
    main = next(iter(model.find(f"{XF}instance")))
    repeats = {r.get("nodeset").rsplit("/", 1)[-1] for r in root.iter(f"{XF}repeat")}
    binaries = {b.get("nodeset").rsplit("/", 1)[-1] for b in model.iter(f"{XF}bind") if b.get("type") == "binary"}
    template = _strip(copy.deepcopy(main))
    for el in template.iter():      # Collect sends the instance without the XForms namespace
        el.tag = _local(el.tag)
    leaves: set[str] = set()
    repeat_leaves: dict[str, set[str]] = {}

    def walk(el: ET.Element, repeat: str | None) -> None:
        for child in el:
            name = _local(child.tag)
            if name == "meta" and repeat is None and el is template:
                continue
            if name in repeats:
                repeat_leaves.setdefault(name, set())
                walk(child, name)
            elif len(child):
                walk(child, repeat)
            elif repeat is None:
                leaves.add(name)
            else:
                repeat_leaves[repeat].add(name)

    walk(template, None)
    return _Shape(template, frozenset(repeats), frozenset(binaries), frozenset(leaves),
                  {k: frozenset(v) for k, v in repeat_leaves.items()})


def _strip(main: ET.Element) -> ET.Element:
    """The primary instance with each repeat reduced to its template (pyxform also writes one empty
    row after the ``jr:template`` row; a submission carries only the rows filled in)."""
    for parent in list(main.iter()):
        for child in list(parent):
            if child.get(f"{JR}template") is not None:
                for sibling in [c for c in parent if c.tag == child.tag and c is not child]:
                    parent.remove(sibling)
                del child.attrib[f"{JR}template"]
    return main


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# --------------------------------------------------------------------------------------------- reading

_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_NO_DTD = "a DOCTYPE or entity declaration is not allowed in a submission"


class _Builder(ET.TreeBuilder):
    """A tree builder that stops at a DOCTYPE: expat reports the declaration before its internal
    subset, so no entity is ever declared, let alone expanded (what defusedxml guards against)."""

    def doctype(self, name, pubid, system):
        raise InstanceError("xml", _NO_DTD)


def _parse(xml: bytes) -> ET.Element:
    """Parse a submission; the byte search above misses a DOCTYPE in UTF-16, the parser does not."""
    parser = ET.XMLParser(target=_Builder())
    try:
        parser.feed(xml)
        return parser.close()
    except ET.ParseError as e:
        raise InstanceError("xml", f"the submission is not well-formed XML ({e})") from None


def read_instance(xml: bytes) -> Instance:
    """Read a submitted instance. Refuses (``InstanceError``) what is not well-formed XML, any DOCTYPE or
    entity declaration, an unknown form id, and an instance without ``meta/instanceID``."""
    if not isinstance(xml, (bytes, bytearray)):
        xml = str(xml).encode("utf-8")
    if len(xml) > MAX_INSTANCE_BYTES:
        raise InstanceError("xml", f"the instance is larger than {MAX_INSTANCE_BYTES} bytes")
    if _DOCTYPE.search(xml):
        raise InstanceError("xml", _NO_DTD)
    root = _parse(xml)
    form_id = root.get("id") or _local(root.tag)
    if form_id not in JOB_OF:
        raise InstanceError("form_id", f"'{form_id[:60]}' is not a form of this server")
    shape = _shape(form_id)
    instance_id = _text(_find(root, "meta", "instanceID"))
    if not instance_id:
        raise InstanceError("instanceID", "the submission has no meta/instanceID")
    if len(instance_id) > 80:
        raise InstanceError("instanceID", "is longer than 80 characters")

    values: dict[str, str] = {}
    repeats: dict[str, list[dict[str, str]]] = {}
    attachments: list[str] = []

    def walk(el: ET.Element, into: dict[str, str]) -> None:
        for child in el:
            name = _local(child.tag)
            if el is root and name == "meta":
                continue
            if name in shape.repeats:
                row: dict[str, str] = {}
                walk(child, row)
                repeats.setdefault(name, []).append(row)
            elif len(child):
                walk(child, into)
            else:
                into[name] = _text(child)
                if name in shape.binaries and into[name]:
                    attachments.append(into[name])

    walk(root, values)
    for name in shape.repeats:
        repeats.setdefault(name, [])
    device = values.get("deviceid") or _text(_find(root, "meta", "deviceID")) or None
    stamp = values.get("end") or values.get("start") or ""
    try:
        collected_at = parse_time(stamp) if stamp else None
    except ValueError:
        raise InstanceError("end" if values.get("end") else "start",
                            f"'{stamp[:40]}' is not a date and time") from None
    return Instance(form_id=form_id, version=root.get("version") or "", instance_id=instance_id,
                    job=JOB_OF[form_id], device_id=device, collected_at=collected_at, values=values,
                    repeats=repeats, attachments=tuple(attachments))


def _find(root: ET.Element, *path: str) -> ET.Element | None:
    el = root
    for name in path:
        el = next((c for c in el if _local(c.tag) == name), None)
        if el is None:
            return None
    return el


def _text(el: ET.Element | None) -> str:
    return "" if el is None else (el.text or "").strip()


def parse_time(stamp: str) -> datetime:
    """Collect's ``2026-12-07T10:15:00.000+05:00`` as a naive time in the server's own zone, the zone of
    every ``datetime.now()`` ISPS compares it with (a server in Pakistan runs on Asia/Karachi; this one
    may run on UTC); a stamp without an offset is taken as the server's local time already."""
    at = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    if at.tzinfo is not None:
        at = at.astimezone().replace(tzinfo=None)
    return at


# --------------------------------------------------------------------------------------------- writing

def build_instance(form_id: str, values: dict[str, object], repeats: dict[str, list[dict]] | None = None, *,
                   instance_id: str, version: str | None = None, device_id: str | None = None,
                   collected_at: datetime | None = None) -> bytes:
    """The instance XML as ODK Collect sends it for this form: the primary instance filled in, each
    repeat's rows in order, ``start``/``end`` from ``collected_at`` (the server's local time, with its offset),
    ``deviceid`` and ``meta/instanceID``. A name the form does not have is an ``InstanceError`` (a
    test's typo would otherwise send a survey with the field silently missing)."""
    spec = form(form_id)
    if spec is None:
        raise InstanceError("form_id", f"'{form_id}' is not a form of this server")
    shape = _shape(form_id)
    repeats = repeats or {}
    for name in values:
        if name not in shape.leaves:
            raise InstanceError(name, f"{form_id} has no field '{name}'")
    for name, rows in repeats.items():
        if name not in shape.repeats:
            raise InstanceError(name, f"{form_id} has no repeat '{name}'")
        for row in rows:
            for key in row:
                if key not in shape.repeat_leaves[name]:
                    raise InstanceError(key, f"{form_id}'s repeat {name} has no field '{key}'")

    root = copy.deepcopy(shape.template)
    root.set("id", form_id)
    root.set("version", version if version is not None else spec.version)
    stamp = _stamp(collected_at) if collected_at is not None else ""
    filled = {"start": stamp, "end": stamp, "today": collected_at.date().isoformat() if collected_at else "",
              "deviceid": device_id or "", **values}

    def fill(el: ET.Element) -> None:
        for child in list(el):
            name = _local(child.tag)
            if name in shape.repeats:
                at = list(el).index(child)
                el.remove(child)
                for i, row in enumerate(repeats.get(name, [])):
                    copy_ = copy.deepcopy(child)
                    _fill_leaves(copy_, {"line": str(i + 1), **{k: as_text(v) for k, v in row.items()}})
                    el.insert(at + i, copy_)
            elif len(child):
                fill(child)
            elif name in filled:
                child.text = as_text(filled[name])

    fill(root)
    meta = _find(root, "meta")
    _find(meta, "instanceID").text = instance_id
    root.set("xmlns:jr", "http://openrosa.org/javarosa")
    root.set("xmlns:orx", "http://openrosa.org/xforms")
    return b"<?xml version='1.0' ?>" + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _fill_leaves(el: ET.Element, row: dict[str, str]) -> None:
    for child in el:
        if len(child):
            _fill_leaves(child, row)
        elif _local(child.tag) in row:
            child.text = row[_local(child.tag)]


def _stamp(at: datetime) -> str:
    aware = at.astimezone()  # a naive time is the server's local time (as parse_time reads it back)
    return aware.isoformat(timespec="milliseconds")


def as_text(value: object) -> str:
    """A value as a form writes it: yes/no, ISO dates, local times with their offset, numbers without
    a spurious ``.0`` (also what the media files pre-fill a form with)."""
    if value is None:
        return ""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, datetime):
        return _stamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    return str(value)


def xlsx(form_id: str) -> bytes:
    """The form as an .xlsx workbook (survey, choices, settings sheets), for Excel, Kobo or ODK Central;
    :func:`markdown` turns the edited workbook back into the kept text."""
    from pyxform.xls2json_backends import md_table_to_workbook

    book = md_table_to_workbook(_source(form_id))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def markdown(workbook: bytes, heading: str = "") -> str:
    """An XLSForm workbook (.xlsx) as the Markdown tables kept in ``data/forms``: every sheet that
    XLSForm reads, every non-empty row, cells as text (a ``|`` escaped). ``heading`` is written above."""
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(workbook), read_only=True, data_only=True)
    parts = [heading.rstrip() + "\n"] if heading else []
    for sheet in book.worksheets:
        if sheet.title.lower() not in ("survey", "choices", "settings", "entities"):
            continue
        rows = [["" if v is None else str(v).replace("|", "\\|") for v in row] for row in sheet.iter_rows(values_only=True)]
        rows = [r for r in rows if any(r)]
        if not rows:
            continue
        width = max(len(r) for r in rows)
        pad = " " * len(sheet.title)
        lines = [f"| {sheet.title} |"] + ["| " + pad + " | " + " | ".join(r + [""] * (width - len(r))) + " |" for r in rows]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)

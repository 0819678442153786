"""The wording of an enrolment refusal in the reader's language: one place, read by the household
page's enrolment panel and the program's enrolment page (not a page module: no routes)."""

from __future__ import annotations

from isps.web import lang as i18n
from isps.web.common import agency_name, program_name


def refusal_text(tr: i18n.Translator, row: dict) -> str:
    """A stored refusal in the reader's language, from its fields: the other program and its agency
    by the catalogue's name in that language; the partner's list is a proper name and stays as written."""
    if row["source"] == "list":
        source = tr("enrol.source.list", ref=row["partner_ref"] or "—", reference=row["list_reference"] or "—",
                    partner=row["partner"] or "—", date=row["list_received"] or "—")
    else:
        source = tr("enrol.source.enrolment", ref=row["other_ref"])
    other = f"{program_name(tr, row['other_program'])} ({agency_name(tr, row['other_agency'])})"
    if row["rule"] == "same_kind":
        kind = row["other_kind"]
        return tr("enrol.refusal.same_kind", other=other, source=source,
                  kind=tr(f"enrol.kind.{kind}") if tr.has(f"enrol.kind.{kind}") else kind.replace("_", " "))
    if row["rule"] == "ceiling":
        return tr("enrol.refusal.ceiling", other=other, source=source,
                  total=money(row["household_yearly_value"]), ceiling=money(row["ceiling"]))
    why = row.get("why_ur") if tr.code == "ur" and row.get("why_ur") else row.get("why")
    return tr("enrol.refusal.incompatible", other=other, source=source, why=f" ({why})" if why else "")


def money(value: float | None) -> str:
    return f"PKR {value or 0:,.0f}"

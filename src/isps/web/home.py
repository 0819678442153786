"""The home page: where every role lands after signing in (and where the ISPS brand link goes).

At the top a search box (a CNIC straight to the household, and the way to the full search at
``/search``); then the signed-in user's work, each queue a count linking to the list behind it;
then the key figures of their scope (their district, or all Punjab) with charts. The numbers come
from :mod:`isps.services.home`; the charts are drawn by the vendored Chart.js (``static/vendor``)
from data in ``data-chart`` attributes read by ``static/home.js`` (the pages' Content-Security-Policy
allows no inline script), and every chart's figures are also a table, for screen readers and for
anyone who would rather read.

Old bookmarks of the search (``/?search=1&...``) are sent to ``/search`` with the same query.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from isps.registry.models import District
from isps.services import home
from isps.web.common import DB, User, _district_name, _tr, program_name, render

router = APIRouter(include_in_schema=False)

# what the search page reads from its address: any of these on ``/`` is an old search link
SEARCH_PARAMS = ("search", "district_id", "tehsil_id", "pmt_min", "pmt_max", "name", "after")
# series colours: the app's green, then colours told apart also by people with red-green colour blindness
COLOURS = {"enrolled": "#0b5d3b", "waiting": "#e0b64a", "band": "#7aa893", "poor": "#0b5d3b",
           "paid": "#1f7a4d", "pending": "#8a9a91", "sent": "#5b8fb9", "unclaimed": "#e0b64a", "failed": "#b23b2e",
           "reversed": "#7d3c98", "returned": "#2c6e91", "stopped": "#3d3d3d"}


def _ltr(value: str) -> str:
    """A left-to-right run (a score range, a period) kept in its order inside right-to-left text and
    chart labels: Unicode's left-to-right isolate."""
    return f"\u2066{value}\u2069"


def _money(value: float) -> str:
    return f"Rs {value:,.0f}"


def _paths(routes) -> set[str]:
    """Every path the app serves (the routes of included routers too; web routers have no prefix)."""
    out: set[str] = set()
    for r in routes:
        if getattr(r, "path", None):
            out.add(r.path)
        inner = getattr(r, "original_router", None)
        if inner is not None:
            out |= _paths(inner.routes)
    return out


def _existing(request: Request, hrefs: tuple[str, ...]) -> str | None:
    """The queue's list: the first of its pages this app serves (a page another part adds may be missing)."""
    paths = getattr(request.app.state, "page_paths", None)
    if paths is None:  # the routes are fixed once the app is built
        paths = request.app.state.page_paths = _paths(request.app.routes)
    return next((h for h in hrefs if h.split("?", 1)[0].split("#", 1)[0] in paths), None)


def _charts(tr, figs: home.Figures) -> dict:
    """Chart.js configurations (data only: no functions) for the three charts."""
    programs = [program_name(tr, p["code"]) for p in figs.enrolment]
    enrolment = {"type": "bar", "horizontal": True, "stacked": True, "labels": programs,
                 "datasets": [{"label": tr("home.enrolled"), "data": [p["enrolled"] for p in figs.enrolment],
                               "backgroundColor": COLOURS["enrolled"]},
                              {"label": tr("home.waiting"), "data": [p["waiting"] for p in figs.enrolment],
                               "backgroundColor": COLOURS["waiting"]}]}
    bands = {"type": "bar", "labels": [_ltr(f"{b['low']}–{b['high']}") for b in figs.pmt_bands], "legend": False,
             "datasets": [{"label": tr("home.households"), "data": [b["households"] for b in figs.pmt_bands],
                           "backgroundColor": [COLOURS["poor"] if b["low"] < figs.poor_cutoff else COLOURS["band"]
                                               for b in figs.pmt_bands]}]}
    shown = [s for s in figs.statuses if any(c["counts"].get(s) for c in figs.payments_by_cycle)]
    payments = {"type": "bar", "stacked": True,
                "labels": [f"{program_name(tr, c['program'])} {_ltr(c['period'])}" for c in figs.payments_by_cycle],
                "datasets": [{"label": tr(f"payments.state.{s}"),
                              "data": [c["counts"].get(s, 0) for c in figs.payments_by_cycle],
                              "backgroundColor": COLOURS.get(s, "#8a9a91")} for s in shown]}
    return {"enrolment": enrolment, "bands": bands, "payments": payments, "payment_statuses": shown}


@router.get("/")
def home_page(request: Request, session: DB, who: User) -> Response:
    """The signed-in user's work and the key figures of their scope."""
    if any(k in request.query_params for k in SEARCH_PARAMS):  # an old link to the search
        return RedirectResponse("/search?" + request.url.query, status_code=303)
    tr = _tr(request)
    today = date.today()
    queues = [{"key": q.key, "count": q.count, "late": q.late, "href": _existing(request, q.hrefs),
               "label": tr(f"home.queue.{q.key}", days=home.LATE_DAYS)}
              for q in home.queues(session, who, today)]
    figs = home.figures(session, who.scope, today)
    district = session.get(District, who.scope) if who.scope else None
    scope = _district_name(tr, district) if district else tr("header.all_punjab")
    return render(request, "home.html", {
        "queues": queues, "figs": figs, "scope": scope, "charts": _charts(tr, figs),
        "money": _money, "late_days": home.LATE_DAYS, "fresh_since": _ltr(home.fresh_since(today).isoformat()), "quarter": _ltr(figs.quarter),
        "programs": [{**p, "name": program_name(tr, p["code"])} for p in figs.enrolment],
    }, who=who, session=session)

"""The administrator's view of ``isps worker`` (``/admin/worker``): every background task, who
runs it now, when it last started and finished, what it did or the error it met, and when it is
next due. Read only; any other role gets the 403 page and an audit record of the refusal."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from isps.access.service import audit
from isps.services import worker as background
from isps.web import common as r
from isps.web.common import DB, User

router = APIRouter(include_in_schema=False)


def _every(tr, every: timedelta | None) -> str:
    if every is None:
        return "—"
    seconds = int(every.total_seconds())
    if seconds % 3600 == 0:
        return tr("worker.every.h", n=seconds // 3600)
    if seconds % 60 == 0:
        return tr("worker.every.min", n=seconds // 60)
    return tr("worker.every.s", n=seconds)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _result(tr, result: dict) -> list[str]:
    return [f"{tr('worker.result.' + k) if tr.has('worker.result.' + k) else k.replace('_', ' ')}: {v}"
            for k, v in (result or {}).items()]


@router.get("/admin/worker")
def worker_page(request: Request, session: DB, who: User) -> Response:
    tr = r._tr(request)
    if not who.can("users.manage"):
        audit(session, who, r.CHANNEL, "read", "worker_lease", None, who.scope, outcome="denied",
              detail=f"refused: a {who.role.replace('_', ' ')} may not see the background worker")
        return r.error_page(request, session, who, 403, tr("admin.forbidden", role=tr(f"role.{who.role}")))
    rows = background.status(session, background.default_tasks())
    view = [{"task": row["task"], "label": tr(f"worker.task.{row['task']}") if tr.has(f"worker.task.{row['task']}")
             else row["task"], "every": _every(tr, row["every"]), "holder": row["holder"],
             "running": row["holder"] is not None, "last_started": _when(row["last_started"]),
             "last_finished": _when(row["last_finished"]), "result": _result(tr, row["last_result"]),
             "error": row["last_error"], "next_due": _when(row["next_due"]), "overdue": row["overdue"]}
            for row in rows]
    audit(session, who, r.CHANNEL, "read", "worker_lease", None, None,
          detail=f"background worker: {len(view)} tasks")
    return r.render(request, "admin_worker.html", {"tasks": view, "ever": any(v["last_started"] for v in view)},
                    who=who, session=session)

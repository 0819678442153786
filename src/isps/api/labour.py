"""/api/v1/labour: the employers' and contractors' door for machines. An employer's system sends
its monthly file (the formats of ``docs/labour.md``); a file with any wrong row is refused whole
(422, every problem in ``errors`` as ``row N: field``), an accepted one answers with what was stored
and what the registry took. Every call is audited (channel ``api``)."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path as PathParam, UploadFile
from fastapi.responses import JSONResponse

from isps.access.service import Principal, audit
from isps.api.deps import DB, require
from isps.api.errors import responses
from isps.labour import uploads

router = APIRouter(prefix="/api/v1/labour", tags=["labour registries"])
Importer = Annotated[Principal, Depends(require("registry.import"))]
MAX_UPLOAD = 50 << 20


@router.get("/doors", responses=responses(401, 403))
def doors(who: Importer) -> list[dict]:
    """The prescribed formats: each door's columns and what each may hold."""
    return [{"door": d.name, "title": d.title,
             "columns": [{"name": c.name, "required": c.required, "holds": c.describe() if c.kind != "cnic"
                          else "a CNIC, 13 digits"} for c in d.columns]} for d in uploads.DOORS.values()]


@router.post("/uploads/{door}", responses=responses(401, 403, 404, 422))
def upload(session: DB, who: Importer, file: Annotated[UploadFile, File()],
           door: Annotated[str, PathParam(max_length=20, description="formal, contractor or sector")],
           reference: Annotated[str | None, Form(max_length=200)] = None):
    """Receive one employer's or contractor's file, whole or not at all."""
    if door not in uploads.DOORS:
        raise HTTPException(404, f"no door '{door}'; doors: {', '.join(uploads.DOORS)}")
    name = Path(file.filename or "upload.csv").name[:200]
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(422, "the file is larger than 50 MB; split it by month")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (Path(name).stem[:80] + Path(name).suffix.lower())
        path.write_bytes(data)
        try:
            rep = uploads.upload(session.get_bind(), door, path, actor=who.username, reference=reference or name,
                                 district_scope=who.scope)
        except uploads.UploadError as exc:
            audit(session, who, "api", "import", "labour_upload", None, who.scope, outcome="failed", detail=name)
            session.commit()
            raise HTTPException(422, str(exc)) from None
    audit(session, who, "api", "import", "labour_upload", rep.upload_id, who.scope,
          outcome="ok" if rep.ok else "failed", detail=rep.summary()[:400])
    session.commit()
    if not rep.ok:
        return JSONResponse(status_code=422, content={
            "detail": rep.summary(), "field": "file",
            "errors": [{"field": f"row {e.row}: {e.field}", "message": e.reason} for e in rep.errors]})
    body = asdict(rep)
    body.pop("errors")
    return body

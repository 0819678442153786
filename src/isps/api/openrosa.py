"""OpenRosa for ODK Collect and KoboCollect: the form list, forms with their manifests and media, and
submissions. See docs/fieldwork/openrosa.md for the exchange and the choice of each status.

Every route is served twice, once per way a device proves itself:

* ``/openrosa/key/<token>/...``: the device's token in the address (what its QR code configures, as
  ODK Central's app users); an unknown or revoked token is answered 403;
* ``/openrosa/...``: HTTP Digest with the device's code and token; a request without credentials is
  answered 401 with a challenge (Collect then answers it, and keeps answering later requests itself).

Thin: authentication (``fieldwork.devices``), the forms and media (``fieldwork.forms``/``media``) and
the inbox (``fieldwork.inbox``) do the work; this module speaks the protocol's XML and headers.
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from isps.access.service import audit
from isps.api.deps import DB
from isps.fieldwork import devices, forms, inbox, media
from isps.fieldwork.models import FieldDevice

router = APIRouter(include_in_schema=False)
XML = "text/xml; charset=utf-8"
PREFIXES = ("/openrosa", "/openrosa/key/{token}")
RESPONSE_NS = "http://openrosa.org/http/response"


def _headers(extra: dict | None = None) -> dict:
    """The headers every OpenRosa response carries (the version tells Collect it talks to an OpenRosa
    server and not a hotel's sign-in page), and the size one submission post may have. ``Date``, which
    OpenRosa also requires, is the server's (uvicorn writes it on every response; a second one here
    would be a duplicate header)."""
    return {"X-OpenRosa-Version": "1.0", "Content-Language": "en",
            "X-OpenRosa-Accept-Content-Length": str(inbox.MAX_POST_BYTES), **(extra or {})}


def openrosa_message(message: str, status: int, headers: dict | None = None) -> Response:
    """An OpenRosaResponse envelope with the message a field app shows."""
    nature = "submit_success" if status in (201, 202) else "error"
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<OpenRosaResponse xmlns="{RESPONSE_NS}">'
            f'<message nature="{nature}">{escape(message)}</message></OpenRosaResponse>')
    return Response(body, status_code=status, media_type=XML, headers=_headers(headers))


def _secret(request: Request) -> str | None:
    return getattr(request.app.state, "field_secret", None)


def _base(request: Request) -> str:
    """This device's server address (``.../openrosa`` or ``.../openrosa/key/<token>``) for the links."""
    root = str(request.base_url).rstrip("/")
    token = request.path_params.get("token")
    return f"{root}/openrosa/key/{token}" if token else f"{root}/openrosa"


def _target(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def authenticate(request: Request, session: Session) -> FieldDevice | Response:
    """The device making the request, or the response refusing it (401 with a digest challenge, 403)."""
    token = request.path_params.get("token")
    if token is not None:
        device = devices.authenticate_token(session, token)
        if device is None:
            return openrosa_message("this device is not registered with ISPS, or it was revoked: ask your "
                                    "supervisor for new settings (a new QR code)", 403)
        return device
    header = request.headers.get("authorization", "")
    result = devices.check_digest(session, header, request.method, _target(request), secret=_secret(request)) \
        if header else devices.DigestResult(None)
    if result.device is not None:
        return result.device
    if result.revoked:
        return openrosa_message("this device was revoked or its user may no longer collect: ask your supervisor", 403)
    challenge = devices.digest_challenge(_secret(request), stale=result.stale)
    message = ("sign in with the device code and token your supervisor gave you" if not header
               else "the device code or token is wrong, or the device is not registered")
    return openrosa_message(message, 401, {"WWW-Authenticate": challenge})


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data, usedforsecurity=False).hexdigest()


def form_list(request: Request, session: DB) -> Response:
    """The OpenRosa form list (``xformsList``): the forms this device's user may fill."""
    device = authenticate(request, session)
    if isinstance(device, Response):
        return device
    wanted = request.query_params.get("formID")
    base = _base(request)
    items = []
    for spec in forms.catalogue():
        if wanted and spec.form_id != wanted:
            continue
        manifest = f"<manifestUrl>{escape(base)}/forms/{spec.form_id}/manifest</manifestUrl>" if spec.media else ""
        items.append(f"<xform><formID>{escape(spec.form_id)}</formID><name>{escape(spec.title)}</name>"
                     f"<version>{escape(spec.version)}</version><hash>md5:{spec.md5}</hash>"
                     f"<descriptionText>{escape(spec.title_ur)}</descriptionText>"
                     f"<downloadUrl>{escape(base)}/forms/{spec.form_id}</downloadUrl>{manifest}</xform>")
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<xforms xmlns="http://openrosa.org/xforms/xformsList">'
            + "".join(items) + "</xforms>")
    return Response(body, media_type=XML, headers=_headers())


def _form_for(request: Request, session: Session, form_id: str) -> tuple[FieldDevice, forms.FormSpec] | Response:
    """The device asking and the form it names, or the response refusing the request (401/403/404)."""
    device = authenticate(request, session)
    if isinstance(device, Response):
        return device
    spec = forms.form(form_id)
    if spec is None:
        return openrosa_message(f"no form {form_id[:60]} on this server: update the form list", 404)
    return device, spec


def form_xml(form_id: str, request: Request, session: DB) -> Response:
    """One blank form (the XForm)."""
    found = _form_for(request, session, form_id)
    if isinstance(found, Response):
        return found
    return Response(found[1].xml, media_type=XML, headers=_headers())


def manifest(form_id: str, request: Request, session: DB) -> Response:
    """The form's media files (``xformsManifest``), made for this device's user and district; their md5
    lets Collect download only what changed (a new assignment changes ``households.csv``)."""
    found = _form_for(request, session, form_id)
    if isinstance(found, Response):
        return found
    device, spec = found
    base = _base(request)
    files = "".join(f"<mediaFile><filename>{escape(name)}</filename><hash>{_md5(data)}</hash>"
                    f"<downloadUrl>{escape(base)}/forms/{spec.form_id}/media/{escape(name)}</downloadUrl></mediaFile>"
                    for name, data in media.media_for(session, device, spec))
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<manifest xmlns="http://openrosa.org/xforms/xformsManifest">'
            + files + "</manifest>")
    return Response(body, media_type=XML, headers=_headers())


def media_file(form_id: str, name: str, request: Request, session: DB) -> Response:
    """One media file. The lists carry people's names (CNICs masked): each download is audited."""
    found = _form_for(request, session, form_id)
    if isinstance(found, Response):
        return found
    device, spec = found
    if name not in spec.media:
        return openrosa_message(f"form {spec.form_id} has no media file {name[:80]}", 404)
    try:
        data = media.render(session, device, name)
    except KeyError:
        return openrosa_message(f"no media file {name[:80]}", 404)
    who = devices.principal_of(session, device)
    if who is not None:
        audit(session, who, "odk", "export", "field_media", device.id, device.district_id,
              detail=f"{name} of {spec.form_id} to device {device.code}")
    ctype = "text/csv; charset=utf-8" if name.endswith(".csv") else "application/octet-stream"
    return Response(data, media_type=ctype, headers=_headers())


def submission_head(request: Request, session: DB) -> Response:
    """The pre-check before a submission: authenticated, 204 and the size a post may have (Collect
    requires the 204)."""
    device = authenticate(request, session)
    if isinstance(device, Response):
        return device
    return Response(status_code=204, headers=_headers())


class _Unreadable(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def _read_parts(request: Request) -> tuple[bytes, dict[str, tuple[str, bytes]], bool]:
    """The multipart post: the instance XML, the files (by part name) and whether more parts follow.
    The body is counted as it streams in: a post larger than the server accepts is refused (413)
    without reading the rest into memory or onto disk."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > inbox.MAX_POST_BYTES:
        raise _Unreadable(413, f"the submission is {int(declared) / 1048576:.1f} MB; at most "
                               f"{inbox.MAX_POST_BYTES / 1048576:.1f} MB per post are accepted")
    if not request.headers.get("content-type", "").lower().startswith("multipart/"):
        raise _Unreadable(400, "a submission is posted as multipart/form-data with an xml_submission_file part")

    async def limited():
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > inbox.MAX_POST_BYTES:
                raise _Unreadable(413, f"the submission is larger than {inbox.MAX_POST_BYTES / 1048576:.1f} MB")
            yield chunk

    parser = MultiPartParser(request.headers, limited(), max_files=inbox.MAX_ATTACHMENTS + 2, max_fields=10,
                             max_part_size=inbox.MAX_XML_BYTES + 1)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        too_much = any(word in str(exc).lower() for word in ("exceeded", "too many"))
        raise _Unreadable(413 if too_much else 400,
                          f"the submission's multipart body cannot be read: {exc}") from None
    xml: bytes | None = None
    files: dict[str, tuple[str, bytes]] = {}
    incomplete = False
    try:
        for key, value in form.multi_items():
            if key == "*isIncomplete*":
                incomplete = (value if isinstance(value, str) else "yes").strip().lower() in ("yes", "true", "1")
            elif key == "xml_submission_file":
                xml = await value.read() if isinstance(value, UploadFile) else value.encode()
            elif isinstance(value, UploadFile):
                files[key] = (value.content_type or "application/octet-stream", await value.read())
    finally:
        await form.close()
    if not xml:
        raise _Unreadable(400, "the submission has no xml_submission_file part")
    return xml, files, incomplete


def _receive(request: Request, xml: bytes, files: dict, incomplete: bool) -> Response:
    with request.app.state.session_factory() as session:
        device = authenticate(request, session)
        if isinstance(device, Response):
            session.commit()
            return device
        phone = request.query_params.get("deviceID", "")[:120]
        if device.odk_device_id is None and phone:  # Collect adds it to the address; the form may not carry it
            device.odk_device_id = phone
        try:
            receipt = inbox.receive(session, xml=xml, attachments=files, device=device, channel="odk",
                                    incomplete=incomplete)
        except inbox.Refused as exc:
            session.commit()  # the refusal's audit record; nothing else was written
            return openrosa_message(exc.message, exc.status)
        session.commit()
    status = 201 if receipt.status == "accepted" and not receipt.duplicate else 202
    return openrosa_message(receipt.message, status)


async def submission(request: Request) -> Response:
    """A submission (multipart: ``xml_submission_file`` and its files; ``*isIncomplete*`` when Collect
    split it and more parts follow). 201 accepted; 202 kept but not accepted (refused with the reason,
    or already received: Collect marks it sent and does not send it again); 4xx not kept."""
    if request.path_params.get("token") is None and not request.headers.get("authorization"):
        # answer the challenge before reading the body, as after Collect's HEAD
        return await run_in_threadpool(_challenge_only, request)
    try:
        xml, files, incomplete = await _read_parts(request)
    except _Unreadable as exc:
        return await run_in_threadpool(_unreadable, request, exc)
    return await run_in_threadpool(_receive, request, xml, files, incomplete)


def _unreadable(request: Request, exc: _Unreadable) -> Response:
    """A post that cannot be read: refused, and audited when it came from a device (an unknown caller
    is told to authenticate first)."""
    with request.app.state.session_factory() as session:
        device = authenticate(request, session)
        if isinstance(device, Response):
            return device
        who = devices.principal_of(session, device)
        if who is not None:
            audit(session, who, "odk", "submit", "field_submission", None, device.district_id, outcome="failed",
                  detail=f"not kept ({exc.status}): {exc.message}"[:300])
        session.commit()
    return openrosa_message(exc.message, exc.status)


def _challenge_only(request: Request) -> Response:
    with request.app.state.session_factory() as session:
        answer = authenticate(request, session)
    return answer if isinstance(answer, Response) else openrosa_message("sign in first", 401)


for _prefix in PREFIXES:
    router.add_api_route(f"{_prefix}/formList", form_list, methods=["GET"])
    router.add_api_route(f"{_prefix}/forms/{{form_id}}", form_xml, methods=["GET"])
    router.add_api_route(f"{_prefix}/forms/{{form_id}}/manifest", manifest, methods=["GET"])
    router.add_api_route(f"{_prefix}/forms/{{form_id}}/media/{{name}}", media_file, methods=["GET"])
    router.add_api_route(f"{_prefix}/submission", submission_head, methods=["HEAD"])
    router.add_api_route(f"{_prefix}/submission", submission, methods=["POST"])

"""A test helper that does what ODK Collect does against an OpenRosa server, over a Starlette TestClient.

The sequence and the checks are Collect's (``FormListApi``/``OpenRosaFormSource`` for forms, and
``InstanceServerUploader`` for submissions):

* ``GET {server}/formList`` with the OpenRosa headers; the answer must carry ``X-OpenRosa-Version``
  and parse as an ``xformsList``; each form is then fetched from its ``downloadUrl`` and its md5 must
  be the list's ``hash``; when a form has a ``manifestUrl`` the manifest is read and every media
  file fetched from its ``downloadUrl``, md5 checked against the manifest's hash;
* a submission: ``HEAD {server}/submission?deviceID=...`` must answer 204 (Collect refuses any other
  2xx) and says the largest post (``X-OpenRosa-Accept-Content-Length``); then ``POST`` multipart/
  form-data with the part ``xml_submission_file`` (text/xml) and one part per file named by the file's
  name, split into several posts marked ``*isIncomplete*`` when larger than the server takes; only
  201 and 202 mean sent, and the OpenRosaResponse ``<message>`` is what the enumerator is shown.

Digest authentication is httpx's own ``DigestAuth`` (an implementation independent of the server's):
the first request goes without credentials, the 401's challenge is answered, and later requests reuse
it with a growing nonce count, as Collect's caching digest authenticator does.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate

import httpx

LIST_NS = "{http://openrosa.org/xforms/xformsList}"
MANIFEST_NS = "{http://openrosa.org/xforms/xformsManifest}"
RESPONSE_NS = "{http://openrosa.org/http/response}"


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


@dataclass
class Sent:
    """What Collect makes of one submission: sent or failed, and the server's message."""
    status: int                 # the (last) POST's status
    message: str | None         # the OpenRosaResponse message
    sent: bool                  # 201 or 202: Collect marks the form sent
    head_status: int
    posts: int = 1
    challenged: bool = False    # a 401 challenge was answered on the way


@dataclass
class Blank:
    form_id: str
    version: str
    xml: bytes
    media: dict[str, bytes] = field(default_factory=dict)


class CollectError(AssertionError):
    """The server answered something Collect would refuse."""


class Collect:
    """One phone. ``server_url`` as in Collect's settings (``http://testserver/openrosa/key/<token>``
    or ``http://testserver/openrosa`` with ``code``/``token`` for digest)."""

    def __init__(self, client, server_url: str, *, code: str | None = None, token: str | None = None,
                 device_id: str = "collect:Zx9kq2LmP0aB7cDe") -> None:
        self.client = client
        self.server = server_url.rstrip("/")
        self.auth = httpx.DigestAuth(code, token) if code is not None else None
        self.device_id = device_id

    def _headers(self) -> dict:
        return {"X-OpenRosa-Version": "1.0", "Date": formatdate(usegmt=True), "Accept-Language": "en",
                "User-Agent": "org.odk.collect.android/v2024.3.4 okhttp/4.12.0"}

    def _send(self, method: str, url: str, **kwargs) -> httpx.Response:
        kwargs.setdefault("headers", self._headers())
        if self.auth is not None:
            kwargs["auth"] = self.auth
        return self.client.request(method, url, **kwargs)

    def get(self, url: str) -> httpx.Response:
        r = self._send("GET", url)
        if r.status_code == 200 and r.headers.get("X-OpenRosa-Version") != "1.0":
            raise CollectError(f"{url}: not an OpenRosa server (no X-OpenRosa-Version)")
        return r

    # --- forms ------------------------------------------------------------------------------------

    def form_list(self) -> list[dict]:
        r = self.get(f"{self.server}/formList")
        if r.status_code != 200:
            raise CollectError(f"formList answered {r.status_code}: {r.text[:200]}")
        root = ET.fromstring(r.content)
        if root.tag != f"{LIST_NS}xforms":
            raise CollectError(f"formList is not an xformsList: {root.tag}")
        out = []
        for x in root.findall(f"{LIST_NS}xform"):
            item = {c.tag.replace(LIST_NS, ""): (c.text or "") for c in x}
            if not item.get("formID") or not item.get("downloadUrl") or not item.get("hash", "").startswith("md5:"):
                raise CollectError(f"a form list entry Collect cannot use: {item}")
            out.append(item)
        return out

    def download(self, item: dict) -> Blank:
        r = self.get(item["downloadUrl"])
        if r.status_code != 200 or md5(r.content) != item["hash"]:
            raise CollectError(f"form {item['formID']}: {r.status_code}, hash {md5(r.content)} != {item['hash']}")
        blank = Blank(item["formID"], item.get("version", ""), r.content)
        if item.get("manifestUrl"):
            m = self.get(item["manifestUrl"])
            if m.status_code != 200:
                raise CollectError(f"manifest of {item['formID']} answered {m.status_code}")
            root = ET.fromstring(m.content)
            if root.tag != f"{MANIFEST_NS}manifest":
                raise CollectError(f"not an xformsManifest: {root.tag}")
            for mf in root.findall(f"{MANIFEST_NS}mediaFile"):
                name = mf.findtext(f"{MANIFEST_NS}filename")
                digest = mf.findtext(f"{MANIFEST_NS}hash")
                f = self.get(mf.findtext(f"{MANIFEST_NS}downloadUrl"))
                if f.status_code != 200 or md5(f.content) != digest:
                    raise CollectError(f"media {name} of {item['formID']}: {f.status_code}, hash mismatch")
                blank.media[name] = f.content
        return blank

    def get_blank_forms(self) -> dict[str, Blank]:
        return {item["formID"]: self.download(item) for item in self.form_list()}

    # --- submissions ------------------------------------------------------------------------------

    def submit(self, xml: bytes, files: dict[str, tuple[str, bytes]] | None = None,
               *, instance_name: str = "instance") -> Sent:
        url = f"{self.server}/submission?deviceID={self.device_id}"
        head = self._send("HEAD", url)
        challenged = any(h.status_code == 401 for h in head.history)
        if head.status_code != 204:
            message = _message(head.content) if head.content else None
            return Sent(head.status_code, message, False, head.status_code, 0, challenged)
        limit = int(head.headers.get("X-OpenRosa-Accept-Content-Length", "10000000"))
        files = files or {}
        batches = _split(xml, files, limit)
        r = None
        for i, batch in enumerate(batches):
            parts = [("xml_submission_file", (f"{instance_name}.xml", xml, "text/xml"))]
            parts += [(name, (name, data, ctype)) for name, (ctype, data) in batch.items()]
            data = {"*isIncomplete*": "yes"} if i < len(batches) - 1 else None
            r = self._send("POST", url, files=parts, data=data)
            challenged = challenged or any(h.status_code == 401 for h in r.history)
            if r.status_code not in (201, 202):
                break
        message = _message(r.content) if r.content else None
        return Sent(r.status_code, message, r.status_code in (201, 202), head.status_code, len(batches), challenged)


def _split(xml: bytes, files: dict[str, tuple[str, bytes]], limit: int) -> list[dict]:
    """Collect's split: posts of the XML and as many files as fit in the limit (a file larger than the
    limit alone with the XML)."""
    batches: list[dict] = [{}]
    size = len(xml)
    for name, (ctype, data) in files.items():
        if batches[-1] and size + len(data) > limit:
            batches.append({})
            size = len(xml)
        batches[-1][name] = (ctype, data)
        size += len(data)
    return batches


def _message(body: bytes) -> str | None:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    node = root.find(f"{RESPONSE_NS}message")
    return node.text if node is not None else None

"""What the DCI endpoints do, transport aside: authenticate the partner, check the envelope and
its signature, run searches, keep transactions for status checks, subscribe and unsubscribe,
and audit every request and every person's record that goes out (``audit_log``, channel ``dci``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import httpx
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from isps import config
from isps.access.models import AuditRecord
from isps.access.service import DCI_ACTIONS
from isps.interop.dci import envelope as env_mod
from isps.interop.dci import partners, search, signing
from isps.interop.dci.envelope import DciError, Envelope, callback_header, new_id, now_ts
from isps.interop.dci.models import DciDelivery, DciTransaction
from isps.interop.dci.partners import Partner, TokenError
from isps.registry.cnic import mask
from isps.registry.models import Individual

log = logging.getLogger("isps.dci")
REG_TYPE = "ns:isps:RegistryType:Social"
MAX_ITEMS = 1000

Sender = Callable[[str, dict], None]


def http_sender(url: str, envelope: dict) -> None:
    """Deliver a callback over HTTPS (the partner's registered callback URI)."""
    r = httpx.post(url, json=envelope, timeout=10)
    r.raise_for_status()


class Runtime:
    """The server's DCI identity: its id, signing key, token issuer and the callback sender."""

    def __init__(self, secret: str, isps_id: str = "isps.punjab.gov.pk", token_ttl_s: int = 3600,
                 sender: Sender | None = None) -> None:
        self.isps_id = isps_id
        self.key_id = "isps-ed25519-1"
        self.signing_key = signing.derived_ed25519(secret, "message-signing")
        self.tokens = partners.TokenIssuer(isps_id, signing.derived_ed25519(secret, "oauth2-jwt"), token_ttl_s)
        self.sender = sender or http_sender

    def sign(self, header: dict, message) -> str:
        return signing.sign(self.signing_key, self.isps_id, self.key_id, header, message)

    def envelope(self, header: dict, message: dict | None) -> dict:
        out = {"signature": self.sign(header, message), "header": header}
        if message is not None:
            out["message"] = message
        return out


@dataclass
class Reply:
    status: int
    body: dict
    followup: Callable[[], None] | None = None
    actor: str = "anonymous"
    detail: str = ""
    audited: bool = False  # the request's audit row is already written


# ---------------------------------------------------------------- checks

def authenticate(session: Session, rt: Runtime, authorization: str | None) -> Partner:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise DciError(401, "err.request.unauthorized", "send 'Authorization: Bearer <token>' from POST /dci/oauth2/client/token")
    try:
        sender_id = rt.tokens.check(authorization[7:].strip())
    except TokenError as exc:
        raise DciError(401, "err.request.unauthorized", str(exc)) from None
    partner = partners.partner_by_sender(session, sender_id)
    if partner is None:
        raise DciError(401, "err.request.unauthorized", "this partner is not active")
    if partner.test and not config.dci_test_partners():
        raise DciError(403, "err.request.forbidden", f"test partner: {partners.TEST_PARTNERS_OFF}")
    return partner


def check_message(session: Session, partner: Partner, env: Envelope) -> None:
    if env.header.get("sender_id") != partner.sender_id:
        raise DciError(403, "err.sender_id.invalid", "header sender_id is not the partner named by the token")
    if partner.accept_unsigned:  # a test partner only (authenticate checked the deployment allows them)
        pass  # a conformance suite's placeholder signature; the audit says "signature not checked"
    else:
        _check_signature(session, partner, env)
    if partner.agreement is None:
        raise DciError(403, "err.request.forbidden", "no data-sharing agreement with this partner is in force")


def _check_signature(session: Session, partner: Partner, env: Envelope) -> None:
    try:
        parsed = signing.parse(env.signature)
        if parsed.sender_id != partner.sender_id:
            raise signing.SignatureInvalid("the signature's key belongs to another sender")
        key = partners.public_key(session, partner, parsed.key_id, parsed.algorithm)
        if key is None:
            raise signing.SignatureInvalid("no such key is registered for this sender")
        signing.verify(parsed, key, env.header, env.message)
    except signing.SignatureMissing as exc:
        raise DciError(401, "err.signature.missing", str(exc)) from None
    except signing.SignatureInvalid as exc:
        raise DciError(401, "err.signature.invalid", str(exc)) from None


def callback_url(partner: Partner, header: dict, action: str) -> str:
    """Where a callback goes: the header's sender_uri when it lies under the partner's registered
    callback URI, else ``<callback URI>/registry/<action>``. Nothing else (no open redirects)."""
    base = (partner.callback_uri or "").rstrip("/")
    given = header.get("sender_uri")
    if given:
        if not base or not (given == base or given.startswith(base + "/")):
            raise DciError(400, "err.sender_uri.invalid", "sender_uri must lie under the callback URI registered for you")
        if action in ("on-search",):
            return given
    if not base:
        raise DciError(400, "err.sender_uri.invalid", "no callback URI is registered for you")
    return f"{base}/registry/{action}"


# ---------------------------------------------------------------- transactions

def start_transaction(session: Session, partner: Partner, env: Envelope, action: str, reference_ids: list[str],
                      keep_request: bool, status: str = "rcvd", response: dict | None = None) -> DciTransaction:
    """Record the message; a message_id seen before from this partner is refused. Called before any
    other write of the request, so a duplicate rolls back nothing but itself."""
    message_id = str(env.header["message_id"])
    txn = DciTransaction(partner_id=partner.id, message_id=message_id[:100], action=action,
                         transaction_id=str(env.message.get("transaction_id", ""))[:99],
                         correlation_id=(response or {}).get("correlation_id") or new_id(), status=status,
                         reference_ids=reference_ids, request=env.message if keep_request else None,
                         response=response, completed_at=datetime.now() if response is not None else None)
    session.add(txn)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise HeaderReject("rjct.message_id.duplicate", "this message_id was already received") from None
    return txn


# PostgreSQL: the transaction row and the request's audit rows in one statement (one round trip).
# One statement text per number of audit rows (nearly always 2: the person's and the request's),
# built once, so psycopg prepares each on the server.
_AUDIT_COLUMNS = ("entity", "entity_id", "district_id", "outcome", "detail")
_PG_SYNC_WRITES: dict[int, object] = {}


def _pg_sync_write(n: int):
    stmt = _PG_SYNC_WRITES.get(n)
    if stmt is None:
        rows = ",\n       ".join(
            f"(:actor, 'partner', 'dci', :audit_action, :entity_{i}, CAST(:entity_id_{i} AS BIGINT), "
            f"CAST(:district_id_{i} AS SMALLINT), :outcome_{i}, :detail_{i})" for i in range(n))
        stmt = _PG_SYNC_WRITES[n] = text(f"""
WITH txn AS (
  INSERT INTO dci_transaction (partner_id, message_id, action, transaction_id, correlation_id, status,
                               reference_ids, response, completed_at)
  VALUES (:partner_id, :message_id, :action, :transaction_id, :correlation_id, :status,
          CAST(:reference_ids AS JSON), CAST(:response AS JSON), :completed_at))
INSERT INTO audit_log (actor, role, channel, action, entity, entity_id, district_id, outcome, detail)
VALUES {rows}""")
    return stmt


def record_transaction(session: Session, partner: Partner, env: Envelope, action: str, reference_ids: list[str],
                       correlation_id: str, status: str, response: dict, audit: list[dict]) -> None:
    """A completed transaction (sync search) and the request's audit rows (:func:`audit_values`, one
    actor and action), written without the ORM unit of work: one statement on PostgreSQL, two
    elsewhere. A message_id seen before from this partner is refused; the whole request rolls back."""
    row = {"partner_id": partner.id, "message_id": str(env.header["message_id"])[:100], "action": action,
           "transaction_id": str(env.message.get("transaction_id", ""))[:99], "correlation_id": correlation_id,
           "status": status, "reference_ids": reference_ids, "request": None, "response": response,
           "completed_at": datetime.now()}
    try:
        conn = session.connection()
        if audit and conn.dialect.name == "postgresql" and len(audit) <= 50:
            params = {**row, "reference_ids": json.dumps(reference_ids), "response": json.dumps(response),
                      "actor": audit[0]["actor"], "audit_action": audit[0]["action"]}
            for i, a in enumerate(audit):
                if (a["actor"], a["action"]) != (params["actor"], params["audit_action"]):
                    raise ValueError("one request's audit rows share its actor and action")
                for c in _AUDIT_COLUMNS:
                    params[f"{c}_{i}"] = a[c]
            conn.execute(_pg_sync_write(len(audit)), params)
        else:
            conn.execute(insert(TXN), [row])
            if audit:
                conn.execute(insert(AUDIT), audit)
    except IntegrityError:
        session.rollback()
        raise HeaderReject("rjct.message_id.duplicate", "this message_id was already received") from None


TXN = DciTransaction.__table__


class HeaderReject(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _check_counts(env: Envelope, items: list) -> None:
    if env.header.get("total_count") != len(items):
        raise HeaderReject("rjct.total_count.invalid", f"header total_count must equal the {len(items)} requests")
    if len(items) > MAX_ITEMS:
        raise HeaderReject("rjct.total_count.limit_exceeded", f"at most {MAX_ITEMS} requests in one message")


AUDIT = AuditRecord.__table__


def test_mark(partner: Partner | None) -> str:
    """What begins the audit detail of every row a test partner's request writes."""
    if partner is None or not partner.test:
        return ""
    return "test partner, signature not checked: " if partner.accept_unsigned else "test partner: "


def _dci_action(action: str) -> str:
    """The action of a DCI audit row, refused unless it is in the DCI vocabulary, as
    :func:`isps.access.service.audit` refuses an officer's unknown action."""
    if action not in DCI_ACTIONS:
        raise ValueError(f"DCI audit action '{action}' is not in the vocabulary (isps.access.service.DCI_ACTIONS)")
    return action


def audit_values(partner: Partner, action: str, rows: list[tuple]) -> list[dict]:
    """audit_log rows for (entity, entity_id, district_id, outcome, detail) tuples, all with the same
    columns; a test partner's are marked (:func:`test_mark`)."""
    actor, action, mark = partner.sender_id[:60], _dci_action(action), test_mark(partner)
    return [{"actor": actor, "role": "partner", "channel": "dci", "action": action, "entity": e, "entity_id": i,
             "district_id": d, "outcome": o, "detail": (mark + (t or ""))[:300] or None} for e, i, d, o, t in rows]


def audit_rows(session: Session, partner: Partner, action: str, rows: list[tuple]) -> None:
    """Many audit rows at once: (entity, entity_id, district_id, outcome, detail). Every row has the
    same columns, so the driver sends them as one batch (executemany), without reading ids back."""
    if rows:
        session.execute(insert(AUDIT), audit_values(partner, action, rows))


def audit_request(session: Session, actor: str, action: str, outcome: str, detail: str,
                  partner: Partner | None = None) -> None:
    """The request's own audit row; ``partner`` (when known) marks a test partner's."""
    session.execute(insert(AUDIT), [{"actor": actor[:60], "role": "partner", "channel": "dci",
                                     "action": _dci_action(action),
                                     "entity": "dci_request", "entity_id": None, "district_id": None,
                                     "outcome": outcome, "detail": (test_mark(partner) + detail)[:300] or None}])


# ---------------------------------------------------------------- search

def execute_search(session: Session, partner: Partner, message: dict, correlation_id: str,
                   action: str, request_row: tuple | None = None,
                   audit_out: list[dict] | None = None) -> tuple[dict, int]:
    """Answer every request of a batch; identifiers of the whole batch are looked up in one query.
    The audit rows are written here, or handed to the caller in ``audit_out`` to write with its own."""
    items = message["search_request"]
    out: list[dict | None] = [None] * len(items)
    pending: list[tuple[int, str, str, str]] = []  # index, kind, number, entity
    seen: set[str] = set()
    audit: list[tuple] = []
    for i, item in enumerate(items):
        ref = str(item["reference_id"])
        crit = item["search_criteria"]
        entity = crit.get("response_entity") or ("Member" if crit["query_type"] == "idtype-value" else "Group")
        try:
            if ref in seen:
                raise search.QueryError("rjct.reference_id.duplicate", "reference_id repeats in this message")
            seen.add(ref)
            if crit["query_type"] == "idtype-value":
                kind, number = search.normalise_identifier(crit["query"])
                search._page(crit)
                pending.append((i, kind, number, entity))
            else:
                outcome = search.run_query(session, partner, crit, entity)
                out[i] = _item(item, entity, outcome.records, outcome.total, outcome.page_size, outcome.page_number)
                audit += _record_audit(session, outcome.individual_ids, outcome.household_ids, correlation_id, ref)
                audit.append(("search", None, None, "ok", f"txn {correlation_id} ref {ref[:40]}: {crit['query_type']} "
                                                          f"{outcome.total} found"))
        except search.QueryError as exc:
            out[i] = {"reference_id": ref, "timestamp": now_ts(), "status": "rjct", "status_reason_code": exc.code,
                      "status_reason_message": str(exc)[:999]}
            audit.append(("search", None, None, "rejected", f"txn {correlation_id} ref {ref[:40]}: {exc.code}"))
    if pending:
        _identifier_items(session, partner, items, pending, out, audit, correlation_id)
    if request_row is not None:  # the request's own audit row, in the same statement
        audit.append(request_row)
    if audit_out is not None:
        audit_out.extend(audit_values(partner, action, audit))
    else:
        audit_rows(session, partner, action, audit)
    response = {"transaction_id": message["transaction_id"], "correlation_id": correlation_id, "search_response": out}
    return response, sum(1 for o in out if o and o["status"] == "succ")


def _item(item: dict, entity: str, records: list[dict], total: int, size: int, number: int) -> dict:
    out = {"reference_id": str(item["reference_id"]), "timestamp": now_ts(), "status": "succ",
           "data": {"version": "1.0.0", "reg_type": REG_TYPE, "reg_record_type": entity, "reg_records": records},
           "pagination": {"page_size": size, "page_number": number, "total_count": total}}
    if not records:
        out["status_reason_message"] = "no record that you may receive matches"
    if item.get("locale"):
        out["locale"] = item["locale"]
    return out


def _record_audit(session: Session, individual_ids, household_ids, correlation_id: str, ref: str) -> list[tuple]:
    detail = f"txn {correlation_id} ref {ref[:40]}"
    rows = [("individual", i, i // 10**11, "ok", detail) for i in individual_ids]
    rows += [("household", h, h // 10**10, "ok", detail) for h in household_ids]
    return rows


def _identifier_items(session, partner, items, pending, out, audit, correlation_id) -> None:
    numbers = [n for _, _, n, _ in pending]
    people = search.people_by_identifier(session, partner, numbers)
    by_number: dict[str, list[Individual]] = {}
    for p in people:
        by_number.setdefault(p.cnic, []).append(p)
    denied: set[str] = set()
    if partner.agreement.consent_required:
        missing = sorted(set(numbers) - set(by_number))
        if missing:  # for auditors: registered, but no consent on record (the partner is not told)
            for pid, number, district in session.execute(select(Individual.id, Individual.cnic, Individual.district_id)
                                                         .where(Individual.cnic.in_(missing))):
                denied.add(number)
                audit.append(("individual", pid, district, "denied", f"txn {correlation_id}: no consent on record"))
    builder = search.RecordBuilder(session, partner)
    matches = {i: [p for p in by_number.get(n, []) if (p.id_document == "bform") == (kind == "bform")]
               for i, kind, n, _ in pending}
    member_people = {p.id: p for i, _, _, e in pending if e == "Member" for p in matches[i]}
    group_ids = sorted({p.household_id for i, _, _, e in pending if e == "Group" for p in matches[i]})
    if group_ids and partner.agreement.consent_required:
        from isps.registry.models import Household
        group_ids = list(session.scalars(select(Household.id).where(
            Household.id.in_(group_ids), search.group_consent(partner, date.today()))))
    m_records, _, _ = builder.build("Member", people=list(member_people.values()))
    member_rec = dict(zip(member_people, m_records))
    g_records, g_people, _ = builder.build("Group", household_ids=group_ids)
    group_rec = {int(r["@id"].rsplit(":", 1)[1]): r for r in g_records}
    for i, kind, number, entity in pending:
        item = items[i]
        ref = str(item["reference_id"])
        if entity == "Member":
            found = matches[i]
            records = [member_rec[p.id] for p in found]
            audit += [("individual", p.id, p.district_id, "ok", f"txn {correlation_id} ref {ref[:40]}") for p in found]
        else:
            hids = sorted({p.household_id for p in matches[i]} & set(group_rec))
            records = [group_rec[h] for h in hids]
            audit += _record_audit(session, [], hids, correlation_id, ref)
        if not records and number not in denied:
            audit.append(("individual", None, None, "not_found", f"txn {correlation_id} ref {ref[:40]}: {mask(number)}"))
        out[i] = _item(item, entity, records, len(records), len(records) or 1, 1)


def _search_header_items(env: Envelope) -> list:
    items = env.message["search_request"]
    _check_counts(env, items)
    return items


def sync_search(session: Session, rt: Runtime, partner: Partner, env: Envelope) -> Reply:
    """Answer at once. The transaction row (with the message_id check) is written after the search,
    in the same database transaction: a duplicate rolls the whole request back, audit rows included."""
    try:
        items = _search_header_items(env)
        correlation_id = new_id()
        audit: list[dict] = []
        response, ok = execute_search(session, partner, env.message, correlation_id, "dci.sync_search",
                                      ("dci_request", None, None, "ok", f"txn {correlation_id}: {len(items)} requests"),
                                      audit_out=audit)
        record_transaction(session, partner, env, "search", [str(i["reference_id"]) for i in items], correlation_id,
                           "succ", _without_data(response), audit)
    except HeaderReject as exc:
        header = callback_header(rt.isps_id, partner.sender_id, "on-search", "rjct", env.header.get("total_count", 0), 0,
                                 (exc.code, exc.message))
        return Reply(409 if exc.code == "rjct.message_id.duplicate" else 400, rt.envelope(header, None),
                     detail=exc.code)
    header = callback_header(rt.isps_id, partner.sender_id, "on-search", "succ", len(items), len(items))
    return Reply(200, rt.envelope(header, response), detail=f"txn {correlation_id}: {ok}/{len(items)} answered",
                 audited=True)


def _without_data(response: dict) -> dict:
    """What a sync transaction keeps for txn status: statuses, not the people's data."""
    return {**response, "search_response": [{k: v for k, v in r.items() if k != "data"} for r in response["search_response"]]}


def _ack_or_reject(session, partner, env, action: str, items: list, keep: bool) -> DciTransaction:
    try:
        _check_counts(env, items)
        return start_transaction(session, partner, env, action, [str(i.get("reference_id", "")) for i in items], keep)
    except HeaderReject as exc:
        raise DciError(409 if exc.code == "rjct.message_id.duplicate" else 400, "err.request.bad",
                       f"{exc.code}: {exc.message}") from None


def async_search(session: Session, rt: Runtime, partner: Partner, env: Envelope, factory) -> Reply:
    url = callback_url(partner, env.header, "on-search")
    txn = _ack_or_reject(session, partner, env, "search", env.message["search_request"], True)
    txn.status = "pdng"
    txn_id, items = txn.id, len(env.message["search_request"])

    def complete() -> None:
        with factory() as s:
            t = s.get(DciTransaction, txn_id)
            p = partners.partner_by_sender(s, partner.sender_id) or partner
            response, ok = execute_search(s, p, t.request, t.correlation_id, "dci.search")
            t.status, t.completed_at, t.response = "succ", datetime.now(), response
            header = callback_header(rt.isps_id, p.sender_id, "on-search", "succ", items, items)
            deliver(s, rt, p, "on-search", url, rt.envelope(header, response))
            s.commit()
    return Reply(202, env_mod.ack("ACK", txn.correlation_id), complete, detail=f"txn {txn.correlation_id}: accepted")


def deliver(session: Session, rt: Runtime, partner: Partner, action: str, url: str, envelope: dict) -> bool:
    row = DciDelivery(partner_id=partner.id, action=action, url=url[:300], envelope=envelope, status="sent", attempts=1)
    try:
        rt.sender(url, envelope)
    except Exception as exc:  # noqa: BLE001 - any transport failure is recorded for a retry
        row.status, row.last_error = "failed", f"{type(exc).__name__}: {exc}"[:300]
        log.warning("dci %s delivery to partner %s failed: %s", action, partner.sender_id, type(exc).__name__)
    session.add(row)
    return row.status == "sent"


def retry_failed(session: Session, rt: Runtime, limit: int = 100) -> int:
    """Send again the callbacks and notifications that failed; returns how many went through."""
    sent = 0
    for row in session.scalars(select(DciDelivery).where(DciDelivery.status == "failed").order_by(DciDelivery.id).limit(limit)):
        row.attempts += 1
        try:
            rt.sender(row.url, row.envelope)
            row.status, row.last_error = "sent", None
            sent += 1
        except Exception as exc:  # noqa: BLE001
            row.last_error = f"{type(exc).__name__}: {exc}"[:300]
    return sent


# ---------------------------------------------------------------- txn status

def _status_of(session: Session, partner: Partner, req: dict) -> tuple[DciTransaction | None, dict | None]:
    kind, attr, value = req["txn_type"], req["attribute_type"], req["attribute_value"]
    if kind == "receipt":
        return None, None
    stmt = select(DciTransaction).where(DciTransaction.partner_id == partner.id, DciTransaction.action == kind)
    refs = None
    if attr == "transaction_id":
        stmt = stmt.where(DciTransaction.transaction_id == str(value))
    elif attr == "correlation_id":
        stmt = stmt.where(DciTransaction.correlation_id == str(value))
    else:
        refs = {str(v) for v in (value if isinstance(value, list) else [value])}
    txn = None
    for candidate in session.scalars(stmt.order_by(DciTransaction.id.desc()).limit(1 if refs is None else 500)):
        if refs is None or refs & set(candidate.reference_ids):
            txn = candidate
            break
    if txn is None:
        return None, None
    if txn.response is None:
        items = [{"reference_id": r, "timestamp": now_ts(), "status": txn.status} for r in txn.reference_ids]
        status = {"transaction_id": txn.transaction_id, "correlation_id": txn.correlation_id, "search_response": items}
    elif kind == "search":
        status = txn.response
    else:  # subscribe: the subscribe response, shaped as the spec's txn_status
        status = {"transaction_id": txn.response["transaction_id"], "correlation_id": txn.correlation_id,
                  "search_response": [{k: v for k, v in r.items() if k != "status_reason_code"}
                                      | ({"status_reason_message": r["status_reason_code"]} if "status_reason_code" in r else {})
                                      for r in txn.response["subscribe_response"]]}
    if refs is not None:
        status = {**status, "search_response": [r for r in status["search_response"] if r["reference_id"] in refs]}
    return txn, status


def txn_status_message(session: Session, partner: Partner, message: dict,
                       correlation_id: str) -> tuple[str, dict | None, str]:
    """The answer to a txn status request: its status (``succ`` or ``rjct``), the message (none for
    ``rjct``: the spec's ``txn_status`` needs a transaction) and why it was refused. The message's
    ``correlation_id`` is the status request's own (the one its acknowledgement gave, for the async
    endpoint); the searched transaction's is inside ``txn_status``."""
    req = message["txnstatus_request"]
    txn, status = _status_of(session, partner, req)
    if txn is None:
        return "rjct", None, NO_SUCH_TXN
    # the status may carry data (async search results): audit it as a read
    ids = [r["@id"].rsplit(":", 2)[1:] for item in status["search_response"]
           for r in (item.get("data") or {}).get("reg_records", []) if isinstance(r, dict) and "@id" in r]
    audit_rows(session, partner, "dci.txn_status", [
        (kind, int(i), None, "ok", f"txn {txn.correlation_id}") for kind, i in ids])
    return "succ", {"transaction_id": message["transaction_id"], "correlation_id": correlation_id,
                    "txnstatus_response": {"txn_type": req["txn_type"], "txn_status": status}}, ""


NO_SUCH_TXN = "no such transaction of yours"


def sync_txn_status(session: Session, rt: Runtime, partner: Partner, env: Envelope) -> Reply:
    """HTTP 200 whatever the status (DCI practice): an unknown transaction is ``rjct`` in the header,
    with the ``err.request.not_found`` error beside header and message, as other sync refusals."""
    status, message, why = txn_status_message(session, partner, env.message, new_id())
    header = callback_header(rt.isps_id, partner.sender_id, "txn-on-status", status, 1, 1 if status == "succ" else 0,
                             (None, why) if why else None)
    body = rt.envelope(header, message)
    if why:
        body["error"] = {"code": "err.request.not_found", "message": why}
    return Reply(200, body, detail=f"txn status: {status}")


def async_txn_status(session: Session, rt: Runtime, partner: Partner, env: Envelope, factory) -> Reply:
    """Acknowledge with a correlation_id, then post txn/on-status carrying that same correlation_id."""
    url = callback_url(partner, env.header, "txn/on-status")
    correlation = new_id()

    def complete() -> None:
        with factory() as s:
            p = partners.partner_by_sender(s, partner.sender_id) or partner
            status, message, why = txn_status_message(s, p, env.message, correlation)
            header = callback_header(rt.isps_id, p.sender_id, "txn-on-status", status, 1,
                                     1 if status == "succ" else 0, (None, why) if why else None)
            deliver(s, rt, p, "txn-on-status", url, rt.envelope(header, message))
            s.commit()
    return Reply(202, env_mod.ack("ACK", correlation), complete, detail=f"txn {correlation}: txn status accepted")


# ---------------------------------------------------------------- subscribe / unsubscribe

def subscribe(session: Session, rt: Runtime, partner: Partner, env: Envelope, factory) -> Reply:
    from isps.interop.dci import subscriptions as subs
    url = callback_url(partner, env.header, "on-subscribe")
    items = env.message["subscribe_request"]
    txn = _ack_or_reject(session, partner, env, "subscribe", items, False)
    response = subs.create(session, partner, env.message, txn.correlation_id)
    txn.status, txn.completed_at, txn.response = "succ", datetime.now(), response
    header = callback_header(rt.isps_id, partner.sender_id, "on-subscribe", "succ", len(items), len(items))
    envelope = rt.envelope(header, response)

    def complete() -> None:
        with factory() as s:
            deliver(s, rt, partner, "on-subscribe", url, envelope)
            s.commit()
    return Reply(202, env_mod.ack("ACK", txn.correlation_id), complete, detail=f"txn {txn.correlation_id}: subscribe")


def unsubscribe(session: Session, rt: Runtime, partner: Partner, env: Envelope, factory) -> Reply:
    from isps.interop.dci import subscriptions as subs
    url = callback_url(partner, env.header, "on-unsubscribe")
    codes = env.message["subscription_codes"]
    txn = _ack_or_reject(session, partner, env, "unsubscribe", [{"reference_id": c} for c in codes], False)
    response = subs.cancel(session, partner, env.message, txn.correlation_id)
    txn.status, txn.completed_at, txn.response = response["status"], datetime.now(), response
    header = callback_header(rt.isps_id, partner.sender_id, "on-unsubscribe", response["status"], len(codes), len(codes))
    envelope = rt.envelope(header, response)

    def complete() -> None:
        with factory() as s:
            deliver(s, rt, partner, "on-unsubscribe", url, envelope)
            s.commit()
    return Reply(202, env_mod.ack("ACK", txn.correlation_id), complete, detail=f"txn {txn.correlation_id}: unsubscribe")


__all__ = ["Runtime", "Reply", "authenticate", "check_message", "sync_search", "async_search", "sync_txn_status",
           "async_txn_status", "subscribe", "unsubscribe", "retry_failed", "deliver"]

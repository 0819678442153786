"""The SMPP 3.4 gateway: ISPS as an ESME bound as a transceiver to a mobile operator's or
aggregator's message centre (SMSC), through ``smpplib``.

* One TCP connection, bound with ``bind_transceiver``; one reader thread reads every PDU (submit
  answers, texts from phones, delivery receipts, enquire_link) and sends ``enquire_link`` when the
  line has been quiet for ``enquire_every`` seconds; a dropped connection is re-opened and re-bound
  with a growing pause (1 s … 30 s).
* :meth:`SmppGateway.send` may be called from many threads: each PDU is written under a lock, and
  the sender waits for the ``submit_sm_resp`` of its own sequence number. Urdu goes as UCS-2
  (data_coding 8), plain text in the GSM alphabet (data_coding 0); a long text is split into parts
  joined by the phone (UDH concatenation), and only the last part asks for a delivery receipt, so a
  message has one gateway id (the last part's) and one receipt.
* Refusals: throttling, a full queue or a system error are temporary (the dispatcher retries);
  anything else (a bad number) is permanent. Written but never answered (a time-out, the line
  dropped): ``uncertain``, never retried blindly.
* Texts from phones and receipts are handed to the callbacks on a small thread pool, so the reader
  never waits on the database or on a reply being sent over this same connection. A long text from a
  phone (concatenated parts) is joined before it is handed over.

Configuration: ``ISPS_SMPP_HOST``, ``ISPS_SMPP_PORT`` (2775), ``ISPS_SMPP_SYSTEM_ID``,
``ISPS_SMPP_PASSWORD``, ``ISPS_SMPP_SOURCE_ADDR`` (the short code, 8123).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import smpplib.client
import smpplib.consts as C
import smpplib.exceptions
import smpplib.gsm

from isps.messaging.gateways import SHORT_CODE, GatewayError, OnReceipt, OnText
from isps.messaging.smsc import concatenation
from isps.messaging.smsc import decode as decode_text

log = logging.getLogger(__name__)
TEMPORARY = frozenset({0x08, 0x14, 0x58, 0x45, 0x64})  # system error, queue full, throttled, submit failed, tx error
RECEIPT_STATES = {"DELIVRD": "delivered", "UNDELIV": "undeliverable", "REJECTD": "undeliverable",
                  "EXPIRED": "undeliverable", "DELETED": "undeliverable"}
MESSAGE_STATES = {2: "delivered", 3: "undeliverable", 5: "undeliverable", 8: "undeliverable"}
PARTS_WAIT = 120.0  # seconds a part of a long text from a phone waits for the others


class _Sequence(smpplib.client.SimpleSequenceGenerator):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def next_sequence(self):
        with self._lock:
            return super().next_sequence()


class _Client(smpplib.client.Client):
    """smpplib's client with every write under one lock (the reader thread and senders share it)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.write_lock = threading.Lock()

    def send_pdu(self, p):
        with self.write_lock:
            return super().send_pdu(p)


class _Waiter:
    __slots__ = ("event", "status", "message_id", "sequence")

    def __init__(self) -> None:
        self.sequence = 0
        self.event = threading.Event()
        self.status: int | None = None
        self.message_id: str | None = None


def _s(value) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class SmppGateway:
    name = "smpp"

    def __init__(self, host: str, port: int, system_id: str, password: str, source_addr: str = SHORT_CODE, *,
                 system_type: str = "", enquire_every: float = 30.0, timeout: float = 10.0,
                 callback_threads: int = 16) -> None:
        if len(system_id) > 15 or len(password) > 8:
            raise ValueError("SMPP 3.4 allows a system id of at most 15 characters and a password of at most 8")
        self.host, self.port, self.system_id, self.password = host, int(port), system_id, password
        self.source_addr, self.system_type = source_addr, system_type
        self.enquire_every, self.timeout = enquire_every, timeout
        self._client: _Client | None = None
        self._connected = threading.Event()
        self._closing = False
        self._waiting: dict[int, _Waiter] = {}
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=callback_threads, thread_name_prefix="smpp-callback")
        self._on_text: OnText | None = None
        self._on_receipt: OnReceipt | None = None
        self.reconnects = 0
        self._parts: dict[tuple, tuple[float, dict[int, bytes]]] = {}  # long texts from phones, part by part

    @classmethod
    def from_env(cls, env) -> SmppGateway:
        missing = [k for k in ("ISPS_SMPP_HOST", "ISPS_SMPP_SYSTEM_ID", "ISPS_SMPP_PASSWORD") if not env.get(k)]
        if missing:
            raise ValueError(f"the SMPP gateway needs {', '.join(missing)}")
        return cls(env["ISPS_SMPP_HOST"], int(env.get("ISPS_SMPP_PORT") or 2775), env["ISPS_SMPP_SYSTEM_ID"],
                   env["ISPS_SMPP_PASSWORD"], env.get("ISPS_SMPP_SOURCE_ADDR") or SHORT_CODE)

    # ---------------------------------------------------------------- connection

    def _bind(self) -> None:
        client = _Client(self.host, self.port, timeout=self.enquire_every, sequence_generator=_Sequence(),
                         allow_unknown_opt_params=True)
        client.set_message_received_handler(self._received)
        client.set_message_sent_handler(self._answered)
        client.set_error_pdu_handler(self._error_pdu)
        client.connect()
        # a transceiver when texts are listened for; a process that only sends (``isps sms send-due``)
        # binds as a transmitter, so the message centre never hands it a citizen's text it would drop
        bind = client.bind_transceiver if self._on_text is not None else client.bind_transmitter
        try:
            bind(system_id=self.system_id, password=self.password, system_type=self.system_type)
        except Exception:
            client.disconnect()
            raise
        try:
            client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._client = client
        self._connected.set()

    def connect(self) -> None:
        """Open and bind (raises :class:`GatewayError` when the message centre cannot be reached or
        refuses the bind), then start reading."""
        try:
            self._bind()
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
            raise GatewayError(f"cannot bind to the SMSC {self.host}:{self.port}: {exc}", temporary=True) from None
        if self._reader is None:
            self._reader = threading.Thread(target=self._read_loop, daemon=True, name="smpp-reader")
            self._reader.start()

    def _lost(self) -> None:
        self._connected.clear()
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001
                pass
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for w in waiting.values():
            w.event.set()  # no status: the sender reports an uncertain outcome

    def _read_loop(self) -> None:
        pause = 1.0
        while not self._closing:
            client = self._client
            if client is None:
                try:
                    self._bind()
                    self.reconnects += 1
                    pause = 1.0
                    log.info("re-bound to the SMSC %s:%s", self.host, self.port)
                except Exception as exc:  # noqa: BLE001 - keep trying until closed
                    log.warning("SMSC %s:%s unreachable (%s); next try in %.0f s", self.host, self.port, exc, pause)
                    time.sleep(pause)
                    pause = min(pause * 2, 30.0)
                continue
            try:
                client.read_once()
            except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError, ValueError) as exc:
                if self._closing:
                    break
                log.warning("SMPP connection lost: %s", exc)
                self._lost()

    # ---------------------------------------------------------------- PDUs in

    def _answered(self, pdu) -> None:
        with self._lock:
            w = self._waiting.pop(pdu.sequence, None)
        if w is not None:
            w.status, w.message_id = int(pdu.status or 0), _s(getattr(pdu, "message_id", None))
            w.event.set()

    def _error_pdu(self, pdu) -> None:
        if pdu.command == "generic_nack":
            self._answered(pdu)
        # an error submit_sm_resp comes on to _answered (smpplib calls it next)

    def _received(self, pdu, **_kw):
        esm = int(pdu.esm_class or 0)
        if esm & 0x3C == 0x04:  # a delivery receipt
            gid = _s(pdu.receipted_message_id)
            body = _s(pdu.short_message)
            if not gid:
                m = re.search(r"id:(\S+)", body)
                gid = m.group(1) if m else ""
            state = MESSAGE_STATES.get(int(pdu.message_state)) if pdu.message_state is not None else None
            if state is None:
                m = re.search(r"stat:(\w+)", body)
                state = RECEIPT_STATES.get(m.group(1)) if m else None
            if gid and state and self._on_receipt is not None:
                self._pool.submit(self._call, self._on_receipt, gid, state, datetime.now())
            return C.SMPP_ESME_ROK
        data = pdu.short_message or pdu.message_payload or b""
        if isinstance(data, str):
            data = data.encode("latin-1")
        phone = _s(pdu.source_addr)
        if esm & 0x40 and data:  # a part of a long text: held until every part has come
            data = self._join(phone, data)
            if data is None:
                return C.SMPP_ESME_ROK
        text = decode_text(data, int(pdu.data_coding or 0))
        if self._on_text is not None:
            ref = f"smpp:{uuid.uuid4().hex}"
            self._pool.submit(self._call, self._on_text, phone, text, ref, datetime.now())
        return C.SMPP_ESME_ROK

    def _join(self, phone: str, data: bytes) -> bytes | None:
        """One part of a concatenated text (UDH element 0x00 or 0x08): the whole text once its last
        part has come, else None. Parts of a text left incomplete for :data:`PARTS_WAIT` seconds are
        dropped (the network gave up on them)."""
        ref, total, seq, payload = concatenation(data)
        if ref is None or not total:
            return payload  # a header without concatenation: the text as it is
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (t, _) in self._parts.items() if now - t > PARTS_WAIT]:
                del self._parts[key]
            key = (phone, ref, total)
            started, got = self._parts.setdefault(key, (now, {}))
            got[seq] = payload
            if len(got) < total:
                return None
            del self._parts[key]
        return b"".join(got[k] for k in sorted(got))

    @staticmethod
    def _call(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - one bad text must not stop the others
            log.exception("an SMPP callback failed")

    # ---------------------------------------------------------------- the Gateway face

    def start(self, on_text: OnText, on_receipt: OnReceipt) -> None:
        """Bind as a transceiver and listen. A message centre that cannot be reached now is tried
        again in the background (sends meanwhile are refused as temporary, and retried)."""
        self._on_text, self._on_receipt = on_text, on_receipt
        if self._client is not None:  # bound earlier to send only: bind again to receive too
            self._lost()
        if self._reader is None:
            try:
                self.connect()
            except GatewayError as exc:
                log.warning("%s; trying again in the background", exc)
                self._reader = threading.Thread(target=self._read_loop, daemon=True, name="smpp-reader")
                self._reader.start()

    def _submit(self, client: _Client, phone: str, part: bytes, coding: int, esm_class: int, last: bool) -> _Waiter:
        w = _Waiter()
        pdu = smpplib.smpp.make_pdu(
            "submit_sm", client=client, source_addr_ton=C.SMPP_TON_SBSCR, source_addr_npi=C.SMPP_NPI_ISDN,
            source_addr=self.source_addr, dest_addr_ton=C.SMPP_TON_INTL, dest_addr_npi=C.SMPP_NPI_ISDN,
            destination_addr=phone, short_message=part, data_coding=coding, esm_class=esm_class,
            registered_delivery=1 if last else 0)
        w.sequence = pdu.sequence
        with self._lock:
            self._waiting[pdu.sequence] = w
        client.send_pdu(pdu)
        return w

    def send(self, message_id: int, phone: str, text: str) -> str:
        if self._reader is None:
            self.connect()
        if not self._connected.wait(self.timeout):
            raise GatewayError("not bound to the SMSC (reconnecting)", temporary=True)
        client = self._client
        if client is None:
            raise GatewayError("not bound to the SMSC (reconnecting)", temporary=True)
        parts, coding, esm_class = smpplib.gsm.make_parts(text)
        gateway_id = ""
        for i, part in enumerate(parts):
            try:
                w = self._submit(client, phone, part, coding, esm_class, i == len(parts) - 1)
            except (smpplib.exceptions.ConnectionError, OSError) as exc:
                raise GatewayError(f"the SMSC connection failed while sending part {i + 1}: {exc}",
                                   temporary=True, uncertain=i > 0) from None
            if not w.event.wait(self.timeout) or w.status is None:
                with self._lock:
                    self._waiting.pop(w.sequence, None)  # a late answer finds nobody waiting
                raise GatewayError(f"no answer from the SMSC for part {i + 1} of {len(parts)}", temporary=True,
                                   uncertain=True)
            if w.status != C.SMPP_ESME_ROK:
                desc = C.DESCRIPTIONS.get(w.status, "unknown status")
                raise GatewayError(f"the SMSC refused part {i + 1} of {len(parts)}: 0x{w.status:02X} {desc}",
                                   temporary=w.status in TEMPORARY, uncertain=i > 0)
            gateway_id = w.message_id or ""
        return gateway_id

    def close(self) -> None:
        self._closing = True
        client = self._client
        if client is not None:
            try:
                client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
                time.sleep(0.05)
            except Exception:  # noqa: BLE001
                pass
        self._lost()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2)
        self._pool.shutdown(wait=True, cancel_futures=True)  # no callback outlives the gateway


__all__ = ["SmppGateway", "TEMPORARY"]

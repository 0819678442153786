"""A loopback SMSC: a small SMPP 3.4 server (a message centre's side of the protocol), written with
``struct`` and threads, for tests, the demo (``isps sms smsc --port 2775``) and the round-trip
benchmark.

It accepts ``bind_transceiver`` (and transmitter/receiver) with a system id and password, answers
``submit_sm`` with a message id, reassembles long messages sent in parts (UDH concatenation),
decodes GSM 7-bit (unpacked, data_coding 0) and UCS-2 (data_coding 8), sends a delivery receipt
(``deliver_sm`` with esm_class 0x04, ``receipted_message_id`` and ``message_state``) when one was
asked for, answers ``enquire_link`` and ``unbind``, and lets a test inject texts from simulated
phones (:meth:`LoopbackSMSC.inject`: a mobile-originated ``deliver_sm``) and wait for what was sent
to each phone (:meth:`LoopbackSMSC.wait_for`). A test can make it refuse the next submissions
(:meth:`refuse`), stay silent (:meth:`mute`), mark a phone undeliverable, or drop every connection
(:meth:`drop`) to test reconnection.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from smpplib.gsm import GSM_CHARACTER_TABLE

BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER = 0x01, 0x02, 0x09
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK, GENERIC_NACK = 0x04, 0x05, 0x06, 0x15, 0x80000000
RESP = 0x80000000
ESME_ROK, ESME_RINVCMDID, ESME_RINVPASWD, ESME_RTHROTTLED = 0x00, 0x03, 0x0E, 0x58
TLV_RECEIPTED_ID, TLV_MESSAGE_STATE, TLV_PAYLOAD = 0x001E, 0x0427, 0x0424
DELIVERED, UNDELIVERABLE = 2, 5


def gsm_encode(text: str) -> bytes:
    """GSM 03.38 default alphabet, one octet per septet (unpacked, as SMPP carries it)."""
    out = bytearray()
    for ch in text:
        i = GSM_CHARACTER_TABLE.index(ch)  # ValueError: not in the alphabet
        out += bytes([i]) if i < 0x80 else bytes([0x1B, i - 0x80])
    return bytes(out)


def gsm_decode(data: bytes) -> str:
    out, esc = [], False
    for b in data:
        if esc:
            out.append(GSM_CHARACTER_TABLE[0x80 + b] if 0x80 + b < len(GSM_CHARACTER_TABLE) else "?")
            esc = False
        elif b == 0x1B:
            esc = True
        else:
            out.append(GSM_CHARACTER_TABLE[b] if b < 0x80 else "?")
    return "".join(out)


def decode(data: bytes, data_coding: int) -> str:
    if data_coding == 8:
        return data.decode("utf-16-be", errors="replace")
    if data_coding == 3:
        return data.decode("latin-1")
    return gsm_decode(data)


def encode(text: str) -> tuple[bytes, int]:
    try:
        return gsm_encode(text), 0
    except ValueError:
        return text.encode("utf-16-be"), 8


def concatenation(data: bytes) -> tuple[int | None, int | None, int | None, bytes]:
    """A short message starting with a user data header (``esm_class`` 0x40): the concatenation
    element's reference, total parts and this part's number (element 0x00, 8-bit reference, or 0x08,
    16-bit), all None without one, and the payload after the header. Used by the loopback SMSC and
    by the SMPP gateway (a citizen's long text)."""
    udh_len = data[0]
    udh, payload = data[1:1 + udh_len], data[1 + udh_len:]
    ref = total = seq = None
    i = 0
    while i + 1 < len(udh):
        iei, ln = udh[i], udh[i + 1]
        if iei == 0x00 and ln == 3 and i + 4 < len(udh):
            ref, total, seq = udh[i + 2], udh[i + 3], udh[i + 4]
        elif iei == 0x08 and ln == 4 and i + 5 < len(udh):
            ref, total, seq = (udh[i + 2] << 8) | udh[i + 3], udh[i + 4], udh[i + 5]
        i += 2 + ln
    return ref, total, seq, payload


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("latin-1"), end + 1


def _c(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def _tlvs(buf: bytes, pos: int) -> dict[int, bytes]:
    out = {}
    while pos + 4 <= len(buf):
        tag, length = struct.unpack(">HH", buf[pos:pos + 4])
        out[tag] = buf[pos + 4:pos + 4 + length]
        pos += 4 + length
    return out


@dataclass
class SubmitSM:
    source: str
    destination: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    message: bytes
    tlvs: dict


def parse_sm(body: bytes) -> SubmitSM:
    """The body of a submit_sm or deliver_sm (the same layout)."""
    pos = 0
    _service, pos = _cstr(body, pos)
    pos += 2  # source ton, npi
    source, pos = _cstr(body, pos)
    pos += 2
    destination, pos = _cstr(body, pos)
    esm_class, _pid, _prio = body[pos], body[pos + 1], body[pos + 2]
    pos += 3
    _sched, pos = _cstr(body, pos)
    _valid, pos = _cstr(body, pos)
    registered, _replace, coding, _default, length = body[pos:pos + 5]
    pos += 5
    message = body[pos:pos + length]
    tlvs = _tlvs(body, pos + length)
    if not message and TLV_PAYLOAD in tlvs:
        message = tlvs[TLV_PAYLOAD]
    return SubmitSM(source, destination, esm_class, registered, coding, message, tlvs)


def build_sm(source: str, destination: str, message: bytes, *, esm_class: int = 0, data_coding: int = 0,
             tlvs: dict[int, bytes] | None = None) -> bytes:
    tlvs = dict(tlvs or {})
    if len(message) > 254:
        tlvs[TLV_PAYLOAD], message = message, b""
    body = (_c("") + bytes([1, 1]) + _c(source) + bytes([0, 0]) + _c(destination) + bytes([esm_class, 0, 0])
            + _c("") + _c("") + bytes([0, 0, data_coding, 0, len(message)]) + message)
    for tag, value in tlvs.items():
        body += struct.pack(">HH", tag, len(value)) + value
    return body


def pdu(command: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command, status, sequence) + body


@dataclass
class Sent:
    """A whole message an ESME submitted (its parts joined)."""
    phone: str
    text: str
    message_id: str
    data_coding: int
    parts: int
    source: str
    at: float = field(default_factory=time.monotonic)


class _Connection(threading.Thread):
    def __init__(self, smsc: LoopbackSMSC, sock: socket.socket) -> None:
        super().__init__(daemon=True, name="smsc-connection")
        self.smsc, self.sock = smsc, sock
        self.lock = threading.Lock()
        self.bound = False
        self.receives = False
        self.seq = itertools.count(1)
        self.source = ""  # what the ESME sends from (its short code), learned from its submissions

    def write(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def run(self) -> None:
        try:
            while True:
                length, command, _status, sequence = struct.unpack(">IIII", self._read(16))
                body = self._read(length - 16) if length > 16 else b""
                if not self.handle(command, sequence, body):
                    break
        except (ConnectionError, OSError, struct.error):
            pass
        finally:
            self.bound = False
            self.smsc._forget(self)
            try:
                self.sock.close()
            except OSError:
                pass

    def handle(self, command: int, sequence: int, body: bytes) -> bool:
        smsc = self.smsc
        if command in (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER):
            system_id, pos = _cstr(body, 0)
            password, pos = _cstr(body, pos)
            ok = system_id == smsc.system_id and password == smsc.password
            self.write(pdu(RESP | command, ESME_ROK if ok else ESME_RINVPASWD, sequence, _c(smsc.name)))
            self.bound = ok
            self.receives = ok and command in (BIND_RECEIVER, BIND_TRANSCEIVER)  # texts and receipts go to it
            if ok:
                smsc._bound(self)
            return ok
        if command == ENQUIRE_LINK:
            smsc.enquire_links += 1
            self.write(pdu(RESP | ENQUIRE_LINK, ESME_ROK, sequence))
            return True
        if command == UNBIND:
            self.write(pdu(RESP | UNBIND, ESME_ROK, sequence))
            return False
        if command & RESP:  # deliver_sm_resp, enquire_link_resp, generic_nack: nothing to do
            return True
        if command == SUBMIT_SM and self.bound:
            if smsc.muted:
                return True  # swallow it: the ESME hears nothing (its send times out)
            status = smsc._refusal()
            if status:
                self.write(pdu(RESP | SUBMIT_SM, status, sequence, _c("")))
                return True
            sm = parse_sm(body)
            self.source = sm.source
            message_id = smsc._next_id()
            self.write(pdu(RESP | SUBMIT_SM, ESME_ROK, sequence, _c(message_id)))
            smsc._submitted(self, sm, message_id)
            return True
        self.write(pdu(GENERIC_NACK, ESME_RINVCMDID, sequence))
        return True

    def deliver(self, source: str, destination: str, message: bytes, *, esm_class: int = 0,
                data_coding: int = 0, tlvs: dict | None = None) -> None:
        self.write(pdu(DELIVER_SM, ESME_ROK, next(self.seq),
                       build_sm(source, destination, message, esm_class=esm_class, data_coding=data_coding,
                                tlvs=tlvs)))


class LoopbackSMSC:
    """Start with :meth:`start` (port 0 picks a free port, read back from :attr:`port`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, system_id: str = "isps",
                 password: str = "isps2026", short_code: str = "8123", receipts: bool = True,
                 name: str = "ISPS-LOOPBACK") -> None:
        self.host, self._port = host, port
        self.system_id, self.password, self.short_code, self.receipts, self.name = (
            system_id, password, short_code, receipts, name)
        self.sent: list[Sent] = []
        self.by_phone: dict[str, list[Sent]] = defaultdict(list)
        self.undeliverable: set[str] = set()
        self.muted = False
        self.enquire_links = 0  # how many enquire_link the ESMEs sent (an idle line is kept alive)
        self._refuse: list[int] = []
        self._parts: dict[tuple, dict[int, bytes]] = {}
        self._conns: list[_Connection] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(0x5A000001)
        self._mo = itertools.count(1)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- running

    def start(self) -> LoopbackSMSC:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(16)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, daemon=True, name="smsc-accept")
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock else self._port

    def _accept(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Connection(self, conn)
            with self._cond:
                self._conns.append(c)
            c.start()

    def drop(self) -> None:
        """Close every ESME connection (as a message centre restarting would)."""
        with self._cond:
            conns = list(self._conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self.drop()

    def __enter__(self) -> LoopbackSMSC:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- test controls

    def refuse(self, count: int, status: int = ESME_RTHROTTLED) -> None:
        """Answer the next ``count`` submissions with an error ``status`` (0x58 throttled: temporary)."""
        with self._cond:
            self._refuse.extend([status] * count)

    def mute(self, on: bool = True) -> None:
        """Take submissions without answering them (the ESME cannot know whether they were taken)."""
        self.muted = on

    def wait_bound(self, timeout: float = 5.0) -> bool:
        """Whether an ESME is bound to receive (a transceiver or receiver) within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: any(c.receives for c in self._conns), timeout)

    def _receivers(self) -> list[_Connection]:
        with self._cond:
            return [c for c in self._conns if c.receives]

    def inject(self, phone: str, text: str, to: str | None = None) -> None:
        """A citizen's phone texts ``text`` to the short code: a deliver_sm to a bound ESME (several,
        with concatenation headers, for a text longer than one SMS)."""
        conns = self._receivers()
        if not conns:
            raise ConnectionError("no ESME is bound to the loopback SMSC as a receiver or transceiver")
        conn = conns[next(self._mo) % len(conns)]
        message, coding = encode(text)
        if len(message) <= 140:
            conn.deliver(phone, to or self.short_code, message, data_coding=coding)
            return
        # a long text arrives as a phone sends it: concatenated parts, each with its UDH (ref, total, n)
        size = 134 if coding == 8 else 153
        chunks = [message[i:i + size] for i in range(0, len(message), size)]
        ref = next(self._mo) & 0xFF
        for n, chunk in enumerate(chunks, start=1):
            udh = bytes([5, 0, 3, ref, len(chunks), n])
            conn.deliver(phone, to or self.short_code, udh + chunk, esm_class=0x40, data_coding=coding)

    def wait_for(self, phone: str, count: int = 1, timeout: float = 10.0) -> list[Sent]:
        """The messages sent to ``phone`` once there are ``count`` of them (fewer if the time runs out)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.by_phone.get(phone, ())) >= count, timeout)
            return list(self.by_phone.get(phone, ()))

    def texts_to(self, phone: str) -> list[str]:
        with self._cond:
            return [s.text for s in self.by_phone.get(phone, ())]

    # ---------------------------------------------------------------- inside

    def _bound(self, _conn: _Connection) -> None:
        with self._cond:
            self._cond.notify_all()

    def _forget(self, conn: _Connection) -> None:
        with self._cond:
            if conn in self._conns:
                self._conns.remove(conn)

    def _refusal(self) -> int:
        with self._cond:
            return self._refuse.pop(0) if self._refuse else 0

    def _next_id(self) -> str:
        with self._cond:
            return f"{next(self._ids):08X}"

    def _submitted(self, conn: _Connection, sm: SubmitSM, message_id: str) -> None:
        data, parts = sm.message, 1
        if sm.esm_class & 0x40 and data:  # a part of a long message: UDH with the concatenation element
            ref, total, seq, payload = concatenation(data)
            if ref is not None:
                key = (sm.destination, ref, total)
                with self._cond:
                    got = self._parts.setdefault(key, {})
                    got[seq] = payload
                    if len(got) < total:
                        whole = None
                    else:
                        whole = b"".join(got[k] for k in sorted(got))
                        del self._parts[key]
                if whole is None:
                    self._receipt(conn, sm, message_id)
                    return
                data, parts = whole, total
        text = decode(data, sm.data_coding)
        sent = Sent(sm.destination, text, message_id, sm.data_coding, parts, sm.source)
        with self._cond:
            self.sent.append(sent)
            self.by_phone[sm.destination].append(sent)
            self._cond.notify_all()
        self._receipt(conn, sm, message_id)

    def _receipt(self, conn: _Connection, sm: SubmitSM, message_id: str) -> None:
        if not (self.receipts and sm.registered_delivery & 0x01):
            return
        bad = sm.destination in self.undeliverable
        stamp = datetime.now().strftime("%y%m%d%H%M")
        stat = "UNDELIV" if bad else "DELIVRD"
        body = (f"id:{message_id} sub:001 dlvrd:{'000' if bad else '001'} submit date:{stamp} done date:{stamp} "
                f"stat:{stat} err:{'001' if bad else '000'} text:").encode("ascii")
        if not conn.receives:  # a transmitter cannot take it: another session of the ESME that receives
            others = self._receivers()
            if not others:
                return
            conn = others[0]
        try:
            conn.deliver(sm.destination, sm.source, body, esm_class=0x04,
                         tlvs={TLV_RECEIPTED_ID: _c(message_id),
                               TLV_MESSAGE_STATE: bytes([UNDELIVERABLE if bad else DELIVERED])})
        except OSError:
            pass


def serve(host: str, port: int, **kw) -> None:  # pragma: no cover - the demo's foreground process
    smsc = LoopbackSMSC(host, port, **kw).start()
    try:
        while True:
            time.sleep(3600)
    finally:
        smsc.close()


__all__ = ["LoopbackSMSC", "Sent", "encode", "decode", "gsm_encode", "gsm_decode"]

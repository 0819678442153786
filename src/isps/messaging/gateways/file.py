"""The development gateway: each message is a JSON line appended to a file (``var/sms-outbox.jsonl``),
so a developer reads what citizens would receive. It never receives texts itself: ``isps sms
receive`` hands one to the short code as a gateway would."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime

from isps.messaging.gateways import GatewayError, OnReceipt, OnText


class FileGateway:
    name = "file"

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, message_id: int, phone: str, text: str) -> str:
        ref = f"file-{message_id}"
        line = json.dumps({"id": ref, "message_id": message_id, "to": phone, "text": text,
                           "at": datetime.now().isoformat(timespec="seconds")}, ensure_ascii=False)
        try:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            with self._lock, open(self.path, "a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            raise GatewayError(f"cannot write {self.path}: {exc.strerror}", temporary=True) from None
        return ref

    def start(self, on_text: OnText, on_receipt: OnReceipt) -> None:
        return None  # texts arrive through `isps sms receive`; a file gives no receipts

    def close(self) -> None:
        return None

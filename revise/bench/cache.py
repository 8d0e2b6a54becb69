"""Every judge request and reply on disk (sqlite), so re-scoring costs nothing.

A reply is stored under the SHA-256 of the whole request (endpoint, model, messages with their
images, parameters); the stored copy of the request has each image replaced by its digest, to keep
the file small while still saying what was asked. Only replies the endpoint actually gave (HTTP 200)
are stored; errors are not, so a later run asks again. Safe to share between threads and between
processes (WAL journal, one writer at a time). ``read=False`` asks afresh and stores the new reply
(e.g. to retry items whose cached reply was malformed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_DATA_URL = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+")


def request_key(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def summarize_request(request: dict[str, Any]) -> str:
    """The request as JSON, each image data URL replaced by ``sha256:<digest>``."""
    text = json.dumps(request, sort_keys=True)
    return _DATA_URL.sub(lambda m: "sha256:" + hashlib.sha256(m.group(0).encode()).hexdigest(), text)


class ReplyCache:
    def __init__(self, path: str | os.PathLike[str], read: bool = True):
        self.path, self.read = Path(path), read
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, request TEXT NOT NULL, "
                         "reply TEXT NOT NULL, created REAL NOT NULL)")

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.read:
            return None
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, request: dict[str, Any], reply: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                             (key, summarize_request(request), json.dumps(reply, sort_keys=True), time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

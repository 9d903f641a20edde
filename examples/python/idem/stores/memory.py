"""An in-process store, for tests and single-process use. Nothing survives the process."""

from __future__ import annotations

import itertools
import threading
from typing import Dict, Optional, Tuple

from ..clock import Clock, SystemClock
from .base import Conflict, Entry, Exists, Inserted, InsertResult, Swapped, SwapResult


class MemoryStore:
    def __init__(self, clock: Optional[Clock] = None):
        self._clock = clock or SystemClock()
        # One lock makes each method one atomic step; the guard's calls are short, so contention stays low.
        self._lock = threading.Lock()
        self._slots: Dict[str, Tuple[Entry, int]] = {}
        # One counter for the whole store: a version is never reissued, also after a key is deleted and rewritten.
        self._versions = itertools.count(1)

    def __len__(self) -> int:
        with self._lock:
            now = self._clock.now_ms()
            return sum(1 for _, expires in self._slots.values() if expires > now)

    def _live(self, key: str) -> Optional[Entry]:
        slot = self._slots.get(key)
        if slot is None:
            return None
        entry, expires_at = slot
        if expires_at <= self._clock.now_ms():
            del self._slots[key]
            return None
        return entry

    def _write(self, key: str, value: bytes, ttl_ms: int) -> int:
        version = next(self._versions)
        self._slots[key] = (Entry(bytes(value), version), self._clock.now_ms() + ttl_ms)
        return version

    def get(self, key: str) -> Optional[Entry]:
        with self._lock:
            return self._live(key)

    def insert_or_get(self, key: str, value: bytes, ttl_ms: int) -> InsertResult:
        with self._lock:
            existing = self._live(key)
            if existing is not None:
                return Exists(existing)
            return Inserted(self._write(key, value, ttl_ms))

    def compare_and_swap(
        self, key: str, expected_version: int, value: bytes, ttl_ms: int
    ) -> SwapResult:
        with self._lock:
            current = self._live(key)
            if current is None or current.version != expected_version:
                return Conflict(current)
            return Swapped(self._write(key, value, ttl_ms))

    def delete_if_version(self, key: str, expected_version: int) -> bool:
        with self._lock:
            current = self._live(key)
            if current is None or current.version != expected_version:
                return False
            del self._slots[key]
            return True

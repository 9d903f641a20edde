"""Helpers shared by the test modules."""

from __future__ import annotations

import socket
import threading
from typing import Any, Optional

from idem import Clock, Guard, Operation, Outcome, Raw, Runtime, StoreUnavailableError
from idem.model import Acquired, ClaimDecision, Lease
from idem.stores.base import StoreBackend

T0 = 1_700_000_000_000


def free_port() -> int:
    """A loopback port that was free a moment ago (nothing listens on it once the probe socket closes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def op(scope: str, key: str) -> Operation:
    return Operation(scope, key)


def raw(payload: bytes) -> Raw:
    return Raw(payload)


def outcome(body: bytes) -> Outcome:
    return Outcome(body, status=200, content_type="application/json")


def expect_acquired(d: ClaimDecision) -> Lease:
    assert isinstance(d, Acquired), f"expected acquired, got {d!r}"
    return d.lease


class FaultyStore:
    """Wraps a store; while `down` is set every call fails with `unavailable`, as a dead server would."""

    def __init__(self, inner: StoreBackend):
        self.inner = inner
        self.down = threading.Event()

    def _check(self) -> None:
        if self.down.is_set():
            raise StoreUnavailableError("injected: store is down")

    def get(self, key):  # type: ignore[no-untyped-def]
        self._check()
        return self.inner.get(key)

    def insert_or_get(self, key, value, ttl_ms):  # type: ignore[no-untyped-def]
        self._check()
        return self.inner.insert_or_get(key, value, ttl_ms)

    def compare_and_swap(self, key, expected_version, value, ttl_ms):  # type: ignore[no-untyped-def]
        self._check()
        return self.inner.compare_and_swap(key, expected_version, value, ttl_ms)

    def delete_if_version(self, key, expected_version):  # type: ignore[no-untyped-def]
        self._check()
        return self.inner.delete_if_version(key, expected_version)


def guard_for(runtime: Runtime, store: StoreBackend, clock: Optional[Clock] = None, **kw: Any) -> Guard:
    return Guard(store, clock=clock, runtime=runtime, **kw)

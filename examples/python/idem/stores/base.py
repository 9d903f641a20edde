"""What a store backend implements: the four atomic steps of `wit/store.wit`, in Python.

A backend raises `StoreUnavailableError` when it cannot reach its storage or times out, `StoreTooLargeError`
when a value exceeds its limit and `StoreError` for anything else; it never answers "absent" because it could not
read. Expired keys are absent for every method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, Union


@dataclass(frozen=True)
class Entry:
    value: bytes
    version: int


@dataclass(frozen=True)
class Inserted:
    version: int


@dataclass(frozen=True)
class Exists:
    entry: Entry


@dataclass(frozen=True)
class Swapped:
    version: int


@dataclass(frozen=True)
class Conflict:
    current: Optional[Entry]


InsertResult = Union[Inserted, Exists]
SwapResult = Union[Swapped, Conflict]

# Versions travel as WIT u64.
MAX_VERSION = (1 << 64) - 1


class StoreBackend(Protocol):
    def get(self, key: str) -> Optional[Entry]:
        """The live entry under `key`, or `None` when absent or expired."""
        ...

    def insert_or_get(self, key: str, value: bytes, ttl_ms: int) -> InsertResult:
        """Atomically: store `value` under a new version if `key` is absent or expired, else return the entry."""
        ...

    def compare_and_swap(
        self, key: str, expected_version: int, value: bytes, ttl_ms: int
    ) -> SwapResult:
        """Atomically: replace the live entry if its version is `expected_version`; never inserts."""
        ...

    def delete_if_version(self, key: str, expected_version: int) -> bool:
        """Atomically: delete the live entry if its version is `expected_version`."""
        ...

"""Plain Python values for the records and variants of `wit/guard.wit`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

from .errors import StoreError


@dataclass(frozen=True)
class Operation:
    scope: str
    key: str


@dataclass(frozen=True)
class Raw:
    """Fingerprint: SHA-256 of exactly these bytes."""

    data: bytes


@dataclass(frozen=True)
class CanonicalJson:
    """Fingerprint: SHA-256 of the canonical form of a JSON document, minus the parts named by `exclude`
    (JSON Pointers such as `/sent_at`)."""

    document: str
    exclude: Sequence[str] = ()


@dataclass(frozen=True)
class Precomputed:
    """Fingerprint: a SHA-256 computed by the caller, exactly 32 bytes."""

    digest: bytes


FingerprintInput = Union[Raw, CanonicalJson, Precomputed]


class StoreFailurePolicy(enum.Enum):
    FAIL_CLOSED = "fail-closed"
    FAIL_OPEN = "fail-open"


@dataclass(frozen=True)
class Options:
    """Per-call settings; `None` takes the guard's default (see `wit/guard.wit`)."""

    lease_ms: Optional[int] = None
    retention_ms: Optional[int] = None
    max_outcome_bytes: Optional[int] = None
    on_store_failure: Optional[StoreFailurePolicy] = None


@dataclass(frozen=True)
class Outcome:
    body: bytes
    status: Optional[int] = None
    content_type: Optional[str] = None
    metadata: Tuple[Tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Lease:
    token: str
    fencing_token: int
    attempt: int
    expires_at: int


@dataclass(frozen=True)
class Acquired:
    lease: Lease
    recovered: bool


@dataclass(frozen=True)
class InProgress:
    attempt: int
    lease_expires_at: int
    retry_after_ms: int


class OutcomeKind(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Replay:
    kind: OutcomeKind
    outcome: Outcome
    finished_at: int
    attempts: int


@dataclass(frozen=True)
class Mismatch:
    pass


@dataclass(frozen=True)
class Unguarded:
    """Only under fail-open: the store failed, nothing was claimed, the caller may run unguarded."""

    error: StoreError


ClaimDecision = Union[Acquired, InProgress, Replay, Mismatch, Unguarded]


class RecordState(enum.Enum):
    IN_PROGRESS = "in-progress"
    RELEASED = "released"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class StatusReport:
    state: RecordState
    attempts: int
    fencing_token: int
    created_at: int
    updated_at: int
    lease_expires_at: Optional[int]
    finished_at: Optional[int]
    outcome_bytes: Optional[int]
    fingerprint: bytes


@dataclass(frozen=True)
class Retryable:
    """Failure worth retrying: the claim is released and the next claim acquires at once."""


@dataclass(frozen=True)
class Terminal:
    """Final failure: stored and replayed to every later claim."""

    outcome: Outcome = field(default_factory=lambda: Outcome(b""))


Failure = Union[Retryable, Terminal]

"""idem from Python: the guard component run by wasmtime, its store kept in SQLite, Redis or memory.

    from idem import Guard, SqliteStore

    guard = Guard(SqliteStore("idem.db"))
    receipt = guard.run("payments", "order-7/charge", lambda: charge(order), payload=order)
"""

from .clock import Clock, ManualClock, SystemClock
from .errors import (
    ComponentLoadError,
    ContendedError,
    CorruptRecordError,
    DeadlineExceededError,
    GuardError,
    GuardTrapError,
    IdemError,
    InProgressError,
    InvalidFingerprintError,
    InvalidKeyError,
    InvalidOptionsError,
    InvalidScopeError,
    InvalidTokenError,
    LeaseLostError,
    MismatchError,
    OperationFailedError,
    OutcomeTooLargeError,
    StoreError,
    StoreTooLargeError,
    StoreUnavailableError,
)
from .guard import Guard
from .model import (
    Acquired,
    CanonicalJson,
    ClaimDecision,
    Failure,
    FingerprintInput,
    InProgress,
    Lease,
    Mismatch,
    Operation,
    Options,
    Outcome,
    OutcomeKind,
    Precomputed,
    Raw,
    RecordState,
    Replay,
    Retryable,
    StatusReport,
    StoreFailurePolicy,
    Terminal,
    Unguarded,
)
from .once import JSON, Attempt, JsonSerializer, Serializer, once, run
from .runtime import Runtime
from .stores.memory import MemoryStore
from .stores.sqlite_store import SqliteStore


def __getattr__(name: str) -> object:
    # Redis support is optional at import time: only RedisStore needs the `redis` package.
    if name == "RedisStore":
        from .stores.redis_store import RedisStore

        return RedisStore
    raise AttributeError(name)


__all__ = [
    "Acquired", "Attempt", "CanonicalJson", "ClaimDecision", "Clock", "ComponentLoadError", "ContendedError",
    "CorruptRecordError", "DeadlineExceededError", "Failure", "FingerprintInput", "Guard", "GuardError",
    "GuardTrapError", "IdemError", "InProgress", "InProgressError", "InvalidFingerprintError", "InvalidKeyError",
    "InvalidOptionsError", "InvalidScopeError", "InvalidTokenError", "JSON", "JsonSerializer", "Lease",
    "LeaseLostError", "ManualClock", "MemoryStore", "Mismatch", "MismatchError", "Operation",
    "OperationFailedError", "Options", "Outcome", "OutcomeKind", "OutcomeTooLargeError", "Precomputed", "Raw",
    "RecordState", "RedisStore", "Replay", "Retryable", "Runtime", "Serializer", "SqliteStore", "StatusReport",
    "StoreError", "StoreFailurePolicy", "StoreTooLargeError", "StoreUnavailableError", "SystemClock", "Terminal",
    "Unguarded", "once", "run",
]

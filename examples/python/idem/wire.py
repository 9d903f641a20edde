"""Conversion between idem's Python values and the values wasmtime-py passes across the component boundary.

wasmtime-py gives records as `Record` objects whose attributes carry the WIT field names (kebab-case, so they are
read with `getattr`), enums as strings, and variants either tagged (`Variant(tag, payload)`) or, when every case
holds a different Python class, as the bare payload. Which one depends on the case types, so every reader here
accepts the shape that WIT type produces."""

from __future__ import annotations

from typing import Any, Optional, Type

from wasmtime.component import Record, Variant

from . import errors
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
    Terminal,
    Unguarded,
)
from .stores.base import Conflict, Entry, Exists, Inserted, InsertResult, Swapped, SwapResult


def record(**fields: Any) -> Record:
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def field(r: Record, name: str) -> Any:
    return getattr(r, name)


# ---- guard exports: arguments -------------------------------------------------------------------------------


def operation(op: Operation) -> Record:
    return record(scope=op.scope, key=op.key)


def fingerprint(fp: FingerprintInput) -> Variant:
    if isinstance(fp, Raw):
        return Variant("raw", bytes(fp.data))
    if isinstance(fp, CanonicalJson):
        return Variant(
            "canonical-json", record(document=fp.document, exclude=list(fp.exclude))
        )
    if isinstance(fp, Precomputed):
        return Variant("precomputed", bytes(fp.digest))
    raise TypeError(f"not a fingerprint input: {fp!r}")


def options(o: Options) -> Record:
    return record(
        lease_ms=o.lease_ms,
        retention_ms=o.retention_ms,
        max_outcome_bytes=o.max_outcome_bytes,
        on_store_failure=None if o.on_store_failure is None else o.on_store_failure.value,
    )


def outcome(o: Outcome) -> Record:
    return record(
        body=bytes(o.body),
        status=o.status,
        content_type=o.content_type,
        metadata=[(str(k), str(v)) for k, v in o.metadata],
    )


def failure(f: Failure) -> Any:
    # `variant failure { retryable, terminal(outcome) }` is untagged: `None` or the outcome record.
    if isinstance(f, Retryable):
        return None
    if isinstance(f, Terminal):
        return outcome(f.outcome)
    raise TypeError(f"not a failure: {f!r}")


# ---- guard exports: results ---------------------------------------------------------------------------------


def unwrap(result: Any) -> Any:
    """The `ok` payload of a `result<_, guard-error>`, or the guard error raised."""
    if isinstance(result, Variant) and result.tag in ("ok", "err"):
        if result.tag == "ok":
            return result.payload
        raise guard_error(result.payload)
    if isinstance(result, Variant):
        # Untagged result: an `ok` payload is never a variant for these functions, so this is the error.
        raise guard_error(result)
    return result


_SIMPLE_ERRORS: dict[str, Type[errors.GuardError]] = {
    "invalid-scope": errors.InvalidScopeError,
    "invalid-key": errors.InvalidKeyError,
    "invalid-fingerprint": errors.InvalidFingerprintError,
    "invalid-options": errors.InvalidOptionsError,
    "invalid-token": errors.InvalidTokenError,
    "corrupt-record": errors.CorruptRecordError,
}


def guard_error(v: Variant) -> errors.GuardError:
    if v.tag in _SIMPLE_ERRORS:
        return _SIMPLE_ERRORS[v.tag](v.payload)
    if v.tag == "outcome-too-large":
        return errors.OutcomeTooLargeError(field(v.payload, "size"), field(v.payload, "limit"))
    if v.tag == "lease-lost":
        return errors.LeaseLostError(field(v.payload, "current-fencing-token"))
    if v.tag == "store":
        return store_error_from_wit(v.payload)
    if v.tag == "contended":
        return errors.ContendedError("record contended: no decision settled; retry shortly")
    return errors.GuardError(f"unknown guard error {v.tag}: {v.payload!r}")


def lease(r: Record) -> Lease:
    return Lease(
        token=field(r, "token"),
        fencing_token=field(r, "fencing-token"),
        attempt=field(r, "attempt"),
        expires_at=field(r, "expires-at"),
    )


def outcome_from_wit(r: Record) -> Outcome:
    return Outcome(
        body=bytes(field(r, "body")),
        status=field(r, "status"),
        content_type=field(r, "content-type"),
        metadata=tuple((k, v) for k, v in field(r, "metadata")),
    )


def claim_decision(v: Variant) -> ClaimDecision:
    p = v.payload
    if v.tag == "acquired":
        return Acquired(lease=lease(field(p, "lease")), recovered=field(p, "recovered"))
    if v.tag == "in-progress":
        return InProgress(
            attempt=field(p, "attempt"),
            lease_expires_at=field(p, "lease-expires-at"),
            retry_after_ms=field(p, "retry-after-ms"),
        )
    if v.tag == "replay":
        return Replay(
            kind=OutcomeKind(field(p, "kind")),
            outcome=outcome_from_wit(field(p, "outcome")),
            finished_at=field(p, "finished-at"),
            attempts=field(p, "attempts"),
        )
    if v.tag == "mismatch":
        return Mismatch()
    if v.tag == "unguarded":
        return Unguarded(store_error_from_wit(p))
    raise ValueError(f"unknown claim decision {v.tag}")


def status_report(r: Optional[Record]) -> Optional[StatusReport]:
    if r is None:
        return None
    return StatusReport(
        state=RecordState(field(r, "state")),
        attempts=field(r, "attempts"),
        fencing_token=field(r, "fencing-token"),
        created_at=field(r, "created-at"),
        updated_at=field(r, "updated-at"),
        lease_expires_at=field(r, "lease-expires-at"),
        finished_at=field(r, "finished-at"),
        outcome_bytes=field(r, "outcome-bytes"),
        fingerprint=bytes(field(r, "fingerprint")),
    )


# ---- store import -------------------------------------------------------------------------------------------
# The store functions return `result<T, store-error>` whose cases hold distinct classes, so wasmtime-py lowers
# them untagged: the host returns the `ok` payload itself, or a `store-error` `Variant` for the error.


def store_error_to_wit(e: errors.StoreError) -> Variant:
    if isinstance(e, errors.StoreUnavailableError):
        return Variant("unavailable", str(e))
    if isinstance(e, errors.StoreTooLargeError):
        return Variant("too-large", int(e.limit))
    return Variant("other", str(e))


def store_error_from_wit(v: Variant) -> errors.StoreError:
    if v.tag == "unavailable":
        return errors.StoreUnavailableError(v.payload)
    if v.tag == "too-large":
        return errors.StoreTooLargeError(v.payload)
    return errors.StoreError(v.payload)


def entry(e: Optional[Entry]) -> Optional[Record]:
    return None if e is None else record(value=bytes(e.value), version=int(e.version))


def insert_result(r: InsertResult) -> Any:
    if isinstance(r, Inserted):
        return int(r.version)
    if isinstance(r, Exists):
        return entry(r.entry)
    raise TypeError(f"not an insert result: {r!r}")


def swap_result(r: SwapResult) -> Any:
    if isinstance(r, Swapped):
        return int(r.version)
    if isinstance(r, Conflict):
        return entry(r.current)
    raise TypeError(f"not a swap result: {r!r}")

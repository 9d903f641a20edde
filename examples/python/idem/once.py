"""Running a function once per operation: `run`, the `once` decorator and the `Attempt` context manager.

The function's return value is stored as the operation's outcome (JSON by default) and every later call with the
same scope and key gets the stored value back instead of running the function again. The first caller receives
the value as it will be replayed (serialized and read back), so all callers see the same thing."""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, Callable, Optional, Protocol, Tuple, Type, TypeVar

from .errors import InProgressError, MismatchError, OperationFailedError
from .model import (
    Acquired,
    CanonicalJson,
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
    Replay,
    Retryable,
    Terminal,
    Unguarded,
)

T = TypeVar("T")
log = logging.getLogger("idem")


class Serializer(Protocol):
    content_type: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JsonSerializer:
    content_type = "application/json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


JSON = JsonSerializer()

_NO_PAYLOAD = object()


def fingerprint_of(payload: Any) -> FingerprintInput:
    """Bytes and strings are fingerprinted as they are; anything else as canonical JSON, so key order and
    whitespace do not matter. No payload binds the key alone."""
    if payload is _NO_PAYLOAD:
        return Raw(b"")
    if isinstance(payload, (Raw, CanonicalJson, Precomputed)):
        return payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return Raw(bytes(payload))
    if isinstance(payload, str):
        return Raw(payload.encode("utf-8"))
    return CanonicalJson(json.dumps(payload))


class Attempt:
    """One attempt at an operation, as a context manager.

        with guard.attempt("payments", "order-7/charge", payload=request) as attempt:
            if attempt.replayed:
                return attempt.result
            attempt.result = charge(request, fencing_token=attempt.fencing_token)

    Entering claims the operation and raises `InProgressError` or `MismatchError` when it must not run, or
    `OperationFailedError` when it failed terminally before. A clean exit stores `attempt.result`; an exception
    listed in `terminal` is stored as a terminal failure, any other releases the claim for a retry. Under
    fail-open a store failure gives an `unguarded` attempt that runs and stores nothing."""

    def __init__(
        self,
        guard: Any,
        scope: str,
        key: str,
        *,
        payload: Any = _NO_PAYLOAD,
        options: Optional[Options] = None,
        serializer: Serializer = JSON,
        terminal: Tuple[Type[BaseException], ...] = (),
        wait_s: float = 0.0,
    ):
        self._guard = guard
        self.operation = Operation(scope, key)
        self._fingerprint = fingerprint_of(payload)
        self._options = options
        self._serializer = serializer
        self._terminal = terminal
        self._wait_s = wait_s
        self.lease: Optional[Lease] = None
        self.recovered = False
        self.replayed = False
        self.unguarded = False
        self.result: Any = None
        self._finished = False

    @property
    def fencing_token(self) -> Optional[int]:
        """Pass it to downstream systems that can refuse a stale writer."""
        return None if self.lease is None else self.lease.fencing_token

    def renew(self, extend_by_ms: int) -> int:
        """Heartbeat for long work: extends the lease to `extend_by_ms` from now."""
        if self.lease is None:
            raise RuntimeError("only an acquired attempt holds a lease")
        expires_at = self._guard.renew(self.operation, self.lease.token, extend_by_ms, self._options)
        self.lease = Lease(
            self.lease.token, self.lease.fencing_token, self.lease.attempt, expires_at
        )
        return expires_at

    def __enter__(self) -> "Attempt":
        deadline = time.monotonic() + self._wait_s
        # The holder usually finishes long before its lease ends, so poll from 10 ms up rather than sleeping the
        # whole suggested `retry-after` at once.
        backoff = 0.01
        while True:
            decision = self._guard.claim(self.operation, self._fingerprint, self._options)
            if isinstance(decision, Acquired):
                self.lease, self.recovered = decision.lease, decision.recovered
                return self
            if isinstance(decision, Replay):
                self.replayed = True
                self.result = self._replayed(decision)
                return self
            if isinstance(decision, Unguarded):
                log.warning(
                    "store failed, running %s unguarded: %s", self.operation, decision.error
                )
                self.unguarded = True
                return self
            if isinstance(decision, Mismatch):
                raise MismatchError(
                    f"{self.operation.scope}/{self.operation.key} was first claimed with a different payload"
                )
            assert isinstance(decision, InProgress)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InProgressError(
                    decision.attempt, decision.lease_expires_at, decision.retry_after_ms
                )
            time.sleep(min(backoff, max(decision.retry_after_ms / 1000, 0.001), remaining))
            backoff = min(backoff * 2, 0.5)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.lease is None or self._finished:
            return
        self._finished = True
        token = self.lease.token
        if exc is None:
            try:
                body = self._serializer.dumps(self.result)
            except Exception:
                self._guard.fail(self.operation, token, Retryable(), self._options)
                raise
            self._guard.complete(
                self.operation,
                token,
                Outcome(body, content_type=self._serializer.content_type),
                self._options,
            )
            # Hand back what every replay will return, not the object the body happened to build.
            self.result = self._serializer.loads(body)
            return
        if isinstance(exc, self._terminal):
            body = JSON.dumps({"type": type(exc).__name__, "message": str(exc)})
            failure: Any = Terminal(Outcome(body, content_type=JSON.content_type))
        else:
            failure = Retryable()
        try:
            self._guard.fail(self.operation, token, failure, self._options)
        except Exception:
            # The body's exception is the one the caller needs; an unrecorded failure only means the lease
            # runs out before the next attempt can take over.
            log.exception("could not record the failure of %s", self.operation)

    def _replayed(self, replay: Replay) -> Any:
        if replay.kind is OutcomeKind.FAILED:
            try:
                error = JSON.loads(replay.outcome.body)
                error_type, message = str(error["type"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                error_type, message = "failed", replay.outcome.body.decode("utf-8", "replace")
            raise OperationFailedError(error_type, message)
        return self._serializer.loads(replay.outcome.body)


def run(guard: Any, scope: str, key: str, fn: Callable[[], T], **kwargs: Any) -> T:
    """Runs `fn` once for the operation `scope`/`key`; every later call returns the stored result.

    Keyword arguments are those of `Attempt`: `payload` (bound to the key: a different one is a `MismatchError`),
    `options`, `serializer`, `terminal` (exception classes stored as a final failure and replayed as
    `OperationFailedError`) and `wait_s` (how long to wait for another attempt in progress before raising
    `InProgressError`)."""
    with Attempt(guard, scope, key, **kwargs) as attempt:
        if not attempt.replayed:
            attempt.result = fn()
    return attempt.result  # type: ignore[no-any-return]


def once(
    guard: Any,
    scope: str,
    *,
    key: Callable[..., str],
    payload: Optional[Callable[..., Any]] = None,
    **kwargs: Any,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: the function runs once per `key(*args, **kwargs)`; later calls return the stored result.

        @guard.once("emails", key=lambda msg: msg["id"], payload=lambda msg: msg)
        def send_welcome(msg): ...
    """

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> T:
            p = payload(*args, **kw) if payload is not None else _NO_PAYLOAD
            return run(guard, scope, key(*args, **kw), lambda: fn(*args, **kw), payload=p, **kwargs)

        return wrapper

    return decorate

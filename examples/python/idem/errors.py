"""Every exception idem raises. Each guard-error case of `wit/guard.wit` has its own class, so callers can catch
exactly the refusal they handle; a store backend raises the `StoreError` classes and the guard hands them back
unchanged when a call failed because of the store."""

from __future__ import annotations

from typing import Optional


class IdemError(Exception):
    """Base of everything idem raises."""


class GuardError(IdemError):
    """The guard refused the call; nothing was changed."""


class InvalidScopeError(GuardError):
    pass


class InvalidKeyError(GuardError):
    pass


class InvalidFingerprintError(GuardError):
    pass


class InvalidOptionsError(GuardError):
    pass


class InvalidTokenError(GuardError):
    pass


class OutcomeTooLargeError(GuardError):
    def __init__(self, size: int, limit: int):
        super().__init__(f"outcome of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class LeaseLostError(GuardError):
    """The lease was taken over, finished, released, forgotten or expired: this worker must stop writing."""

    def __init__(self, current_fencing_token: Optional[int]):
        if current_fencing_token is None:
            msg = "lease lost: the operation has no record any more"
        else:
            msg = f"lease lost: the operation's newest fencing token is {current_fencing_token}"
        super().__init__(msg)
        self.current_fencing_token = current_fencing_token


class CorruptRecordError(GuardError):
    """The store holds bytes under the operation's name that the guard cannot read; they were left untouched."""


class ContendedError(GuardError):
    """So many attempts changed the record at once that no decision settled; retry shortly."""


class StoreError(GuardError):
    """The store failed. Raised by store backends, and by the guard when a call failed because of the store.

    Never means "absent": the guard treats absence as permission to run, so a backend that cannot read must
    raise instead of answering `None`."""


class StoreUnavailableError(StoreError):
    """The store could not be reached or did not answer in time; nothing is known to have been written."""


class StoreTooLargeError(StoreError):
    def __init__(self, limit: int, message: Optional[str] = None):
        super().__init__(message or f"value larger than the store accepts ({limit} bytes)")
        self.limit = limit


class GuardTrapError(IdemError):
    """The guard component trapped or hit its memory cap: a bug or a limit, never a decision."""


class DeadlineExceededError(GuardTrapError):
    """The guard component ran past its deadline and was stopped."""


class ComponentLoadError(IdemError):
    """The guard component could not be found, verified, compiled or linked."""


# Raised by the high-level `Guard.run` / `once` / `attempt` helpers, where a decision other than "run it" must
# stop the caller's code from running.


class InProgressError(IdemError):
    """Another attempt holds a live lease on the operation; do not run it now, ask again after `retry_after`."""

    def __init__(self, attempt: int, lease_expires_at_ms: int, retry_after_ms: int):
        super().__init__(
            f"operation in progress (attempt {attempt}); retry after {retry_after_ms} ms"
        )
        self.attempt = attempt
        self.lease_expires_at_ms = lease_expires_at_ms
        self.retry_after_ms = retry_after_ms

    @property
    def retry_after(self) -> float:
        """The suggested wait, in seconds."""
        return self.retry_after_ms / 1000


class MismatchError(IdemError):
    """The key was first claimed with a different payload; nothing ran and nothing changed (HTTP 422)."""


class OperationFailedError(IdemError):
    """The operation failed terminally before; this is that failure, replayed."""

    def __init__(self, error_type: str, message: str):
        super().__init__(f"{error_type}: {message}" if message else error_type)
        self.error_type = error_type
        self.message = message

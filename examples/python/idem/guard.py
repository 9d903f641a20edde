"""`Guard`: the six calls of `idem:guard/guard`, over a store backend written in Python."""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, TypeVar, Union

import wasmtime
import wasmtime.component as wc

from . import wire
from .clock import Clock, SystemClock
from .errors import DeadlineExceededError, GuardTrapError, StoreError
from .model import (
    ClaimDecision,
    Failure,
    FingerprintInput,
    Operation,
    Options,
    Outcome,
    StatusReport,
)
from .runtime import EPOCH_TICK_S, STORE_INTERFACE, WALL_CLOCK_INTERFACE, Runtime
from .stores.base import StoreBackend

T = TypeVar("T")

DEFAULT_MEMORY_LIMIT = 64 << 20
DEFAULT_DEADLINE_S = 10.0


class Guard:
    """Makes operations happen once, keeping its records in `store`.

    Thread-safe: every call instantiates the component afresh in its own wasmtime Store, so threads share nothing
    but the compiled code and the store backend (which must be safe to call from many threads)."""

    def __init__(
        self,
        store: StoreBackend,
        *,
        clock: Optional[Clock] = None,
        runtime: Optional[Runtime] = None,
        wasm: Union[str, "os.PathLike[str]", None] = None,
        options: Options = Options(),
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ):
        self.store = store
        self.clock = clock or SystemClock()
        self.runtime = runtime or Runtime.load(wasm)
        self.options = options
        self._memory_limit = memory_limit
        self._deadline_ticks = max(1, int(-(-deadline_s // EPOCH_TICK_S)))
        self._deadline_s = deadline_s
        self._linker = _link(self.runtime, store, self.clock)

    # ---- the guard interface ------------------------------------------------------------------------------------

    def claim(
        self,
        op: Operation,
        fingerprint: FingerprintInput,
        options: Optional[Options] = None,
    ) -> ClaimDecision:
        """Decides whether this attempt runs the operation (see the table in `wit/guard.wit`)."""
        result = self._call(
            "claim",
            wire.operation(op),
            wire.fingerprint(fingerprint),
            wire.options(options or self.options),
        )
        return wire.claim_decision(wire.unwrap(result))

    def complete(
        self, op: Operation, token: str, outcome: Outcome, options: Optional[Options] = None
    ) -> int:
        """Stores the outcome of the attempt holding `token`; returns when it was stored (ms since the epoch)."""
        return wire.unwrap(
            self._call(
                "complete",
                wire.operation(op),
                token,
                wire.outcome(outcome),
                wire.options(options or self.options),
            )
        )

    def fail(
        self, op: Operation, token: str, failure: Failure, options: Optional[Options] = None
    ) -> int:
        """Ends the attempt holding `token` without success: released for retry, or a terminal failure stored."""
        return wire.unwrap(
            self._call(
                "fail",
                wire.operation(op),
                token,
                wire.failure(failure),
                wire.options(options or self.options),
            )
        )

    def renew(
        self, op: Operation, token: str, extend_by_ms: int, options: Optional[Options] = None
    ) -> int:
        """Extends the lease held by `token` to `extend_by_ms` from now; returns the new expiry."""
        return wire.unwrap(
            self._call(
                "renew",
                wire.operation(op),
                token,
                int(extend_by_ms),
                wire.options(options or self.options),
            )
        )

    def status(self, op: Operation) -> Optional[StatusReport]:
        """Where an operation stands, without claiming it; `None` when it has no record."""
        return wire.status_report(wire.unwrap(self._call("status", wire.operation(op))))

    def forget(self, op: Operation) -> bool:
        """Administrative: deletes an operation's record whatever its state; returns whether one existed."""
        return bool(wire.unwrap(self._call("forget", wire.operation(op))))

    # ---- running code once --------------------------------------------------------------------------------------

    def run(self, scope: str, key: str, fn: Callable[[], T], **kwargs: Any) -> T:
        """Runs `fn` once for the operation `scope`/`key` and returns its result, replayed on every later call.
        See `idem.once.run` for the keyword arguments."""
        from .once import run

        return run(self, scope, key, fn, **kwargs)

    def once(self, scope: str, **kwargs: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator form of `run`; see `idem.once.once`."""
        from .once import once

        return once(self, scope, **kwargs)

    def attempt(self, scope: str, key: str, **kwargs: Any) -> Any:
        """Context-manager form of `run`; see `idem.once.Attempt`."""
        from .once import Attempt

        return Attempt(self, scope, key, **kwargs)

    # ---- plumbing -----------------------------------------------------------------------------------------------

    def _call(self, name: str, *args: Any) -> Any:
        store = wasmtime.Store(self.runtime.engine)
        # No preopens, arguments, environment or stdio: the guest reads the clock and random bits, nothing else.
        store.set_wasi(wasmtime.WasiConfig())
        store.set_limits(memory_size=self._memory_limit)
        store.set_epoch_deadline(self._deadline_ticks)
        try:
            instance = self._linker.instantiate(store, self.runtime.component)
            func = instance.get_func(store, self.runtime.export_index[name])
            assert func is not None
            return func(store, *args)
        except wasmtime.WasmtimeError as e:
            message = str(e)
            if "interrupt" in message:
                raise DeadlineExceededError(
                    f"the guard ran past its deadline of {self._deadline_s} s and was stopped"
                ) from e
            raise GuardTrapError(f"the guard trapped: {message}") from e


def _link(runtime: Runtime, backend: StoreBackend, clock: Clock) -> wc.Linker:
    """A linker that gives the component WASI 0.2, `backend` as its store and `clock` as its wall clock.

    The host functions close over the backend and clock only, not the Guard: wasmtime-py keeps them in a global
    table until the linker is freed, and a reference back to the Guard would keep both alive for ever."""
    linker = wc.Linker(runtime.engine)
    linker.add_wasip2()
    linker.allow_shadowing = True

    def guarded(op: Callable[..., Any]) -> Callable[..., Any]:
        # An exception escaping a host function becomes a trap, and wasmtime-py reports it through a global slot
        # that concurrent calls would race on. Every failure is answered as a WIT `store-error` instead.
        def host(_ctx: Any, *args: Any) -> Any:
            try:
                return op(*args)
            except StoreError as e:
                return wire.store_error_to_wit(e)
            except Exception as e:  # a backend bug is still a store failure, never "absent"
                return wire.store_error_to_wit(StoreError(f"{type(e).__name__}: {e}"))

        return host

    def now(_ctx: Any) -> Any:
        ms = clock.now_ms()
        return wire.record(seconds=ms // 1000, nanoseconds=(ms % 1000) * 1_000_000)

    def resolution(_ctx: Any) -> Any:
        return wire.record(seconds=0, nanoseconds=1_000_000)

    with linker.root() as root:
        with root.add_instance(STORE_INTERFACE) as s:
            s.add_func("get", guarded(lambda key: wire.entry(backend.get(key))))
            s.add_func(
                "insert-or-get",
                guarded(
                    lambda key, value, ttl: wire.insert_result(
                        backend.insert_or_get(key, bytes(value), ttl)
                    )
                ),
            )
            s.add_func(
                "compare-and-swap",
                guarded(
                    lambda key, expected, value, ttl: wire.swap_result(
                        backend.compare_and_swap(key, expected, bytes(value), ttl)
                    )
                ),
            )
            s.add_func(
                "delete-if-version",
                guarded(lambda key, expected: bool(backend.delete_if_version(key, expected))),
            )
        with root.add_instance(WALL_CLOCK_INTERFACE) as c:
            c.add_func("now", now)
            c.add_func("resolution", resolution)
    return linker

"""The contract of `wit/guard.wit` through the component, on every backend: the scenarios of
tests/tests/component.rs, from Python."""

from __future__ import annotations

import threading
import time

import pytest
from support import FaultyStore, T0, expect_acquired, guard_for, op, outcome, raw

from idem import (
    Acquired,
    CanonicalJson,
    CorruptRecordError,
    GuardTrapError,
    InProgress,
    InvalidFingerprintError,
    InvalidKeyError,
    InvalidOptionsError,
    InvalidScopeError,
    InvalidTokenError,
    LeaseLostError,
    ManualClock,
    MemoryStore,
    Mismatch,
    Options,
    Outcome,
    OutcomeKind,
    OutcomeTooLargeError,
    Precomputed,
    RecordState,
    Replay,
    Retryable,
    StoreError,
    StoreFailurePolicy,
    StoreUnavailableError,
    Terminal,
    Unguarded,
)

OPTS = Options(lease_ms=5_000)


def test_sequential_duplicates_replay_the_outcome_byte_for_byte(runtime, make_store):
    guard = guard_for(runtime, make_store())
    o = op("payments", "order-1/charge")
    lease = expect_acquired(guard.claim(o, raw(b"amount=100"), OPTS))
    stored = Outcome(
        body=bytes(i % 256 for i in range(70_000)),
        status=201,
        content_type="application/octet-stream",
        metadata=(("location", "/charges/1"), ("x-request-id", "r-1")),
    )
    guard.complete(o, lease.token, stored, OPTS)
    for _ in range(5):
        d = guard.claim(o, raw(b"amount=100"), OPTS)
        assert isinstance(d, Replay), d
        assert d.kind is OutcomeKind.SUCCEEDED
        assert d.outcome == stored, "the replay must be the stored outcome, byte for byte"
        assert d.attempts == 1


@pytest.mark.parametrize("threads", [24])
def test_threads_racing_one_key_yield_exactly_one_acquired(runtime, make_store, threads):
    guard = guard_for(runtime, make_store())
    for round_ in range(4):
        o = op("payments", f"race-{round_}")
        barrier = threading.Barrier(threads)
        lock = threading.Lock()
        decisions: list = []
        executions = [0]
        failures: list = []

        def worker() -> None:
            try:
                barrier.wait(timeout=10)
                d = guard.claim(o, raw(b"same payload"), OPTS)
                if isinstance(d, Acquired):
                    with lock:
                        executions[0] += 1
                    guard.complete(o, d.lease.token, outcome(b"charged"), OPTS)
                with lock:
                    decisions.append(d)
            except BaseException as e:  # surfaced below: a thread's exception must fail the test
                failures.append(e)

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in pool), "a racing thread hung"
        assert not failures, failures
        assert len(decisions) == threads
        assert sum(isinstance(d, Acquired) for d in decisions) == 1, f"round {round_}"
        assert executions[0] == 1
        for d in decisions:
            assert isinstance(d, (Acquired, InProgress, Replay)), d
            if isinstance(d, Replay):
                assert d.outcome.body == b"charged"


def test_a_mismatched_payload_is_refused_and_changes_nothing(runtime, make_store):
    guard = guard_for(runtime, make_store())
    o = op("payments", "order-2/charge")

    def json(doc: str) -> CanonicalJson:
        return CanonicalJson(doc, exclude=("/sent_at",))

    lease = expect_acquired(guard.claim(o, json('{"amount":100,"sent_at":1}'), OPTS))
    assert guard.claim(o, json('{"amount":999}'), OPTS) == Mismatch()
    guard.complete(o, lease.token, outcome(b"ok"), OPTS)
    before = guard.status(o)
    assert guard.claim(o, json('{"amount":999}'), OPTS) == Mismatch()
    assert guard.status(o) == before
    # Same payload with keys reordered, whitespace and an excluded timestamp changed: still a replay.
    again = guard.claim(o, json('{ "sent_at": 99,\n  "amount": 100 }'), OPTS)
    assert isinstance(again, Replay), again


def test_a_stale_worker_cannot_complete_after_takeover(runtime, make_store):
    # Real time with a short lease, so that Redis (which keeps its own clock) runs the same scenario.
    guard = guard_for(runtime, make_store())
    short = Options(lease_ms=200)
    o = op("shipments", "work-order/WO-123/release")
    stale = expect_acquired(guard.claim(o, raw(b"wo-123"), short))
    assert isinstance(guard.claim(o, raw(b"wo-123"), short), InProgress)
    time.sleep(0.3)  # the first worker stalls past its lease
    fresh = guard.claim(o, raw(b"wo-123"), short)
    assert isinstance(fresh, Acquired), fresh
    assert fresh.recovered
    assert fresh.lease.fencing_token > stale.fencing_token
    for call in (
        lambda: guard.complete(o, stale.token, outcome(b"second truck"), short),
        lambda: guard.fail(o, stale.token, Terminal(outcome(b"x")), short),
        lambda: guard.renew(o, stale.token, 30_000, short),
    ):
        with pytest.raises(LeaseLostError) as lost:
            call()
        assert lost.value.current_fencing_token == fresh.lease.fencing_token
    guard.complete(o, fresh.lease.token, outcome(b"one truck"), short)
    d = guard.claim(o, raw(b"wo-123"), short)
    assert isinstance(d, Replay)
    assert (d.outcome.body, d.attempts) == (b"one truck", 2)


def test_status_renew_fail_and_forget_work_through_the_boundary(runtime, make_store):
    guard = guard_for(runtime, make_store())
    o = op("inventory", "move/42")
    assert guard.status(o) is None
    lease = expect_acquired(guard.claim(o, raw(b"p"), OPTS))
    before = int(time.time() * 1000)
    renewed = guard.renew(o, lease.token, 10_000, OPTS)
    assert before + 10_000 <= renewed <= int(time.time() * 1000) + 10_000
    assert guard.status(o).lease_expires_at == renewed
    guard.fail(o, lease.token, Retryable(), OPTS)
    s = guard.status(o)
    assert (s.state, s.attempts, s.fencing_token) == (RecordState.RELEASED, 1, 1)
    retry = expect_acquired(guard.claim(o, raw(b"p"), OPTS))
    assert (retry.fencing_token, retry.attempt) == (2, 2)
    guard.fail(o, retry.token, Terminal(outcome(b"out of stock")), OPTS)
    d = guard.claim(o, raw(b"p"), OPTS)
    assert isinstance(d, Replay)
    assert (d.kind, d.outcome.body) == (OutcomeKind.FAILED, b"out of stock")
    assert guard.forget(o) is True
    assert guard.forget(o) is False
    assert expect_acquired(guard.claim(o, raw(b"new"), OPTS)).fencing_token == 1


# Input checks and the memory cap are the guest's own; the backend does not matter to them.


def test_bad_input_is_a_typed_error_never_a_trap(runtime):
    guard = guard_for(runtime, MemoryStore())
    cases = [
        (op("payments", ""), raw(b"p"), OPTS, InvalidKeyError),
        (op("payments", "k" * 1025), raw(b"p"), OPTS, InvalidKeyError),
        (op("pay/ments", "k"), raw(b"p"), OPTS, InvalidScopeError),
        (op("", "k"), raw(b"p"), OPTS, InvalidScopeError),
        (op("payments", "k"), CanonicalJson('{"amount": 1,'), OPTS, InvalidFingerprintError),
        (op("payments", "k"), Precomputed(bytes(16)), OPTS, InvalidFingerprintError),
        (op("payments", "k"), raw(b"p"), Options(lease_ms=0), InvalidOptionsError),
    ]
    for o, fp, opts, error in cases:
        with pytest.raises(error):
            guard.claim(o, fp, opts)

    o = op("payments", "big")
    lease = expect_acquired(guard.claim(o, raw(b"p"), OPTS))
    with pytest.raises(OutcomeTooLargeError) as big:
        guard.complete(o, lease.token, outcome(bytes(7 for _ in range((1 << 20) + 1))), OPTS)
    assert big.value.limit == 1 << 20
    with pytest.raises(InvalidTokenError):
        guard.complete(o, "not-a-token", outcome(b""), OPTS)
    guard.complete(o, lease.token, outcome(b"fits"), OPTS)


def test_corrupt_bytes_in_the_store_are_a_typed_error_and_stay_untouched(runtime, make_store):
    store = make_store()
    guard = guard_for(runtime, store)
    o = op("payments", "k")
    for junk in [b'{"foreign":"json"}', b"IDEM\x01\xff\xff\xff", b"IDEM\x07newer-format", b""]:
        store.insert_or_get("payments/k", junk, 60_000)
        with pytest.raises(CorruptRecordError):
            guard.claim(o, raw(b"p"), OPTS)
        with pytest.raises(CorruptRecordError):
            guard.status(o)
        assert store.get("payments/k").value == junk
        assert guard.forget(o), "an operator can clear it"


def test_store_down_fails_closed_and_open_only_when_asked(runtime, make_store):
    store = FaultyStore(make_store())
    guard = guard_for(runtime, store)
    o = op("payments", "k")
    store.down.set()
    with pytest.raises(StoreUnavailableError):
        guard.claim(o, raw(b"p"), OPTS)
    with pytest.raises(StoreUnavailableError):
        guard.status(o)  # a read that fails is an error, never "no record"
    d = guard.claim(o, raw(b"p"), Options(lease_ms=5_000, on_store_failure=StoreFailurePolicy.FAIL_OPEN))
    assert isinstance(d, Unguarded)
    assert isinstance(d.error, StoreUnavailableError)
    store.down.clear()
    assert guard.status(o) is None
    expect_acquired(guard.claim(o, raw(b"p"), OPTS))


def test_store_down_during_complete_is_an_error_and_the_lease_survives(runtime, make_store):
    store = FaultyStore(make_store())
    guard = guard_for(runtime, store)
    o = op("payments", "k2")
    lease = expect_acquired(guard.claim(o, raw(b"p"), OPTS))
    store.down.set()
    with pytest.raises(StoreError):
        guard.complete(o, lease.token, outcome(b"done"), OPTS)
    store.down.clear()
    guard.complete(o, lease.token, outcome(b"done"), OPTS)
    assert isinstance(guard.claim(o, raw(b"p"), OPTS), Replay)


def test_a_failed_swap_is_a_store_error_not_a_trap(runtime, make_store):
    # `compare-and-swap` returns `result<swap-result, store-error>`, whose error case wasmtime-py 50.0.1 cannot
    # lower unpatched (see idem/_wasmtime_fixes.py): this is the path that proves the patch is in place.
    class SwapFails(FaultyStore):
        def compare_and_swap(self, key, expected_version, value, ttl_ms):  # type: ignore[no-untyped-def]
            raise StoreUnavailableError("injected: swap timed out")

    store = SwapFails(make_store())
    guard = guard_for(runtime, store)
    o = op("payments", "swap")
    lease = expect_acquired(guard.claim(o, raw(b"p"), OPTS))
    with pytest.raises(StoreUnavailableError, match="swap timed out"):
        guard.complete(o, lease.token, outcome(b"done"), OPTS)
    assert guard.status(o).state is RecordState.IN_PROGRESS


def test_the_guest_cannot_exceed_its_memory_cap(runtime):
    guard = guard_for(runtime, MemoryStore(), memory_limit=2 << 20)
    o = op("payments", "mem")
    lease = expect_acquired(guard.claim(o, raw(b"p"), OPTS))
    with pytest.raises(GuardTrapError):
        guard.complete(
            o, lease.token, outcome(bytes(4 << 20)), Options(lease_ms=5_000, max_outcome_bytes=16 << 20)
        )
    # The host survives and the record is untouched: the lease is still usable with a smaller outcome.
    guard.complete(o, lease.token, outcome(b"small"), OPTS)


# ---- on a simulated clock: the backends whose expiry follows the clock they are given ------------------------


def test_takeover_and_renew_on_a_simulated_clock(runtime, make_clocked_store):
    clock = ManualClock(T0)
    guard = guard_for(runtime, make_clocked_store(clock), clock)
    o = op("inventory", "move/43")
    lease = expect_acquired(guard.claim(o, raw(b"p"), OPTS))
    assert lease.expires_at == T0 + 5_000
    clock.advance(4_000)
    assert guard.renew(o, lease.token, 10_000, OPTS) == T0 + 14_000
    clock.advance(9_000)
    assert isinstance(guard.claim(o, raw(b"p"), OPTS), InProgress)
    clock.advance(2_000)
    fresh = guard.claim(o, raw(b"p"), OPTS)
    assert isinstance(fresh, Acquired) and fresh.recovered
    assert fresh.lease.fencing_token == 2
    with pytest.raises(LeaseLostError):
        guard.complete(o, lease.token, outcome(b"late"), OPTS)


def test_retention_ends_and_the_operation_starts_afresh(runtime, make_clocked_store):
    clock = ManualClock(T0)
    guard = guard_for(runtime, make_clocked_store(clock), clock)
    o = op("payments", "retained")
    opts = Options(lease_ms=5_000, retention_ms=60_000)
    lease = expect_acquired(guard.claim(o, raw(b"p"), opts))
    assert guard.complete(o, lease.token, outcome(b"done"), opts) == T0
    clock.advance(59_999)
    assert isinstance(guard.claim(o, raw(b"p"), opts), Replay)
    clock.advance(1)
    again = expect_acquired(guard.claim(o, raw(b"other payload"), opts))
    assert (again.fencing_token, again.attempt) == (1, 1)

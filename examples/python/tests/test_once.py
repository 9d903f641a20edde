"""The Pythonic layer: `run`, the `once` decorator and the `attempt` context manager."""

from __future__ import annotations

import threading
import time

import pytest
from support import FaultyStore, guard_for

from idem import (
    InProgressError,
    MismatchError,
    OperationFailedError,
    Options,
    StoreFailurePolicy,
    StoreUnavailableError,
)


class Declined(Exception):
    pass


def test_the_decorated_function_runs_once_and_its_result_is_replayed(runtime, make_store):
    guard = guard_for(runtime, make_store())
    calls = []

    @guard.once("emails", key=lambda user: f"welcome/{user['id']}", payload=lambda user: user)
    def send_welcome(user):
        calls.append(user["id"])
        return {"sent_to": user["email"], "ids": (1, 2)}

    user = {"id": 7, "email": "a@example.com"}
    first = send_welcome(user)
    assert first == {"sent_to": "a@example.com", "ids": [1, 2]}, "the first caller sees what a replay sees"
    for _ in range(3):
        assert send_welcome(dict(reversed(list(user.items())))) == first
    assert calls == [7]
    with pytest.raises(MismatchError):
        send_welcome({"id": 7, "email": "b@example.com"})
    assert calls == [7]


def test_threads_running_one_operation_execute_it_once(runtime, make_store):
    guard = guard_for(runtime, make_store())
    effects = []
    lock = threading.Lock()
    for round_ in range(3):
        barrier = threading.Barrier(16)
        results: list = []
        failures: list = []

        def charge() -> dict:
            with lock:
                effects.append(round_)
            time.sleep(0.05)  # long enough that the other threads find it in progress
            return {"charge": f"ch_{round_}"}

        def worker() -> None:
            try:
                barrier.wait(timeout=10)
                r = guard.run("payments", f"order-{round_}", charge, payload={"amount": 100}, wait_s=10)
                results.append(r)
            except BaseException as e:
                failures.append(e)

        pool = [threading.Thread(target=worker) for _ in range(16)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(timeout=30)
        assert not failures, failures
        assert results == [{"charge": f"ch_{round_}"}] * 16
    assert effects == [0, 1, 2]


def test_a_caller_that_will_not_wait_is_told_to_retry_later(runtime, make_store):
    guard = guard_for(runtime, make_store())
    with guard.attempt("jobs", "nightly", options=Options(lease_ms=3_000)) as holder:
        assert holder.fencing_token == 1
        with pytest.raises(InProgressError) as busy:
            guard.run("jobs", "nightly", lambda: "never")
        assert 0 < busy.value.retry_after <= 3.0
        holder.result = "report"
    assert guard.run("jobs", "nightly", lambda: "never") == "report"


def test_an_exception_releases_the_claim_for_a_retry(runtime, make_store):
    guard = guard_for(runtime, make_store())
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("downstream timed out")
        return "ok"

    with pytest.raises(ConnectionError):
        guard.run("sync", "acct-1", flaky)
    assert guard.run("sync", "acct-1", flaky) == "ok"
    assert guard.run("sync", "acct-1", flaky) == "ok"
    assert len(attempts) == 2


def test_a_terminal_exception_is_stored_and_replayed(runtime, make_store):
    guard = guard_for(runtime, make_store())
    calls = []

    def refuse() -> None:
        calls.append(1)
        raise Declined("card declined")

    with pytest.raises(Declined):
        guard.run("payments", "order-9", refuse, terminal=(Declined,))
    for _ in range(2):
        with pytest.raises(OperationFailedError) as replayed:
            guard.run("payments", "order-9", refuse, terminal=(Declined,))
        assert (replayed.value.error_type, replayed.value.message) == ("Declined", "card declined")
    assert calls == [1]


def test_the_context_manager_replays_and_exposes_the_lease(runtime, make_store):
    guard = guard_for(runtime, make_store())
    with guard.attempt("payments", "order-10", payload=b"raw body") as a:
        assert not a.replayed and a.fencing_token == 1 and not a.recovered
        a.renew(60_000)
        a.result = [1, "two"]
    with guard.attempt("payments", "order-10", payload=b"raw body") as b:
        assert b.replayed and b.result == [1, "two"]


def test_store_down_fails_closed_unless_fail_open(runtime, make_store):
    store = FaultyStore(make_store())
    guard = guard_for(runtime, store)
    store.down.set()
    ran = []
    with pytest.raises(StoreUnavailableError):
        guard.run("emails", "x", lambda: ran.append(1))
    assert ran == []
    open_ = Options(on_store_failure=StoreFailurePolicy.FAIL_OPEN)
    assert guard.run("emails", "x", lambda: ran.append(1) or "sent", options=open_) == "sent"
    assert ran == [1]

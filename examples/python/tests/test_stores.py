"""The store backends on their own: the atomic steps `wit/store.wit` demands, and real outages."""

from __future__ import annotations

import threading
import time

import pytest
from support import free_port, guard_for, op, raw

from idem import ManualClock, Options, SqliteStore, StoreFailurePolicy, StoreUnavailableError, Unguarded
from idem.stores.base import Conflict, Entry, Exists, Inserted, Swapped


def test_each_step_answers_as_the_wit_says(make_store):
    s = make_store()
    assert s.get("a/b") is None
    ins = s.insert_or_get("a/b", b"v1", 60_000)
    assert isinstance(ins, Inserted)
    assert s.insert_or_get("a/b", b"other", 60_000) == Exists(Entry(b"v1", ins.version))
    assert s.compare_and_swap("a/b", ins.version + 1 if ins.version < 2**64 - 1 else 1, b"x", 60_000) == Conflict(
        Entry(b"v1", ins.version)
    )
    swapped = s.compare_and_swap("a/b", ins.version, b"v2", 60_000)
    assert isinstance(swapped, Swapped) and swapped.version != ins.version
    assert s.get("a/b") == Entry(b"v2", swapped.version)
    assert s.delete_if_version("a/b", ins.version) is False
    assert s.delete_if_version("a/b", swapped.version) is True
    assert s.get("a/b") is None
    assert s.compare_and_swap("a/b", swapped.version, b"v3", 60_000) == Conflict(None), "never inserts"
    again = s.insert_or_get("a/b", b"", 60_000)
    assert isinstance(again, Inserted)
    assert again.version not in (ins.version, swapped.version), "a version is never reissued for a key"
    assert s.get("a/b") == Entry(b"", again.version)


def test_expired_keys_are_absent_for_every_step(make_store):
    s = make_store()
    v = s.insert_or_get("a/ttl", b"short", 50).version
    time.sleep(0.12)
    assert s.get("a/ttl") is None
    assert s.compare_and_swap("a/ttl", v, b"x", 60_000) == Conflict(None)
    assert s.delete_if_version("a/ttl", v) is False
    assert isinstance(s.insert_or_get("a/ttl", b"new", 60_000), Inserted)


def test_expiry_follows_the_given_clock(make_clocked_store):
    clock = ManualClock(1_000)
    s = make_clocked_store(clock)
    s.insert_or_get("a/c", b"v", 100)
    clock.advance(99)
    assert s.get("a/c") is not None
    clock.advance(1)
    assert s.get("a/c") is None


def test_racing_inserts_and_swaps_have_exactly_one_winner(make_store):
    s = make_store()
    threads = 32
    for round_ in range(3):
        key = f"race/{round_}"
        barrier = threading.Barrier(threads)
        inserted, swapped, failures = [], [], []
        base: list = []

        def insert() -> None:
            try:
                barrier.wait(timeout=10)
                r = s.insert_or_get(key, b"v", 60_000)
                if isinstance(r, Inserted):
                    inserted.append(r)
            except BaseException as e:
                failures.append(e)

        def swap() -> None:
            try:
                barrier.wait(timeout=10)
                r = s.compare_and_swap(key, base[0], b"w", 60_000)
                if isinstance(r, Swapped):
                    swapped.append(r)
            except BaseException as e:
                failures.append(e)

        for target in (insert, swap):
            barrier.reset()
            pool = [threading.Thread(target=target) for _ in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join(timeout=30)
            assert not failures, failures
            if target is insert:
                assert len(inserted) == 1, f"round {round_}: {len(inserted)} inserts won"
                base.append(inserted[0].version)
        assert len(swapped) == 1, f"round {round_}: {len(swapped)} swaps won"


def test_an_unopenable_sqlite_database_is_unavailable_not_absent(runtime, tmp_path):
    store = SqliteStore(tmp_path / "missing-dir" / "idem.db")
    with pytest.raises(StoreUnavailableError):
        store.get("a/b")
    guard = guard_for(runtime, store)
    with pytest.raises(StoreUnavailableError):
        guard.claim(op("payments", "k"), raw(b"p"))
    with pytest.raises(StoreUnavailableError):
        guard.status(op("payments", "k"))


def test_an_unreachable_redis_is_unavailable_not_absent(runtime, redis_server):
    from idem.stores.redis_store import RedisStore

    dead_port = free_port()  # nothing listens on it
    store = RedisStore(url=f"redis://127.0.0.1:{dead_port}/0", timeout_s=0.5)
    for call in (
        lambda: store.get("a/b"),
        lambda: store.insert_or_get("a/b", b"v", 1_000),
        lambda: store.compare_and_swap("a/b", 1, b"v", 1_000),
        lambda: store.delete_if_version("a/b", 1),
    ):
        with pytest.raises(StoreUnavailableError):
            call()
    guard = guard_for(runtime, store)
    with pytest.raises(StoreUnavailableError):
        guard.claim(op("payments", "k"), raw(b"p"))
    d = guard.claim(op("payments", "k"), raw(b"p"), Options(on_store_failure=StoreFailurePolicy.FAIL_OPEN))
    assert isinstance(d, Unguarded) and isinstance(d.error, StoreUnavailableError)


def test_redis_records_live_under_one_hash_tag(redis_server):
    import redis

    from idem.stores.redis_store import RedisStore

    client = redis.Redis.from_url(redis_server)
    store = RedisStore(client, prefix="layout:")
    version = store.insert_or_get("payments/order-1", b"v", 60_000).version
    assert client.hgetall("layout:{payments/order-1}") == {b"v": b"v", b"n": str(version).encode()}
    assert 0 < client.pttl("layout:{payments/order-1}") <= 60_000
    client.close()

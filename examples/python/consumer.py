#!/usr/bin/env python3
"""A queue consumer on an at-least-once broker: every message arrives several times, on several workers at once,
and a failed handler's message comes back. idem makes each message's side effect (a charge) happen once.

    python examples/python/consumer.py                       # records in a temporary SQLite file
    python examples/python/consumer.py --redis redis://127.0.0.1:6379/0

The guard component is found through $IDEM_GUARD_WASM, else where `cargo build -p idem-host` leaves it."""

from __future__ import annotations

import argparse
import collections
import os
import queue
import random
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from idem import Guard, InProgressError, SqliteStore  # noqa: E402
from idem.stores.base import StoreBackend  # noqa: E402

DEFAULT_WASM = (
    Path(__file__).resolve().parents[2] / "target/component/wasm32-wasip2/component/idem_component.wasm"
)
MESSAGES = [{"id": f"order-{n}", "amount_cents": 1_000 * n} for n in range(1, 9)]
COPIES = 3  # the broker delivers every message this many times
WORKERS = 4


class Broker:
    """At-least-once delivery: duplicates from the start, and a message that is not acked comes back."""

    def __init__(self, seed: int):
        deliveries = [m for m in MESSAGES for _ in range(COPIES)]
        random.Random(seed).shuffle(deliveries)
        self._queue: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        for m in deliveries:
            self._queue.put(m)
        self.delivered: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def receive(self) -> Optional[Dict[str, Any]]:
        try:
            m = self._queue.get(timeout=0.5)
        except queue.Empty:
            return None
        with self._lock:
            self.delivered[m["id"]] += 1
        return m

    def nack(self, m: Dict[str, Any]) -> None:
        self._queue.put(m)


class PaymentProvider:
    """The side effect: charging twice is the bug idem prevents. The first call for order-3 fails, as a flaky
    network would, so that message is redelivered and retried."""

    def __init__(self) -> None:
        self.charges: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._flaked = False

    def charge(self, order_id: str, amount_cents: int) -> str:
        with self._lock:
            if order_id == "order-3" and not self._flaked:
                self._flaked = True
                raise ConnectionError("payment provider timed out")
            self.charges[order_id] += 1
            return f"ch_{order_id}_{amount_cents}"


def consume(store: StoreBackend, wasm: Optional[str], seed: int) -> int:
    broker, provider = Broker(seed), PaymentProvider()
    guard = Guard(store, wasm=wasm)
    receipts: Dict[str, Any] = {}

    @guard.once("payments", key=lambda m: m["id"], payload=lambda m: m)
    def handle(message: Dict[str, Any]) -> Dict[str, Any]:
        return {"charge": provider.charge(message["id"], message["amount_cents"])}

    def worker() -> None:
        while (m := broker.receive()) is not None:
            try:
                receipts[m["id"]] = handle(m)
            except InProgressError:
                broker.nack(m)  # another worker holds it right now; look again later
            except ConnectionError:
                broker.nack(m)  # the claim was released; the redelivery retries the charge

    threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    exact = True
    for m in MESSAGES:
        ran = provider.charges[m["id"]]
        exact &= ran == 1
        print(
            f"{m['id']}: delivered {broker.delivered[m['id']]}x, side effect ran {ran}x -> {receipts.get(m['id'])}"
        )
    if exact:
        print(f"all {len(MESSAGES)} messages: side effect ran exactly once")
        return 0
    print("a side effect did not run exactly once", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="keep records in this Redis (redis://host:port/db) instead of SQLite")
    parser.add_argument("--wasm", help="the guard component (default: $IDEM_GUARD_WASM or the cargo build output)")
    parser.add_argument("--seed", type=int, default=7, help="shuffles the deliveries")
    args = parser.parse_args()
    wasm = args.wasm or os.environ.get("IDEM_GUARD_WASM") or str(DEFAULT_WASM)

    if args.redis:
        from idem.stores.redis_store import RedisStore

        return consume(RedisStore(url=args.redis, prefix=f"consumer-{os.getpid()}:"), wasm, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "idem.db")
        try:
            return consume(store, wasm, args.seed)
        finally:
            store.close()


if __name__ == "__main__":
    sys.exit(main())

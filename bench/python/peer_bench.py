"""idem (the guard component under wasmtime-py) vs AWS Lambda Powertools' idempotency utility, both on one local
Redis with the same payloads and results. Run by `cargo run --release -p idem-bench`, which reads the JSON this
prints; also runnable alone:

    target/python-venv/bin/python bench/python/peer_bench.py --redis-url redis://127.0.0.1:6379/0 --cycles 500

A *cycle* is a first call for a new order: claim, run the (trivial) operation, store its result. A *duplicate*
is a repeated call for an order already done: the stored result comes back and the operation does not run.
Both sides serialise the result as JSON and derive the payload identity from the JSON document."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "python"))

import redis  # noqa: E402

RESULT = {"charge": "ch_0123456789abcdef", "status": "succeeded", "amount": 1999, "currency": "EUR",
          "created": 1700000000}


def order(run: str, i: int) -> dict:
    return {"order": f"{run}-order-{i:08}", "amount": 1999, "currency": "EUR", "customer": "cust-42",
            "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}], "note": "benchmark payload"}


def summary(ns: list[int], wall_s: float) -> dict:
    v = sorted(ns)
    pick = lambda q: v[round((len(v) - 1) * q)] / 1000.0  # noqa: E731
    return {"n": len(v), "mean_us": sum(v) / len(v) / 1000.0, "p50_us": pick(0.5), "p99_us": pick(0.99),
            "per_sec": len(v) / wall_s}


def idem_side(url: str):
    from idem import Guard, RedisStore

    guard = Guard(RedisStore(url=url))
    executed = []

    def call(o: dict) -> dict:
        def op() -> dict:
            executed.append(1)
            return RESULT
        return guard.run("bench", o["order"], op, payload=o)

    return call, executed


def powertools_side(url: str):
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.persistence.redis import RedisCachePersistenceLayer

    layer = RedisCachePersistenceLayer(client=redis.Redis.from_url(url))
    config = IdempotencyConfig(expires_after_seconds=86_400, use_local_cache=False)
    executed = []

    @idempotent_function(data_keyword_argument="o", persistence_store=layer, config=config)
    def call(o: dict) -> dict:
        executed.append(1)
        return RESULT

    return (lambda o: call(o=o)), executed


def main() -> None:
    # Powertools warns that it is not inside Lambda and that this layer's name is deprecated: both expected here.
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    run = uuid.uuid4().hex[:8]
    sides = {"idem": idem_side(args.redis_url), "powertools": powertools_side(args.redis_url)}
    n, rounds = args.cycles, max(1, args.rounds)
    per = -(-n // rounds)
    out = {}
    for kind in ("cycle", "duplicate"):
        ns = {name: [] for name in sides}
        wall = {name: 0.0 for name in sides}
        done = {name: 0 for name in sides}
        # Warm up (imports, script loading, connection) outside the timings.
        for name, (call, _) in sides.items():
            for i in range(20):
                call(order(f"{run}-warm-{name}-{kind}", i))
        for _ in range(rounds):
            for name, (call, executed) in sides.items():
                tag = f"{run}-{name}"
                start = done[name]
                end = min(n, start + per)
                for i in range(start, end):
                    # Duplicates replay the orders the cycle phase completed.
                    o = order(tag, i)
                    t0 = time.perf_counter_ns()
                    result = call(o)
                    ns[name].append(time.perf_counter_ns() - t0)
                    assert result == RESULT, result
                done[name] = end
        for name, (_, executed) in sides.items():
            wall[name] = sum(ns[name]) / 1e9
            out.setdefault(name, {})[kind] = summary(ns[name], wall[name])
            out[name][kind]["executed"] = len(executed)
            executed.clear()
    # Every cycle ran the operation once and no duplicate ran it.
    for name in sides:
        assert out[name]["cycle"]["executed"] == n + 20, out[name]
        assert out[name]["duplicate"]["executed"] == 20, out[name]
    from importlib.metadata import version

    out["versions"] = {"python": sys.version.split()[0], "wasmtime": version("wasmtime"),
                       "aws-lambda-powertools": version("aws-lambda-powertools"), "redis": version("redis")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

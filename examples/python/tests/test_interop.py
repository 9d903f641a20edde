"""Services in different languages guard the same operations in one Redis: records written by the Rust host
(`idem serve --redis`) and by this binding must mean the same thing to both, in both directions."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from support import expect_acquired, free_port, op, raw

from idem import Guard, Outcome, StoreError
from idem.model import InProgress, Replay
from idem.stores.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[3]


def _idem_binary() -> Path:
    path = Path(os.environ.get("IDEM_BIN") or ROOT / "target/debug/idem")
    if not path.is_file():
        pytest.fail(f"the idem binary is not at {path}: set IDEM_BIN (cargo xtask test sets it)", pytrace=False)
    return path


@pytest.fixture
def server(redis_server: str, tmp_path: Path) -> Iterator[str]:
    """`idem serve` on its own loopback port, keeping records in the shared Redis; its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [str(_idem_binary()), "serve", "--redis", redis_server, "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(tmp_path / "unused")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"idem serve exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("idem serve did not answer within 20 s")
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _post(base: str, path: str, body: dict) -> Any:
    req = urllib.request.Request(
        f"{base}{path}", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{path} answered {e.code}: {e.read()!r}") from e


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as r:
        return json.load(r)


def test_rust_and_python_share_records_in_redis(runtime, redis_server: str, server: str) -> None:
    # The default prefix on both sides: that is what a mixed deployment runs with.
    store = RedisStore(url=redis_server)
    guard = Guard(store, runtime=runtime)
    scope = f"interop-{uuid.uuid4().hex[:8]}"
    payload = b'{"amount":100}'
    try:
        # Rust claims: while its lease is live, Python must not run the operation too.
        claimed = _post(server, "/v1/claim", {"scope": scope, "key": "from-rust", "payload": payload.decode()})
        assert claimed["decision"] == "acquired", claimed
        d = guard.claim(op(scope, "from-rust"), raw(payload))
        assert isinstance(d, InProgress), f"a Rust-held lease must read as in progress from Python, got {d!r}"
        assert d.attempt == 1

        # Rust completes: Python replays exactly what Rust stored.
        _post(server, "/v1/complete", {"scope": scope, "key": "from-rust", "token": claimed["lease"]["token"],
                                        "outcome": {"status": 201, "body": "charged", "content_type": "text/plain"}})
        d = guard.claim(op(scope, "from-rust"), raw(payload))
        assert isinstance(d, Replay), d
        assert d.outcome == Outcome(b"charged", status=201, content_type="text/plain")
        assert d.attempts == 1

        # Python claims and completes: Rust sees in progress, then the stored outcome.
        lease = expect_acquired(guard.claim(op(scope, "from-python"), raw(payload)))
        busy = _post(server, "/v1/claim", {"scope": scope, "key": "from-python", "payload": payload.decode()})
        assert busy["decision"] == "in_progress", busy
        guard.complete(op(scope, "from-python"), lease.token, Outcome(b"shipped", status=200))
        replay = _post(server, "/v1/claim", {"scope": scope, "key": "from-python", "payload": payload.decode()})
        assert replay["decision"] == "replay", replay
        assert replay["outcome"]["body"] == "shipped" and replay["outcome"]["status"] == 200
        record = _get(server, f"/v1/records/{scope}/from-python")
        assert record["state"] == "succeeded" and record["fencing_token"] == lease.fencing_token, record

        # A different payload is refused on either side, whoever wrote the record.
        other = _post(server, "/v1/claim", {"scope": scope, "key": "from-python", "payload": "other"})
        assert other["decision"] == "mismatch", other
    finally:
        store.close()


def test_a_half_written_record_is_an_error_not_a_free_key(redis_server: str) -> None:
    store = RedisStore(url=redis_server, prefix=f"half-{uuid.uuid4().hex}:")
    try:
        name = store.record_key("s/k")
        store._redis.hset(name, "n", "7")
        for step in (
            lambda: store.get("s/k"),
            lambda: store.insert_or_get("s/k", b"x", 60_000),
            lambda: store.compare_and_swap("s/k", 7, b"x", 60_000),
            lambda: store.delete_if_version("s/k", 7),
        ):
            with pytest.raises(StoreError):
                step()
        assert store._redis.hgetall(name) == {b"n": b"7"}, "the foreign hash is left as it was"
    finally:
        store.close()

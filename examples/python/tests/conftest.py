"""Fixtures: the verified guard component, a private redis-server, and one store factory per backend."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest
from support import free_port

from idem import Clock, MemoryStore, Runtime, SqliteStore
from idem.stores.base import StoreBackend

BACKENDS = ["memory", "sqlite", "redis"]


def _component_under_test() -> Path:
    """The component named by IDEM_GUARD_WASM and pinned by IDEM_GUARD_SHA256, so the suite never passes against
    some other build lying around."""
    path = os.environ.get("IDEM_GUARD_WASM")
    expected = os.environ.get("IDEM_GUARD_SHA256")
    if not path or not expected:
        raise pytest.UsageError(
            "set IDEM_GUARD_WASM to the guard component and IDEM_GUARD_SHA256 to its sha256 "
            "(cargo xtask test sets both)"
        )
    try:
        actual = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise pytest.UsageError(f"cannot read IDEM_GUARD_WASM: {e}") from e
    if actual != expected.strip().lower():
        raise pytest.UsageError(f"{path} has sha256 {actual}, but IDEM_GUARD_SHA256 is {expected}")
    return Path(path)


def pytest_configure(config: pytest.Config) -> None:
    # Checked before any test runs: a missing or different component fails the whole run, never part of it.
    config.stash[_WASM] = _component_under_test()


_WASM = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def runtime(pytestconfig: pytest.Config) -> Runtime:
    return Runtime.load(pytestconfig.stash[_WASM])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A redis-server of our own on a free loopback port, without persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)", pytrace=False)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, proc, timeout_s=10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"redis-server exited with {proc.returncode} before accepting connections")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"redis-server did not answer on port {port} within {timeout_s} s")


StoreFactory = Callable[[Optional[Clock]], StoreBackend]


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds fresh, empty stores of one backend. Redis keeps real time, so it ignores a simulated clock; tests
    that move a clock use `make_clocked_store` instead."""
    made: list = []

    def factory(clock: Optional[Clock] = None) -> StoreBackend:
        store: StoreBackend
        if request.param == "memory":
            store = MemoryStore(clock)
        elif request.param == "sqlite":
            store = SqliteStore(tmp_path / f"idem-{len(made)}.db", clock=clock)
        else:
            from idem.stores.redis_store import RedisStore

            url = request.getfixturevalue("redis_server")
            store = RedisStore(url=url, prefix=f"test-{uuid.uuid4().hex}:")
        made.append(store)
        return store

    yield factory
    for store in made:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture(params=["memory", "sqlite"])
def make_clocked_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Backends whose expiry follows the clock they are given."""
    made: list = []

    def factory(clock: Optional[Clock] = None) -> StoreBackend:
        store = (
            MemoryStore(clock)
            if request.param == "memory"
            else SqliteStore(tmp_path / f"idem-{len(made)}.db", clock=clock)
        )
        made.append(store)
        return store

    yield factory
    for store in made:
        getattr(store, "close", lambda: None)()

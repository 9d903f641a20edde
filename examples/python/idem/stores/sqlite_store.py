"""A store in one SQLite database file, shared by every thread and process that opens the same path.

Each write method runs as one `BEGIN IMMEDIATE` transaction: it takes the database's write lock before it reads,
so the read and the write that depends on it form one atomic step against every other connection, in this
process or another. Durability is SQLite's with `journal_mode=WAL` and `synchronous=FULL`: a write that returned
survives a crash of the process or the machine."""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Callable, List, Optional, TypeVar, Union

from ..clock import Clock, SystemClock
from ..errors import StoreError, StoreUnavailableError
from .base import Conflict, Entry, Exists, Inserted, InsertResult, Swapped, SwapResult

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idem_records (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
-- A single counter for the whole database: deleting or expiring a key never lets its version come back.
CREATE TABLE IF NOT EXISTS idem_versions (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT OR IGNORE INTO idem_versions (id, last) VALUES (1, 0);
"""


class SqliteStore:
    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        *,
        clock: Optional[Clock] = None,
        busy_timeout_s: float = 5.0,
    ):
        if str(path) == ":memory:":
            raise ValueError("each thread opens its own connection: use a file path, not :memory:")
        self._path = os.fspath(path)
        self._clock = clock or SystemClock()
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._opened: List[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()

    def close(self) -> None:
        with self._opened_lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode (isolation_level=None): transactions are begun explicitly, IMMEDIATE, below.
            conn = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    def _run(self, step: Callable[[sqlite3.Connection, int], T], *, write: bool) -> T:
        try:
            conn = self._connection()
            now = self._clock.now_ms()
            if not write:
                return step(conn, now)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = step(conn, now)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            # Locked past the busy timeout, cannot open, disk I/O: the store cannot answer now.
            raise StoreUnavailableError(f"sqlite {self._path}: {e}") from e
        except sqlite3.Error as e:
            raise StoreError(f"sqlite {self._path}: {e}") from e

    @staticmethod
    def _live(conn: sqlite3.Connection, key: str, now: int) -> Optional[Entry]:
        row = conn.execute(
            "SELECT value, version FROM idem_records WHERE key = ? AND expires_at > ?", (key, now)
        ).fetchone()
        return None if row is None else Entry(bytes(row[0]), row[1])

    @staticmethod
    def _write(conn: sqlite3.Connection, key: str, value: bytes, ttl_ms: int, now: int) -> int:
        (version,) = conn.execute(
            "UPDATE idem_versions SET last = last + 1 WHERE id = 1 RETURNING last"
        ).fetchone()
        conn.execute(
            "INSERT INTO idem_records (key, value, version, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, "
            "expires_at = excluded.expires_at",
            (key, bytes(value), version, _expiry(now, ttl_ms)),
        )
        return version

    def get(self, key: str) -> Optional[Entry]:
        return self._run(lambda conn, now: self._live(conn, key, now), write=False)

    def insert_or_get(self, key: str, value: bytes, ttl_ms: int) -> InsertResult:
        def step(conn: sqlite3.Connection, now: int) -> InsertResult:
            existing = self._live(conn, key, now)
            if existing is not None:
                return Exists(existing)
            return Inserted(self._write(conn, key, value, ttl_ms, now))

        return self._run(step, write=True)

    def compare_and_swap(
        self, key: str, expected_version: int, value: bytes, ttl_ms: int
    ) -> SwapResult:
        def step(conn: sqlite3.Connection, now: int) -> SwapResult:
            current = self._live(conn, key, now)
            if current is None or current.version != expected_version:
                return Conflict(current)
            return Swapped(self._write(conn, key, value, ttl_ms, now))

        return self._run(step, write=True)

    def delete_if_version(self, key: str, expected_version: int) -> bool:
        if expected_version > _MAX_EXPIRY:
            return False  # no version this store issues is that large, and SQLite could not bind it

        def step(conn: sqlite3.Connection, now: int) -> bool:
            cur = conn.execute(
                "DELETE FROM idem_records WHERE key = ? AND version = ? AND expires_at > ?",
                (key, expected_version, now),
            )
            return cur.rowcount == 1

        return self._run(step, write=True)

    def purge_expired(self) -> int:
        """Reclaims the space of expired rows (they already read as absent); returns how many went."""

        def step(conn: sqlite3.Connection, now: int) -> int:
            return conn.execute("DELETE FROM idem_records WHERE expires_at <= ?", (now,)).rowcount

        return self._run(step, write=True)


# SQLite integers are signed 64-bit; a TTL past that is "for ever" in practice.
_MAX_EXPIRY = (1 << 63) - 1


def _expiry(now: int, ttl_ms: int) -> int:
    return min(now + ttl_ms, _MAX_EXPIRY)

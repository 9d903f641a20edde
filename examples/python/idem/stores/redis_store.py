"""A store in Redis. Each write method is one Lua script (EVALSHA, falling back to EVAL), which Redis runs as one
atomic step; every key a script touches is passed in KEYS.

Layout: one hash per operation record, `PREFIX{SCOPE/KEY}` with fields `v` (the value) and `n` (its version),
expiring with `PEXPIRE`: the very layout of the Rust host's and the JavaScript binding's Redis stores, so services in
any of the three languages share one Redis and guard the same operations. A hash holding only one of the two fields
is not absent but foreign or half-written, and every step refuses it with a store error rather than overwrite it. The braces make the whole record name a Redis Cluster hash tag, so a record never spans
slots. Redis never returns a key whose expiry has passed, which is exactly the absence `wit/store.wit` asks for.

Versions are 64 random bits drawn by the client (the WIT allows it: the guard only compares them for equality), so
no counter key has to outlive the records. Lua numbers are doubles and would round 64-bit integers, so versions
stay decimal strings inside Redis and are compared as strings."""

from __future__ import annotations

import secrets
from typing import Any, Optional

import redis
from redis import exceptions as rx

from ..errors import StoreError, StoreUnavailableError
from .base import MAX_VERSION, Conflict, Entry, Exists, Inserted, InsertResult, Swapped, SwapResult

# Every script starts by reading the record; a hash with one field but not the other is refused, never overwritten.
_READ = """
local cur = redis.call('HMGET', KEYS[1], 'v', 'n')
if (cur[1] and not cur[2]) or (cur[2] and not cur[1]) then
  return redis.error_reply('IDEMFOREIGN key holds a hash that is not an idem record')
end
"""

_INSERT_OR_GET = _READ + """
if cur[1] then
  return {0, cur[1], cur[2]}
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1}
"""

_COMPARE_AND_SWAP = _READ + """
if not cur[1] then
  return {0}
end
if cur[2] ~= ARGV[1] then
  return {0, cur[1], cur[2]}
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1}
"""

_DELETE_IF_VERSION = _READ + """
if cur[2] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Redis keeps expiry as a signed 64-bit millisecond time; anything near that is "for ever" in practice.
_MAX_TTL_MS = 1 << 50


class RedisStore:
    def __init__(
        self,
        client: Optional["redis.Redis[bytes]"] = None,
        *,
        url: Optional[str] = None,
        prefix: str = "idem:",
        timeout_s: float = 2.0,
    ):
        if client is None:
            if url is None:
                raise ValueError("give a redis client or a url")
            client = redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
        self._redis = client
        self._prefix = prefix
        self._insert_or_get = client.register_script(_INSERT_OR_GET)
        self._compare_and_swap = client.register_script(_COMPARE_AND_SWAP)
        self._delete_if_version = client.register_script(_DELETE_IF_VERSION)

    def close(self) -> None:
        self._redis.close()

    def record_key(self, key: str) -> str:
        return f"{self._prefix}{{{key}}}"

    def get(self, key: str) -> Optional[Entry]:
        value, version = self._call(self._redis.hmget, self.record_key(key), "v", "n")
        if value is None and version is None:
            return None
        if value is None or version is None:
            raise StoreError(f"redis: {self.record_key(key)} holds a hash that is not an idem record")
        return Entry(bytes(value), int(version))

    def insert_or_get(self, key: str, value: bytes, ttl_ms: int) -> InsertResult:
        version = _new_version()
        reply = self._call(
            self._insert_or_get,
            keys=[self.record_key(key)],
            args=[bytes(value), str(version), _ttl(ttl_ms)],
        )
        if reply[0] == 1:
            return Inserted(version)
        return Exists(Entry(bytes(reply[1]), int(reply[2])))

    def compare_and_swap(
        self, key: str, expected_version: int, value: bytes, ttl_ms: int
    ) -> SwapResult:
        version = _new_version()
        reply = self._call(
            self._compare_and_swap,
            keys=[self.record_key(key)],
            args=[str(expected_version), bytes(value), str(version), _ttl(ttl_ms)],
        )
        if reply[0] == 1:
            return Swapped(version)
        if len(reply) == 1:
            return Conflict(None)
        return Conflict(Entry(bytes(reply[1]), int(reply[2])))

    def delete_if_version(self, key: str, expected_version: int) -> bool:
        deleted = self._call(
            self._delete_if_version, keys=[self.record_key(key)], args=[str(expected_version)]
        )
        return int(deleted) == 1

    @staticmethod
    def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError) as e:
            raise StoreUnavailableError(f"redis: {e}") from e
        except rx.RedisError as e:
            raise StoreError(f"redis: {e}") from e


def _new_version() -> int:
    # 64 random bits; 0 is skipped only so that a version is always truthy in logs and tooling.
    return secrets.randbelow(MAX_VERSION) + 1


def _ttl(ttl_ms: int) -> int:
    return max(1, min(ttl_ms, _MAX_TTL_MS))

"""Store backends for the guard's `store` import. `RedisStore` lives in `idem.stores.redis_store` so that the
`redis` package is needed only by those who use it."""

from .base import Conflict, Entry, Exists, Inserted, StoreBackend, Swapped
from .memory import MemoryStore
from .sqlite_store import SqliteStore

__all__ = ["Conflict", "Entry", "Exists", "Inserted", "MemoryStore", "SqliteStore", "StoreBackend", "Swapped"]

"""The compiled guard component: one wasmtime Engine and Component per file, shared by every Guard that uses it.
Compiling takes a noticeable fraction of a second; instantiating from the compiled component takes microseconds,
so each guard call gets a fresh instance and nothing leaks between calls or threads."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Dict, Optional, Union

import wasmtime
import wasmtime.component as wc

from . import _wasmtime_fixes
from .errors import ComponentLoadError

_wasmtime_fixes.apply()

WASM_ENV = "IDEM_GUARD_WASM"
GUARD_INTERFACE = "idem:guard/guard@0.1.0"
STORE_INTERFACE = "idem:guard/store@0.1.0"
# The wall clock the component reads. Defining it after `add_wasip2` shadows WASI's, which is how a guard runs on
# a host-supplied (possibly simulated) clock; semver matching makes this name cover every 0.2.x import.
WALL_CLOCK_INTERFACE = "wasi:clocks/wall-clock@0.2.6"
EXPORTS = ("claim", "complete", "fail", "renew", "status", "forget")

# How often the deadline clock ticks: the granularity of a guard's `deadline_s`.
EPOCH_TICK_S = 0.01


class Runtime:
    """A compiled guard component. Build one with `Runtime.load` (cached per path)."""

    def __init__(self, wasm: bytes, *, origin: str = "<bytes>"):
        config = wasmtime.Config()
        # Epoch interruption bounds how long one guest call may run, at a far lower cost than fuel.
        config.epoch_interruption = True
        try:
            self.engine = wasmtime.Engine(config)
            self.component = wc.Component(self.engine, wasm)
        except wasmtime.WasmtimeError as e:
            raise ComponentLoadError(f"cannot compile the guard component {origin}: {e}") from e
        self.origin = origin
        guard = self.component.get_export_index(GUARD_INTERFACE)
        if guard is None:
            raise ComponentLoadError(f"{origin} does not export {GUARD_INTERFACE}")
        self.export_index: Dict[str, wc.ExportIndex] = {}
        for name in EXPORTS:
            index = self.component.get_export_index(name, guard)
            if index is None:
                raise ComponentLoadError(f"{origin} does not export {GUARD_INTERFACE}#{name}")
            self.export_index[name] = index
        _Ticker.start(self.engine)

    _cache: Dict[str, "Runtime"] = {}
    _cache_lock = threading.Lock()

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]", None] = None) -> "Runtime":
        """The component at `path`, or at `$IDEM_GUARD_WASM` when no path is given; compiled once per path."""
        if path is None:
            path = os.environ.get(WASM_ENV)
            if not path:
                raise ComponentLoadError(
                    f"no guard component given: pass its path or set {WASM_ENV} "
                    "(cargo build -p idem-host writes target/component/wasm32-wasip2/component/idem_component.wasm)"
                )
        key = os.path.realpath(path)
        with cls._cache_lock:
            runtime = cls._cache.get(key)
            if runtime is None:
                try:
                    with open(key, "rb") as f:
                        wasm = f.read()
                except OSError as e:
                    raise ComponentLoadError(f"cannot read the guard component: {e}") from e
                runtime = cls(wasm, origin=key)
                cls._cache[key] = runtime
            return runtime


class _Ticker:
    """One daemon thread advancing the epoch of every live engine; it holds engines weakly."""

    _engines: "weakref.WeakSet[wasmtime.Engine]" = weakref.WeakSet()
    _lock = threading.Lock()
    _thread: Optional[threading.Thread] = None

    @classmethod
    def start(cls, engine: wasmtime.Engine) -> None:
        with cls._lock:
            cls._engines.add(engine)
            if cls._thread is None:
                cls._thread = threading.Thread(target=cls._run, name="idem-epoch", daemon=True)
                cls._thread.start()

    @classmethod
    def _run(cls) -> None:
        stop = threading.Event()
        while not stop.wait(EPOCH_TICK_S):
            for engine in list(cls._engines):
                engine.increment_epoch()

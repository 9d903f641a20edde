"""A fix to how wasmtime-py 50.0.1 lowers untagged variants, applied when idem is imported.

wasmtime-py represents a `result`, `option` or `variant` whose cases hold values of distinct Python classes
"untagged": the bare payload, its case picked by `isinstance`. Two defects in that choice break idem's store
import:

* A case without a payload is entered as `object` in the class set, so `isinstance(anything, object)` picks the
  first such case. `get` returns `result<option<entry>, store-error>`: the `ok` case holds an `option`, hence
  `object`, and every `store-error` a host returns is lowered as `ok`. The store could never report a failure
  from `get` or `compare-and-swap`, which `wit/store.wit` forbids ("errors are errors").
* The class set is a module-level global that is cleared and refilled on every lowering. Host functions run on
  many threads at once (one wasmtime Store each), so one thread can test a value against another thread's set.

The replacement below enters a payload-less case as `NoneType`, which is what such a case is lowered from, and
keeps the class set local. Case selection is otherwise unchanged, so values lift exactly as before.
"""

from __future__ import annotations

import ctypes
from ctypes import byref
from importlib import metadata
from typing import Any, Optional, Set, Tuple

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import _types

VERIFIED_WASMTIME = "50.0.1"
_NONE = type(None)


def _case_classes(ty: Optional[_types.ValType]) -> Set[type]:
    s: Set[type] = set()
    if ty is None:
        s.add(_NONE)
    else:
        ty.add_classes(s)
    return s


def _add_classes(self: _types.VariantLikeType, s: Set[type]) -> None:
    if self._tagged():
        s.add(_types.Variant)
    else:
        for _, ty in self._cases():
            s |= _case_classes(ty)


def _tagged(self: _types.VariantLikeType) -> bool:
    seen: Set[type] = set()
    for _, ty in self._cases():
        case = _case_classes(ty)
        if case & seen:
            return True
        seen |= case
    return False


def _lower(
    self: _types.VariantLikeType, store: wasmtime.Storelike, val: Any
) -> Tuple[str, Optional["ctypes._Pointer[ffi.wasmtime_component_val_t]"]]:
    tagged = self._tagged()
    if tagged and not isinstance(val, _types.Variant):
        raise TypeError("expected Variant type")
    for name, ty in self._cases():
        if tagged:
            if name != val.tag:
                continue
        elif not isinstance(val, tuple(_case_classes(ty))):
            continue
        if ty is None:
            return (name, None)
        raw = ffi.wasmtime_component_val_t()
        ty.convert_to_c(store, val.payload if tagged else val, ctypes.pointer(raw))
        return (name, ffi.wasmtime_component_val_new(byref(raw)))
    raise ValueError("value not valid for this variant")


def apply() -> None:
    installed = metadata.version("wasmtime")
    if installed != VERIFIED_WASMTIME:
        raise ImportError(
            f"idem is verified against wasmtime=={VERIFIED_WASMTIME} (installed: {installed}); "
            "install examples/python/requirements.txt"
        )
    cls = _types.VariantLikeType
    cls.add_classes = _add_classes  # type: ignore[method-assign]
    cls._tagged = _tagged  # type: ignore[method-assign]
    cls._lower = _lower  # type: ignore[method-assign]

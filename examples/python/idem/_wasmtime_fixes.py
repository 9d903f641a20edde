"""Fixes to wasmtime-py 50.0.1's component value conversion, applied when idem is imported.

## Untagged variants

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

## `list<u8>`

wasmtime-py converts a `list<u8>` one element at a time through Python, about a second per MiB each way, and the
guard's records and outcomes are all `list<u8>`. The C API holds such a list as an array of tagged value structs;
the replacement writes and reads that array with two strided slice copies instead.
"""

from __future__ import annotations

import ctypes
from ctypes import byref
from importlib import metadata
from typing import Any, Optional, Set, Tuple, Union

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


_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_KIND_AT = ffi.wasmtime_component_val_t.kind.offset
_U8_AT = ffi.wasmtime_component_val_t.of.offset + ffi.wasmtime_component_valunion_t.u8.offset
_U8_KIND = ffi.WASMTIME_COMPONENT_U8.value
_original_list_to_c = _types.ListType.convert_to_c
_original_list_from_c = _types.ListType.convert_from_c


def _list_to_c(
    self: _types.ListType,
    store: wasmtime.Storelike,
    val: Any,
    ptr: "ctypes._Pointer[ffi.wasmtime_component_val_t]",
) -> None:
    if not self._is_bytes() or not isinstance(val, (bytes, bytearray)) or not val:
        return _original_list_to_c(self, store, val, ptr)
    n = len(val)
    image = bytearray(n * _VAL_SIZE)
    image[_KIND_AT::_VAL_SIZE] = bytes([_U8_KIND]) * n
    image[_U8_AT::_VAL_SIZE] = val
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    ctypes.memmove(raw.data, (ctypes.c_char * len(image)).from_buffer(image), len(image))
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _list_from_c(self: _types.ListType, c: "ffi.wasmtime_component_val_t") -> Union[bytes, Any]:
    if not self._is_bytes() or c.of.list.size == 0:
        return _original_list_from_c(self, c)
    assert c.kind == ffi.WASMTIME_COMPONENT_LIST.value
    n = c.of.list.size
    try:
        image = ctypes.string_at(c.of.list.data, n * _VAL_SIZE)
        if image[_KIND_AT::_VAL_SIZE] != bytes([_U8_KIND]) * n:
            raise TypeError("list<u8> holds an element that is not a u8")
        return image[_U8_AT::_VAL_SIZE]
    finally:
        # u8 elements own nothing, so the list is freed whole.
        ffi.wasmtime_component_vallist_delete(byref(c.of.list))


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
    _types.ListType.convert_to_c = _list_to_c  # type: ignore[method-assign]
    _types.ListType.convert_from_c = _list_from_c  # type: ignore[method-assign]

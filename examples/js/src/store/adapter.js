// Turns a JS store object into the `idem:guard/store` import the component calls.
//
// A store method may throw anything; the adapter never lets that escape into the component: an
// exception that crosses a jco import boundary (other than a result error) traps the instance, and
// a trapped guard is worse than a store error. So every failure becomes a WIT `store-error`, and a
// surprise (a bug, a TypeError) becomes `other`, never "absent".
import { StoreError } from '../errors.js';

function toStoreError(err) {
  if (err instanceof StoreError) {
    if (err.kind === 'too-large') return { tag: 'too-large', val: BigInt(err.limit ?? 0) };
    if (err.kind === 'unavailable' || err.kind === 'other') return { tag: err.kind, val: String(err.detail) };
  }
  return { tag: 'other', val: `store threw: ${err?.stack ?? err}` };
}

const METHODS = ['get', 'insertOrGet', 'compareAndSwap', 'deleteIfVersion'];

/**
 * Returns the import object for `idem:guard/store`. jco treats a returned `{tag:'ok'|'err'}` as the
 * WIT result itself, so errors are returned rather than thrown.
 */
export function storeImport(store) {
  const out = {};
  for (const name of METHODS) {
    if (typeof store[name] !== 'function') throw new TypeError(`store lacks ${name}()`);
    out[name] = store.isAsync
      ? async (...args) => {
          try {
            return { tag: 'ok', val: await store[name](...args) };
          } catch (err) {
            return { tag: 'err', val: toStoreError(err) };
          }
        }
      : (...args) => {
          try {
            const val = store[name](...args);
            if (val instanceof Promise) {
              val.catch(() => {});
              throw new TypeError(`${name}() returned a promise from a store that is not isAsync`);
            }
            return { tag: 'ok', val };
          } catch (err) {
            return { tag: 'err', val: toStoreError(err) };
          }
        };
  }
  return out;
}

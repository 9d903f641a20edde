// Store wrappers for tests: one that is down, one that records how many calls overlap.
import { StoreUnavailableError } from '../../src/errors.js';

const METHODS = ['get', 'insertOrGet', 'compareAndSwap', 'deleteIfVersion'];

/** A store that cannot be reached, in the same sync/async shape as `like`. */
export function downStore(like) {
  const s = { isAsync: like.isAsync, calls: 0 };
  for (const m of METHODS) {
    s[m] = like.isAsync
      ? async () => { s.calls++; throw new StoreUnavailableError('connection refused (test)'); }
      : () => { s.calls++; throw new StoreUnavailableError('connection refused (test)'); };
  }
  return s;
}

/** Wraps an async store and records the most calls ever in flight at once. */
export function tracked(store) {
  let inFlight = 0;
  const s = { isAsync: true, maxInFlight: 0 };
  for (const m of METHODS) {
    s[m] = async (...args) => {
      s.maxInFlight = Math.max(s.maxInFlight, ++inFlight);
      try {
        return await store[m](...args);
      } finally {
        inFlight--;
      }
    };
  }
  return s;
}

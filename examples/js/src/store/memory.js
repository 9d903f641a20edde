// An in-process store: for tests, examples and single-process use. Nothing survives the process.
//
// Each method is one synchronous step, which in single-threaded JS is what makes it atomic. With
// `interleave: true` every method first yields to the event loop and then runs its step: the steps
// stay atomic, but concurrent guard calls now really interleave between them, as they would against
// a networked store. That mode returns promises, so it needs the JSPI build.

/**
 * @typedef {{ value: Uint8Array, version: bigint }} Entry
 * The store contract, in the shapes jco uses for the WIT types (u64 is bigint):
 *   get(key) -> Entry | undefined
 *   insertOrGet(key, value, ttlMs) -> {tag:'inserted', val: version} | {tag:'exists', val: Entry}
 *   compareAndSwap(key, expected, value, ttlMs) -> {tag:'swapped', val: version} | {tag:'conflict', val: Entry | undefined}
 *   deleteIfVersion(key, expected) -> boolean
 * Errors are thrown as StoreError. `isAsync` says whether the methods return promises.
 */
export class MemoryStore {
  #map = new Map();
  // One counter for the whole store: a version is never reissued, also after a key is deleted.
  #nextVersion = 1n;
  #now;
  #interleave;

  /** @param {{ now?: () => number, interleave?: boolean }} [options] give `now` the guard's clock */
  constructor({ now = Date.now, interleave = false } = {}) {
    this.#now = now;
    this.#interleave = interleave;
    this.isAsync = interleave;
    for (const name of ['get', 'insertOrGet', 'compareAndSwap', 'deleteIfVersion']) {
      const step = this[name].bind(this);
      if (interleave) this[name] = async (...args) => (await yieldTurn(), step(...args));
    }
  }

  /** Live entries, for tests. */
  get size() {
    let n = 0;
    for (const key of this.#map.keys()) if (this.#live(key)) n++;
    return n;
  }

  get(key) {
    const slot = this.#live(key);
    return slot && copy(slot.entry);
  }

  insertOrGet(key, value, ttlMs) {
    const slot = this.#live(key);
    if (slot) return { tag: 'exists', val: copy(slot.entry) };
    return { tag: 'inserted', val: this.#write(key, value, ttlMs) };
  }

  compareAndSwap(key, expected, value, ttlMs) {
    const slot = this.#live(key);
    if (!slot || slot.entry.version !== expected) return { tag: 'conflict', val: slot && copy(slot.entry) };
    return { tag: 'swapped', val: this.#write(key, value, ttlMs) };
  }

  deleteIfVersion(key, expected) {
    const slot = this.#live(key);
    if (!slot || slot.entry.version !== expected) return false;
    return this.#map.delete(key);
  }

  #live(key) {
    const slot = this.#map.get(key);
    if (slot && slot.expiresAt <= this.#now()) {
      this.#map.delete(key);
      return undefined;
    }
    return slot;
  }

  #write(key, value, ttlMs) {
    const version = this.#nextVersion++;
    // The component's buffer is reused after the call returns, so keep a copy.
    const entry = { value: Uint8Array.from(value), version };
    this.#map.set(key, { entry, expiresAt: this.#now() + Number(ttlMs) });
    return version;
  }
}

const copy = (entry) => ({ value: Uint8Array.from(entry.value), version: entry.version });
const yieldTurn = () => new Promise((resolve) => setImmediate(resolve));

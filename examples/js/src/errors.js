// Typed errors, so callers branch with `instanceof` instead of parsing messages. Every error that
// comes from the guard carries `code`, the WIT case name, for logs and for callers that switch.

export class IdemError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A scope, key, fingerprint input, option or token the guard refused; nothing changed. */
export class InvalidArgumentError extends IdemError {}

/** Someone else holds a live lease on the operation: do not run it, ask again after `retryAfterMs`. */
export class InProgressError extends IdemError {
  constructor({ attempt, leaseExpiresAt, retryAfterMs }) {
    super('in-progress', `operation in progress (attempt ${attempt}), retry after ${retryAfterMs} ms`);
    this.attempt = attempt;
    this.leaseExpiresAt = leaseExpiresAt;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The key was first claimed with a different payload (HTTP 422). */
export class MismatchError extends IdemError {
  constructor() {
    super('mismatch', 'the key was first used with a different payload');
  }
}

/** The lease is no longer the caller's: taken over, finished, forgotten or expired. */
export class LeaseLostError extends IdemError {
  constructor(currentFencingToken) {
    super('lease-lost', `lease lost (current fencing token ${currentFencingToken ?? 'none'})`);
    this.currentFencingToken = currentFencingToken;
  }
}

/** The outcome is larger than `maxOutcomeBytes`. */
export class OutcomeTooLargeError extends IdemError {
  constructor(size, limit) {
    super('outcome-too-large', `outcome of ${size} bytes exceeds the limit of ${limit}`);
    this.size = size;
    this.limit = limit;
  }
}

/**
 * The store failed; under fail-closed the operation must not run. `kind` is the store-error case
 * (`unavailable`, `too-large`, `other`); `limit` is the store's size limit for `too-large`.
 * Store implementations throw it too: it is how they report errors through the WIT boundary.
 */
export class StoreError extends IdemError {
  constructor(kind, detail, limit) {
    super('store', `store ${kind}: ${detail}`);
    this.kind = kind;
    this.detail = detail;
    if (limit !== undefined) this.limit = limit;
  }
}

/** The store could not be reached or did not answer in time. Nothing is known to have been written. */
export class StoreUnavailableError extends StoreError {
  constructor(detail) {
    super('unavailable', detail);
  }
}

/** The store holds bytes under the operation's name that the guard cannot read; left for an operator. */
export class CorruptRecordError extends IdemError {}

/** Too many concurrent attempts changed the record at once; nothing changed, retry shortly. */
export class ContendedError extends IdemError {
  constructor() {
    super('contended', 'record contended; retry shortly');
  }
}

/**
 * Thrown by a `once` callback to record a final failure: it is stored and every later call with the
 * same key rethrows it (with `replayed` set) instead of running again. Any other thrown error
 * releases the claim so that the next call retries.
 */
export class TerminalError extends Error {
  constructor(message, data, options) {
    super(message, options);
    this.name = 'TerminalError';
    this.data = data;
    this.replayed = false;
  }
}

const u64 = (v) => (typeof v === 'bigint' ? Number(v) : v);

/** Maps a WIT `store-error` value to its typed error. */
export function storeErrorFrom({ tag, val }) {
  if (tag === 'unavailable') return new StoreUnavailableError(val);
  if (tag === 'too-large') return new StoreError(tag, `value over the store's limit of ${val} bytes`, u64(val));
  return new StoreError(tag, val);
}

/** Maps a WIT `guard-error` value (a ComponentError payload) to its typed error. */
export function guardErrorFrom({ tag, val }) {
  switch (tag) {
    case 'invalid-scope':
    case 'invalid-key':
    case 'invalid-fingerprint':
    case 'invalid-options':
    case 'invalid-token':
      return new InvalidArgumentError(tag, `${tag}: ${val}`);
    case 'outcome-too-large':
      return new OutcomeTooLargeError(u64(val.size), u64(val.limit));
    case 'lease-lost':
      return new LeaseLostError(val.currentFencingToken === undefined ? undefined : u64(val.currentFencingToken));
    case 'store':
      return storeErrorFrom(val);
    case 'corrupt-record':
      return new CorruptRecordError(tag, `corrupt record: ${val}`);
    case 'contended':
      return new ContendedError();
    default:
      return new IdemError(String(tag), `unknown guard error ${tag}`);
  }
}

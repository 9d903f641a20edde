// The idiomatic API over the guard component: promises, numbers, typed errors, and `once`.
import { instantiate } from './component.js';
import { InstancePool } from './pool.js';
import {
  Fingerprint, fromDecision, fromStatus, num, toFailure, toFingerprint, toOptions, toOutcome,
} from './convert.js';
import {
  IdemError, InProgressError, MismatchError, LeaseLostError, TerminalError, guardErrorFrom, storeErrorFrom,
} from './errors.js';

// Marks outcomes written by `once`, so a replay knows the body is its JSON envelope.
const ONCE_CONTENT_TYPE = 'application/vnd.idem.once+json';
const dec = new TextDecoder();

export class Guard {
  #pool;
  #defaults;

  /**
   * @param {object} config
   * @param {object} config.store a MemoryStore, RedisStore, or any object with the store contract
   * @param {() => number} [config.now] the guard's clock in ms since the epoch (default: real time)
   * @param {object} [config.defaults] options applied to every call (leaseMs, retentionMs, ...)
   * @param {number} [config.maxInstances] concurrent calls in flight before callers queue (async stores)
   */
  static async create({ store, now, defaults = {}, maxInstances = 16 }) {
    const create = () => instantiate({ store, now });
    // A synchronous store finishes each call before the next starts: one instance suffices.
    const pool = new InstancePool(create, store.isAsync ? maxInstances : 1);
    const guard = new Guard(pool, defaults);
    await pool.use(async () => {}, () => true); // instantiate now, so a broken build fails here
    return guard;
  }

  constructor(pool, defaults) {
    this.#pool = pool;
    this.#defaults = defaults;
  }

  /** Decides whether this attempt runs the operation; see `fromDecision` for the shapes. */
  async claim(op, payload, opts) {
    const fp = toFingerprint(payload, opts?.exclude);
    return fromDecision(await this.#call('claim', op, fp, this.#opts(opts)));
  }

  /** Stores the outcome for replay; returns when it was stored (ms). Throws LeaseLostError if the lease was lost. */
  async complete(op, token, outcome, opts) {
    return num(await this.#call('complete', op, token, toOutcome(outcome), this.#opts(opts)));
  }

  /** `failure`: `{ retryable: true }` releases the claim, `{ terminal: outcome }` stores it for replay. */
  async fail(op, token, failure, opts) {
    return num(await this.#call('fail', op, token, toFailure(failure), this.#opts(opts)));
  }

  /** Extends the lease to `extendByMs` from now; returns the new expiry (ms). */
  async renew(op, token, extendByMs, opts) {
    return num(await this.#call('renew', op, token, BigInt(extendByMs), this.#opts(opts)));
  }

  async status(op) {
    return fromStatus(await this.#call('status', op));
  }

  /** Deletes the record whatever its state; returns whether one existed. */
  async forget(op) {
    return this.#call('forget', op);
  }

  /**
   * Runs `fn` once for `op` and `payload`, however often it is called; later calls get the first
   * result back (it must be JSON-serializable). Throws InProgressError while another call runs it,
   * MismatchError for the same key with another payload, StoreUnavailableError (fail-closed) when
   * the store is down. A TerminalError thrown by `fn` is stored and rethrown to every later call;
   * any other error releases the claim so that the next call runs `fn` again.
   *
   * `fn` receives `{ fencingToken, attempt, recovered, signal }`; `signal` aborts when the lease is
   * lost. While `fn` runs, the lease is renewed every third of `leaseMs` unless `heartbeat: false`.
   */
  async once(op, payload, fn, opts) {
    return (await this.run(op, payload, fn, opts)).value;
  }

  /** Like `once`, returning `{ value, replayed, attempts, guarded }` to tell a first run from a replay. */
  async run(op, payload, fn, opts = {}) {
    const d = await this.claim(op, payload, opts);
    switch (d.decision) {
      case 'replay':
        return replayed(d);
      case 'in-progress':
        throw new InProgressError(d);
      case 'mismatch':
        throw new MismatchError();
      case 'unguarded': {
        // fail-open: the caller chose running twice over not running; nothing is stored.
        const value = await fn({ fencingToken: undefined, attempt: 0, recovered: false, signal: new AbortController().signal });
        return { value, replayed: false, attempts: 0, guarded: false, storeError: storeErrorFrom(d.storeError) };
      }
      case 'acquired':
        return this.#runHolding(op, d, fn, opts);
    }
  }

  async #runHolding(op, { lease, recovered }, fn, opts) {
    const abort = new AbortController();
    const stopHeartbeat = this.#heartbeat(op, lease.token, opts, abort);
    let value;
    try {
      value = await fn({ fencingToken: lease.fencingToken, attempt: lease.attempt, recovered, signal: abort.signal });
    } catch (err) {
      stopHeartbeat();
      const failure = err instanceof TerminalError ? { terminal: envelope({ error: { message: err.message, data: err.data } }) } : { retryable: true };
      // Best effort: if recording the failure fails, the lease expires and a later call retries.
      await this.fail(op, lease.token, failure, opts).catch(() => {});
      throw err;
    }
    stopHeartbeat();
    await this.complete(op, lease.token, envelope({ value }), opts);
    return { value, replayed: false, attempts: lease.attempt, guarded: true };
  }

  #heartbeat(op, token, opts, abort) {
    const leaseMs = opts.leaseMs ?? this.#defaults.leaseMs ?? 30_000;
    if (opts.heartbeat === false || leaseMs < 3) return () => {};
    const timer = setInterval(() => {
      this.renew(op, token, leaseMs, opts).catch((err) => {
        if (err instanceof LeaseLostError) {
          clearInterval(timer);
          abort.abort(err);
        } // other errors: the next beat tries again, the lease still has time
      });
    }, Math.floor(leaseMs / 3));
    timer.unref();
    return () => clearInterval(timer);
  }

  #opts(opts) {
    return toOptions({ ...this.#defaults, ...opts });
  }

  #call(name, ...args) {
    return this.#pool.use(
      async (g) => {
        try {
          return await g[name](...args);
        } catch (err) {
          throw err && Object.hasOwn(err, 'payload') ? guardErrorFrom(err.payload) : err;
        }
      },
      (err) => err instanceof IdemError, // the component answered: the instance is sound
    );
  }
}

function envelope(content) {
  return { body: JSON.stringify(content), contentType: ONCE_CONTENT_TYPE };
}

function replayed({ kind, outcome, attempts }) {
  if (outcome.contentType !== ONCE_CONTENT_TYPE) {
    // Written through the low-level API: hand the outcome over as stored.
    return { value: outcome, replayed: true, attempts, guarded: true };
  }
  const content = JSON.parse(dec.decode(outcome.body));
  if (kind === 'failed') {
    const err = new TerminalError(content.error.message, content.error.data);
    err.replayed = true;
    throw err;
  }
  return { value: content.value, replayed: true, attempts, guarded: true };
}

export { Fingerprint };

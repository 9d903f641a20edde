// Conversions between the idiomatic JS shapes of the API and the WIT shapes jco uses. WIT u64
// values (times, fencing tokens) are bigints in jco; here they become numbers, which hold every
// millisecond timestamp and any fencing token a record can reach exactly.
const enc = new TextEncoder();
const FINGERPRINT = Symbol('idem.fingerprint');

const num = (v) => (v === undefined ? undefined : Number(v));
const big = (v) => (v === undefined || v === null ? undefined : BigInt(v));
export const bytes = (v) => (typeof v === 'string' ? enc.encode(v) : v instanceof Uint8Array ? v : new Uint8Array(v));

/** Ways to fingerprint a payload; pass the result wherever a fingerprint or payload is taken. */
export const Fingerprint = {
  /** SHA-256 of exactly these bytes (a string counts as its UTF-8). */
  raw: (data) => brand({ tag: 'raw', val: bytes(data) }),
  /**
   * SHA-256 of the canonical form of a JSON document: key order and whitespace do not matter.
   * `exclude` lists JSON Pointers (`/sent_at`) of parts that are not the operation's identity.
   */
  json: (doc, { exclude = [] } = {}) =>
    brand({ tag: 'canonical-json', val: { document: typeof doc === 'string' ? doc : JSON.stringify(doc), exclude } }),
  /** A SHA-256 computed by the caller: exactly 32 bytes. */
  sha256: (digest) => brand({ tag: 'precomputed', val: bytes(digest) }),
};

function brand(fp) {
  Object.defineProperty(fp, FINGERPRINT, { value: true });
  return fp;
}

/** A payload as the guard fingerprints it: bytes and strings raw, anything else as canonical JSON. */
export function toFingerprint(payload, exclude) {
  if (payload?.[FINGERPRINT]) return payload;
  if (typeof payload === 'string' || payload instanceof Uint8Array) return Fingerprint.raw(payload);
  if (payload === undefined) throw new TypeError('a payload is required: it binds the key to one request');
  return Fingerprint.json(payload, { exclude });
}

export function toOptions(o = {}) {
  return {
    leaseMs: big(o.leaseMs),
    retentionMs: big(o.retentionMs),
    maxOutcomeBytes: o.maxOutcomeBytes,
    onStoreFailure: o.onStoreFailure,
  };
}

export function toOutcome({ body = new Uint8Array(), status, contentType, metadata = [] }) {
  const pairs = Array.isArray(metadata) ? metadata : Object.entries(metadata);
  return { body: bytes(body), status, contentType, metadata: pairs.map(([k, v]) => [String(k), String(v)]) };
}

const lease = (l) => ({ token: l.token, fencingToken: num(l.fencingToken), attempt: l.attempt, expiresAt: num(l.expiresAt) });

/** A claim decision as `{ decision: 'acquired' | 'in-progress' | 'replay' | 'mismatch' | 'unguarded', ... }`. */
export function fromDecision({ tag, val }) {
  switch (tag) {
    case 'acquired':
      return { decision: tag, lease: lease(val.lease), recovered: val.recovered };
    case 'in-progress':
      return { decision: tag, attempt: val.attempt, leaseExpiresAt: num(val.leaseExpiresAt), retryAfterMs: num(val.retryAfterMs) };
    case 'replay':
      return { decision: tag, kind: val.kind, outcome: val.outcome, finishedAt: num(val.finishedAt), attempts: val.attempts };
    case 'mismatch':
      return { decision: tag };
    case 'unguarded':
      return { decision: tag, storeError: val };
    default:
      throw new Error(`unknown claim decision ${tag}`);
  }
}

export function fromStatus(r) {
  if (!r) return undefined;
  return {
    state: r.state,
    attempts: r.attempts,
    fencingToken: num(r.fencingToken),
    createdAt: num(r.createdAt),
    updatedAt: num(r.updatedAt),
    leaseExpiresAt: num(r.leaseExpiresAt),
    finishedAt: num(r.finishedAt),
    outcomeBytes: num(r.outcomeBytes),
    fingerprint: r.fingerprint,
  };
}

export function toFailure(failure) {
  if (failure?.terminal) return { tag: 'terminal', val: toOutcome(failure.terminal) };
  return { tag: 'retryable' };
}

export { num };

// A store on Redis (a single server or a cluster). Each operation is one Lua script, so Redis runs
// it as one atomic step against every other client of the same server.
//
// Layout: the guard's key `SCOPE/KEY` lives in one hash `<prefix>{SCOPE/KEY}` with fields `v` (the
// value) and `n` (the version), expiring with PEXPIRE. Every script names that hash in KEYS, so it
// is cluster-safe; the braces make it a hash tag, so any key added beside it later (same tag) lands
// in the same slot. A `}` inside KEY only shortens the tag, which is harmless for one key.
//
// Versions are 64 random bits drawn here and passed in ARGV: never reissued for a key (short of a
// 2^-64 collision), even after it expired, and there is no counter key to outlive the record.
// They travel as decimal strings so Lua never rounds them to doubles.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { StoreError, StoreUnavailableError } from '../errors.js';

// Reads the entry; a key that exists but is not one of ours is an error, never "absent".
const READ = `
local r = redis.call('HMGET', KEYS[1], 'v', 'n')
if (r[1] and not r[2]) or (r[2] and not r[1]) then
  return redis.error_reply('IDEMFOREIGN key holds a hash that is not an idem entry')
end
`;

const SCRIPTS = {
  idemGet: `${READ}
if not r[1] then return {} end
return r`,
  // ARGV: value, new version, ttl ms
  idemInsertOrGet: `${READ}
if r[1] then return r end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {}`,
  // ARGV: expected version, value, new version, ttl ms
  idemCompareAndSwap: `${READ}
if r[2] ~= ARGV[1] then
  if not r[1] then return {} end
  return r
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'n', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`,
  // ARGV: expected version
  idemDeleteIfVersion: `${READ}
if r[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`,
};

// Redis answers these while it cannot serve: the same as not answering at all.
const TRANSIENT = /^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY|NOREPLICAS)\b/;
// PEXPIRE refuses what overflows its clock arithmetic; ~31,700 years is plenty for any retention.
const MAX_TTL_MS = 10n ** 15n;

export class RedisStore {
  isAsync = true;
  #redis;
  #prefix;

  /**
   * Connects and waits until Redis answers, or throws StoreUnavailableError.
   * @param {string} url e.g. redis://127.0.0.1:6379
   * @param {{ prefix?: string, commandTimeoutMs?: number, connectTimeoutMs?: number, redisOptions?: object }} [options]
   */
  static async connect(url, { prefix = 'idem:', commandTimeoutMs = 2000, connectTimeoutMs = 2000, redisOptions = {} } = {}) {
    const redis = new Redis(url, {
      // Fail fast instead of queueing: a command parked while Redis is away would let a caller
      // wait without bound, and the guard's answer to a store it cannot reach is to refuse.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: commandTimeoutMs,
      connectTimeout: connectTimeoutMs,
      lazyConnect: true,
      retryStrategy: (times) => Math.min(50 * times, 1000),
      ...redisOptions,
    });
    redis.on('error', () => {}); // surfaced per command as StoreUnavailableError
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new StoreUnavailableError(`cannot connect to ${url}: ${err.message}`);
    }
    return new RedisStore(redis, { prefix });
  }

  /** Wraps an ioredis client the caller configured; see connect() for the options that matter. */
  constructor(redis, { prefix = 'idem:' } = {}) {
    this.#redis = redis;
    this.#prefix = prefix;
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!redis[name]) redis.defineCommand(name, { numberOfKeys: 1, lua });
    }
  }

  /** The Redis key for a guard key, for operators and tests. */
  redisKey(key) {
    return `${this.#prefix}{${key}}`;
  }

  async get(key) {
    const r = await this.#call('idemGetBuffer', key);
    return entry(r);
  }

  async insertOrGet(key, value, ttlMs) {
    const version = newVersion();
    const r = await this.#call('idemInsertOrGetBuffer', key, Buffer.from(value), version, ttl(ttlMs));
    return r.length ? { tag: 'exists', val: entry(r) } : { tag: 'inserted', val: BigInt(version) };
  }

  async compareAndSwap(key, expected, value, ttlMs) {
    const version = newVersion();
    const r = await this.#call('idemCompareAndSwapBuffer', key, expected.toString(), Buffer.from(value), version, ttl(ttlMs));
    return r === 1 ? { tag: 'swapped', val: BigInt(version) } : { tag: 'conflict', val: entry(r) };
  }

  async deleteIfVersion(key, expected) {
    return (await this.#call('idemDeleteIfVersionBuffer', key, expected.toString())) === 1;
  }

  async close() {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async #call(command, key, ...args) {
    try {
      return await this.#redis[command](this.redisKey(key), ...args);
    } catch (err) {
      // A reply error is Redis answering; everything else (closed socket, timeout, offline) is not.
      if (err?.name === 'ReplyError' && !TRANSIENT.test(err.message)) throw new StoreError('other', err.message);
      throw new StoreUnavailableError(err?.message ?? String(err));
    }
  }
}

function entry(reply) {
  if (!Array.isArray(reply) || reply.length === 0) return undefined;
  return { value: new Uint8Array(reply[0]), version: BigInt(reply[1].toString()) };
}

const newVersion = () => randomBytes(8).readBigUInt64BE().toString();

function ttl(ms) {
  const v = BigInt(ms);
  return (v < 1n ? 1n : v > MAX_TTL_MS ? MAX_TTL_MS : v).toString();
}

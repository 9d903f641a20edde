// The guard's behaviour through the JS API, run against every store. `backend` provides:
//   store()      the store under test (shared is fine: every test uses its own keys)
//   downStore()  a store that cannot answer, failing the way this backend really fails
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Guard, Fingerprint, InProgressError, InvalidArgumentError, LeaseLostError, MismatchError,
  StoreUnavailableError, TerminalError,
} from '../../src/index.js';
import { tracked } from './stores.js';

const op = (name) => ({ scope: 'payments', key: `${name}/${randomUUID()}` });

export function guardSuite(label, backend) {
  describe(`guard on ${label}, Node ${process.version}`, { timeout: 30_000 }, () => {
    const guard = (opts = {}) => Guard.create({ store: backend.store(), ...opts });

    it('replays an outcome byte for byte to sequential duplicates', async () => {
      const g = await guard();
      const o = op('order-1/charge');
      const d = await g.claim(o, 'amount=100');
      assert.equal(d.decision, 'acquired');
      assert.equal(d.lease.fencingToken, 1);
      const body = Uint8Array.from({ length: 70_000 }, (_, i) => i % 256);
      const metadata = [['location', '/charges/1'], ['x-request-id', 'r-1']];
      await g.complete(o, d.lease.token, { body, status: 201, contentType: 'application/octet-stream', metadata });
      for (let i = 0; i < 5; i++) {
        const r = await g.claim(o, 'amount=100');
        assert.equal(r.decision, 'replay');
        assert.equal(r.kind, 'succeeded');
        assert.deepEqual(r.outcome.body, body);
        assert.equal(r.outcome.status, 201);
        assert.equal(r.outcome.contentType, 'application/octet-stream');
        assert.deepEqual(r.outcome.metadata, metadata);
        assert.equal(r.attempts, 1);
      }
    });

    it('once runs the function once and replays its result', async () => {
      const g = await guard();
      const o = op('refund');
      let runs = 0;
      const fn = async ({ fencingToken }) => ({ refund: `re_${++runs}`, fencingToken });
      const first = await g.run(o, { amount: 100, currency: 'EUR' }, fn);
      // Same document with another key order: the canonical JSON fingerprint is the same.
      const second = await g.run(o, { currency: 'EUR', amount: 100 }, fn);
      assert.equal(runs, 1);
      assert.deepEqual(first, { value: { refund: 're_1', fencingToken: 1 }, replayed: false, attempts: 1, guarded: true });
      assert.deepEqual(second, { ...first, replayed: true });
      assert.deepEqual(await g.once(o, { amount: 100, currency: 'EUR' }, fn), first.value);
    });

    it('runs concurrent duplicates exactly once', async () => {
      const store = backend.store();
      const probe = store.isAsync ? tracked(store) : store;
      const g = await Guard.create({ store: probe, maxInstances: 32 });
      for (let round = 0; round < 3; round++) {
        const o = op(`race-${round}`);
        let runs = 0;
        const results = await Promise.allSettled(
          Array.from({ length: 32 }, () =>
            g.once(o, { amount: 5 }, async () => {
              runs++;
              await sleep(30);
              return 'charged';
            }),
          ),
        );
        assert.equal(runs, 1, 'the operation ran more than once');
        for (const r of results) {
          if (r.status === 'fulfilled') assert.equal(r.value, 'charged');
          else assert.ok(r.reason instanceof InProgressError, `unexpected ${r.reason}`);
        }
        assert.ok(results.some((r) => r.status === 'fulfilled'));
        assert.equal(await g.once(o, { amount: 5 }, async () => runs++), 'charged');
        assert.equal(runs, 1);
      }
      if (store.isAsync) assert.ok(probe.maxInFlight > 1, 'the store never saw two calls at once: no real race');
      const o = op('raw-race');
      const decisions = await Promise.all(Array.from({ length: 32 }, () => g.claim(o, 'x')));
      assert.equal(decisions.filter((d) => d.decision === 'acquired').length, 1);
      assert.equal(decisions.filter((d) => d.decision === 'in-progress').length, 31);
    });

    it('refuses the same key with another payload', async () => {
      const g = await guard();
      const o = op('order-2/charge');
      await g.once(o, { amount: 100 }, async () => 'ok');
      let ran = false;
      await assert.rejects(g.once(o, { amount: 200 }, async () => (ran = true)), MismatchError);
      assert.equal(ran, false);
      assert.equal((await g.claim(o, Fingerprint.raw('anything'))).decision, 'mismatch');
      // Excluded parts of the document do not count.
      const w = op('webhook');
      const fp = (sentAt) => Fingerprint.json({ id: 'evt_1', sent_at: sentAt }, { exclude: ['/sent_at'] });
      await g.once(w, fp(1), async () => 1);
      assert.equal(await g.once(w, fp(2), async () => 2), 1);
    });

    it('refuses a stale fencing token after a lease takeover (injected clock)', async () => {
      // The guard judges leases by wall-clock time, which the WASI shim lets us replace.
      let t = Date.now();
      const g = await guard({ now: () => t, defaults: { leaseMs: 5_000 } });
      const o = op('slow');
      const a = await g.claim(o, 'p');
      assert.equal(a.decision, 'acquired');
      assert.equal(a.lease.expiresAt, t + 5_000);
      t += 4_000;
      const busy = await g.claim(o, 'p');
      assert.equal(busy.decision, 'in-progress');
      assert.equal(busy.retryAfterMs, 1_000);
      t += 1_001;
      const b = await g.claim(o, 'p');
      assert.equal(b.decision, 'acquired');
      assert.equal(b.recovered, true);
      assert.equal(b.lease.fencingToken, a.lease.fencingToken + 1);
      await assert.rejects(g.complete(o, a.lease.token, { body: 'late' }), (err) => {
        assert.ok(err instanceof LeaseLostError);
        assert.equal(err.currentFencingToken, b.lease.fencingToken);
        return true;
      });
      await assert.rejects(g.renew(o, a.lease.token, 1000), LeaseLostError);
      await assert.rejects(g.fail(o, a.lease.token, { retryable: true }), LeaseLostError);
      await g.complete(o, b.lease.token, { body: 'on time' });
      const s = await g.status(o);
      assert.equal(s.state, 'succeeded');
      assert.equal(s.fencingToken, 2);
      assert.equal(s.attempts, 2);
    });

    it('once loses to a takeover when its work outlives the lease', async () => {
      const g = await guard({ defaults: { leaseMs: 300 } });
      const o = op('stuck');
      const slow = g.once(o, 'p', () => sleep(800).then(() => 'slow'), { heartbeat: false });
      await sleep(400);
      const taken = await g.once(o, 'p', async ({ recovered, fencingToken }) => ({ recovered, fencingToken }));
      assert.deepEqual(taken, { recovered: true, fencingToken: 2 });
      await assert.rejects(slow, LeaseLostError);
      assert.deepEqual(await g.once(o, 'p', async () => 'never'), taken);
    });

    it('keeps a long operation with heartbeats', async () => {
      const g = await guard({ defaults: { leaseMs: 300 } });
      const o = op('long');
      const long = g.once(o, 'p', () => sleep(800).then(() => 'done'));
      await sleep(500); // past the first lease: only the heartbeat keeps it
      await assert.rejects(g.once(o, 'p', async () => 'duplicate'), InProgressError);
      assert.equal(await long, 'done');
    });

    it('stores a terminal failure and retries a retryable one', async () => {
      const g = await guard();
      const t = op('terminal');
      await assert.rejects(g.once(t, 'p', async () => { throw new TerminalError('card declined', { code: 'declined' }); }), TerminalError);
      await assert.rejects(g.once(t, 'p', async () => 'never'), (err) => {
        assert.ok(err instanceof TerminalError && err.replayed);
        assert.deepEqual([err.message, err.data], ['card declined', { code: 'declined' }]);
        return true;
      });
      const r = op('retryable');
      await assert.rejects(g.once(r, 'p', async () => { throw new Error('timeout'); }), /timeout/);
      assert.deepEqual(await g.run(r, 'p', async () => 'second try'), { value: 'second try', replayed: false, attempts: 2, guarded: true });
    });

    it('fails closed when the store is down, and runs unguarded only under fail-open', async () => {
      const g = await Guard.create({ store: await backend.downStore() });
      const o = op('down');
      let runs = 0;
      await assert.rejects(g.once(o, 'p', async () => ++runs), StoreUnavailableError);
      await assert.rejects(g.claim(o, 'p'), StoreUnavailableError);
      await assert.rejects(g.status(o), StoreUnavailableError);
      assert.equal(runs, 0);
      const open = await g.run(o, 'p', async () => ++runs, { onStoreFailure: 'fail-open' });
      assert.equal(open.guarded, false);
      assert.ok(open.storeError instanceof StoreUnavailableError);
      assert.equal(runs, 1);
    });

    it('refuses invalid input with typed errors', async () => {
      const g = await guard();
      await assert.rejects(g.claim({ scope: 'no spaces', key: 'k' }, 'p'), (e) => e instanceof InvalidArgumentError && e.code === 'invalid-scope');
      await assert.rejects(g.claim(op('k'), Fingerprint.sha256(new Uint8Array(3))), (e) => e.code === 'invalid-fingerprint');
      await assert.rejects(g.claim(op('k'), 'p', { leaseMs: 0 }), (e) => e.code === 'invalid-options');
    });

    it('forgets a record so the next claim starts afresh', async () => {
      const g = await guard();
      const o = op('forget');
      await g.once(o, 'p', async () => 1);
      assert.equal(await g.forget(o), true);
      assert.equal(await g.status(o), undefined);
      assert.equal((await g.claim(o, 'other payload')).lease.fencingToken, 1);
    });
  });
}

/** The store contract itself, below the guard. */
export function storeSuite(label, makeStore) {
  describe(`store contract on ${label}, Node ${process.version}`, { timeout: 20_000 }, () => {
    const v = (s) => new TextEncoder().encode(s);
    it('inserts once, versions never repeat, expired keys are absent', async () => {
      const s = makeStore();
      const k = `s/${randomUUID()}`;
      const first = await s.insertOrGet(k, v('a'), 60_000n);
      assert.equal(first.tag, 'inserted');
      const again = await s.insertOrGet(k, v('b'), 60_000n);
      assert.equal(again.tag, 'exists');
      assert.deepEqual(again.val, { value: v('a'), version: first.val });
      assert.deepEqual(await s.get(k), { value: v('a'), version: first.val });
      const swapped = await s.compareAndSwap(k, first.val, v('c'), 60_000n);
      assert.equal(swapped.tag, 'swapped');
      assert.notEqual(swapped.val, first.val);
      assert.deepEqual(await s.compareAndSwap(k, first.val, v('d'), 60_000n), { tag: 'conflict', val: { value: v('c'), version: swapped.val } });
      assert.equal(await s.deleteIfVersion(k, first.val), false);
      assert.equal(await s.deleteIfVersion(k, swapped.val), true);
      assert.equal(await s.get(k), undefined);
      assert.deepEqual(await s.compareAndSwap(k, swapped.val, v('e'), 60_000n), { tag: 'conflict', val: undefined });
      const reinserted = await s.insertOrGet(k, v('f'), 100n);
      assert.ok(![first.val, swapped.val].includes(reinserted.val), 'a version was reissued');
      await sleep(150);
      assert.equal(await s.get(k), undefined);
      assert.equal((await s.compareAndSwap(k, reinserted.val, v('g'), 60_000n)).tag, 'conflict');
      assert.equal((await s.insertOrGet(k, v('h'), 60_000n)).tag, 'inserted');
    });

    it('lets exactly one of many concurrent inserts win', async () => {
      const s = makeStore();
      const k = `s/${randomUUID()}`;
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.insertOrGet(k, v(`w${i}`), 60_000n)));
      assert.equal(results.filter((r) => r.tag === 'inserted').length, 1);
    });
  });
}

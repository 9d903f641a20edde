// Services in different languages guard the same operations in one Redis: the Rust host (`idem serve
// --redis`) and this binding must read each other's records as the same states, in both directions.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertComponent } from '../helpers/component.js';
import { freePort, startRedis } from '../helpers/redis.js';
import { Guard } from '../../src/index.js';
import { RedisStore } from '../../src/store/redis.js';

const IDEM = process.env.IDEM_BIN ?? fileURLToPath(new URL('../../../../target/debug/idem', import.meta.url));
assert.ok(existsSync(IDEM), `the idem binary is not at ${IDEM}: set IDEM_BIN (cargo xtask test sets it)`);
await assertComponent();

const redis = await startRedis();
const port = await freePort();
const server = spawn(IDEM, ['serve', '--redis', redis.url, '--listen', `127.0.0.1:${port}`, '--data-dir', join(tmpdir(), `idem-interop-${port}`)], {
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, IDEM_LOG: 'error' },
});
const base = `http://127.0.0.1:${port}`;
const store = await RedisStore.connect(redis.url);
after(async () => {
  server.kill('SIGTERM');
  await store.close();
  await redis.stop();
});
await waitForHealth();

async function waitForHealth() {
  const deadline = Date.now() + 20_000;
  for (;;) {
    assert.equal(server.exitCode, null, 'idem serve exited');
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {}
    assert.ok(Date.now() < deadline, 'idem serve did not answer within 20 s');
    await sleep(50);
  }
}

async function post(path, body) {
  const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await r.json();
  assert.ok(r.ok, `${path} answered ${r.status}: ${JSON.stringify(json)}`);
  return json;
}

it('the Rust host and the JS binding share records in one Redis', { timeout: 30_000 }, async () => {
  const guard = await Guard.create({ store });
  const scope = `interop-${randomUUID().slice(0, 8)}`;
  const payload = '{"amount":100}';

  // Rust claims: while its lease is live, JS must not run the operation too.
  const claimed = await post('/v1/claim', { scope, key: 'from-rust', payload });
  assert.equal(claimed.decision, 'acquired');
  const busy = await guard.claim({ scope, key: 'from-rust' }, payload);
  assert.equal(busy.decision, 'in-progress', 'a Rust-held lease reads as in progress from JS');

  // Rust completes: JS replays exactly what Rust stored.
  await post('/v1/complete', { scope, key: 'from-rust', token: claimed.lease.token, outcome: { status: 201, body: 'charged', content_type: 'text/plain' } });
  const replay = await guard.claim({ scope, key: 'from-rust' }, payload);
  assert.equal(replay.decision, 'replay');
  assert.deepEqual(replay.outcome.body, new TextEncoder().encode('charged'));
  assert.equal(replay.outcome.status, 201);
  assert.equal(replay.outcome.contentType, 'text/plain');

  // JS claims and completes: Rust sees in progress, then the stored outcome, and refuses a changed payload.
  const mine = await guard.claim({ scope, key: 'from-js' }, payload);
  assert.equal(mine.decision, 'acquired');
  assert.equal((await post('/v1/claim', { scope, key: 'from-js', payload })).decision, 'in_progress');
  await guard.complete({ scope, key: 'from-js' }, mine.lease.token, { body: new TextEncoder().encode('shipped'), status: 200 });
  const seen = await post('/v1/claim', { scope, key: 'from-js', payload });
  assert.equal(seen.decision, 'replay');
  assert.equal(seen.outcome.body, 'shipped');
  assert.equal((await post('/v1/claim', { scope, key: 'from-js', payload: 'other' })).decision, 'mismatch');
});

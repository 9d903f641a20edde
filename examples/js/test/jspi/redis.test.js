// The JSPI build against a real redis-server started for this file on a free loopback port.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { assertComponent } from '../helpers/component.js';
import { guardSuite, storeSuite } from '../helpers/suite.js';
import { startRedis } from '../helpers/redis.js';
import { jspiSupported } from '../../src/index.js';
import { RedisStore } from '../../src/store/redis.js';

assert.ok(jspiSupported, `Node ${process.version} lacks JSPI (WebAssembly.Suspending): run this suite with ./node_modules/.bin/node`);
await assertComponent();

const server = await startRedis();
const store = await RedisStore.connect(server.url);
const closers = [];
after(async () => {
  await store.close();
  for (const close of closers) await close();
  await server.stop();
});

// A store whose server died after it connected: the real way Redis goes away.
async function deadRedisStore() {
  const doomed = await startRedis();
  const s = await RedisStore.connect(doomed.url, { commandTimeoutMs: 500 });
  closers.push(() => s.close());
  await doomed.stop();
  return s;
}

guardSuite('redis', { store: () => store, downStore: deadRedisStore });
storeSuite('redis', () => store);

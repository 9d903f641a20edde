// The webhook example over real HTTP on loopback, on the JSPI build with Redis.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertComponent } from '../helpers/component.js';
import { deliverTwiceAndConcurrently } from '../helpers/webhook.js';
import { startRedis } from '../helpers/redis.js';
import { Guard, jspiSupported } from '../../src/index.js';
import { RedisStore } from '../../src/store/redis.js';

assert.ok(jspiSupported, `Node ${process.version} lacks JSPI (WebAssembly.Suspending): run this suite with ./node_modules/.bin/node`);
await assertComponent();

it('webhook receiver performs each event once (redis)', { timeout: 20_000 }, async () => {
  const server = await startRedis();
  const store = await RedisStore.connect(server.url);
  try {
    await deliverTwiceAndConcurrently(await Guard.create({ store }));
  } finally {
    await store.close();
    await server.stop();
  }
});

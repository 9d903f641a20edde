// The webhook example over real HTTP on loopback, on the synchronous build.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { assertComponent } from '../helpers/component.js';
import { deliverTwiceAndConcurrently } from '../helpers/webhook.js';
import { Guard, MemoryStore } from '../../src/index.js';

await assertComponent();

it('webhook receiver performs each event once (memory)', { timeout: 20_000 }, async () => {
  await deliverTwiceAndConcurrently(await Guard.create({ store: new MemoryStore() }));
});

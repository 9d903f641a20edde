// The JSPI build with an in-memory store that yields to the event loop before every step, so that
// concurrent guard calls interleave between their store calls as they would over a network.
import assert from 'node:assert/strict';
import { assertComponent } from '../helpers/component.js';
import { guardSuite, storeSuite } from '../helpers/suite.js';
import { downStore } from '../helpers/stores.js';
import { MemoryStore, jspiSupported } from '../../src/index.js';

assert.ok(jspiSupported, `Node ${process.version} lacks JSPI (WebAssembly.Suspending): run this suite with ./node_modules/.bin/node`);
await assertComponent();

guardSuite('interleaving memory (JSPI build)', {
  store: () => new MemoryStore({ interleave: true }),
  downStore: async () => downStore({ isAsync: true }),
});
storeSuite('interleaving memory', () => new MemoryStore({ interleave: true }));

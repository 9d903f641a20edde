// The synchronous build on any Node >= 20: the in-memory store, whose steps run inline.
import { assertComponent } from '../helpers/component.js';
import { guardSuite, storeSuite } from '../helpers/suite.js';
import { downStore } from '../helpers/stores.js';
import { MemoryStore } from '../../src/index.js';

await assertComponent();

guardSuite('memory (sync build)', {
  store: () => new MemoryStore(),
  downStore: async () => downStore({ isAsync: false }),
});
storeSuite('memory', () => new MemoryStore());

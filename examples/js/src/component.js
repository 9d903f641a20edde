// Loads the jco output in gen/ and makes guard instances from it.
//
// Two builds exist (see scripts/build.mjs): `sync` for stores that answer synchronously, `jspi` for
// stores that return promises. Core modules are compiled once per build; each instance gets its
// own store, clock and linear memory.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';
import { clocks } from '@bytecodealliance/preview2-shim';
import { storeImport } from './store/adapter.js';

const GEN = new URL('../gen/', import.meta.url);
const builds = new Map();

export const jspiSupported = typeof WebAssembly.Suspending === 'function' && typeof WebAssembly.promising === 'function';

/** What gen/ was transpiled from: `{ wasm, sha256 }`. */
export async function buildInfo() {
  try {
    return JSON.parse(await readFile(new URL('source.json', GEN), 'utf8'));
  } catch (err) {
    throw new Error(`no transpiled guard in ${fileURLToPath(GEN)}: run \`npm run build\` first`, { cause: err });
  }
}

function load(name) {
  if (!builds.has(name)) {
    const dir = new URL(`${name}/`, GEN);
    const modules = new Map();
    const compile = (file) => {
      if (!modules.has(file)) modules.set(file, readFile(new URL(file, dir)).then((b) => WebAssembly.compile(b)));
      return modules.get(file);
    };
    builds.set(name, buildInfo().then(() => import(new URL('guard.js', dir).href)).then((m) => ({ m, compile })));
  }
  return builds.get(name);
}

/**
 * Instantiates the guard with `store` as its `idem:guard/store` import. `now` (ms since the epoch)
 * replaces wasi:clocks/wall-clock, so tests and simulations can move the guard's time.
 */
export async function instantiate({ store, now }) {
  const name = store.isAsync ? 'jspi' : 'sync';
  if (name === 'jspi' && !jspiSupported) {
    throw new Error(
      'this store is asynchronous, which needs JSPI (WebAssembly.Suspending): run on Node 25+, ' +
        'e.g. ./node_modules/.bin/node from the `node` package in package.json',
    );
  }
  const { m, compile } = await load(name);
  const wasi = new WASIShim({
    // The guard reads no files, sockets or environment; give it none.
    sandbox: { preopens: {}, env: {}, args: ['idem-guard'], enableNetwork: false },
    clocks: now ? { ...clocks, wallClock: wallClockFrom(now) } : undefined,
  }).getImportObject();
  const exports = await m.instantiate(compile, { ...wasi, 'idem:guard/store': storeImport(store) });
  return exports.guard;
}

function wallClockFrom(now) {
  return {
    now() {
      const ms = BigInt(Math.floor(now()));
      return { seconds: ms / 1000n, nanoseconds: Number(ms % 1000n) * 1_000_000 };
    },
    resolution: () => ({ seconds: 0n, nanoseconds: 1_000_000 }),
  };
}

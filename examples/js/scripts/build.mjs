// Transpiles the guard component into gen/ twice:
//   gen/sync  - plain synchronous imports; any Node >= 20, stores whose methods return values.
//   gen/jspi  - store imports suspend through JSPI and guard exports return promises; needs
//               WebAssembly.Suspending (Node 25 here), required by stores that do I/O (Redis).
// Both use instantiation mode so each Guard passes its own store and clock instead of sharing
// module-level singletons.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const wasm = resolve(
  process.env.IDEM_GUARD_WASM ??
    join(root, '../../target/component/wasm32-wasip2/release/idem_component.wasm'),
);
const out = join(root, 'gen');

// jco's package exports hide package.json, so its CLI is found on disk, and run with this very Node.
const jcoDir = join(root, 'node_modules/@bytecodealliance/jco');
const jco = join(jcoDir, JSON.parse(readFileSync(join(jcoDir, 'package.json'), 'utf8')).bin.jco);

const STORE = 'idem:guard/store@0.1.0';
const GUARD = 'idem:guard/guard@0.1.0';
const storeFns = ['get', 'insert-or-get', 'compare-and-swap', 'delete-if-version'];
const guardFns = ['claim', 'complete', 'fail', 'renew', 'status', 'forget'];

const common = ['--name', 'guard', '--instantiation', 'async', '--no-typescript', '--quiet'];
const variants = {
  sync: [],
  jspi: [
    '--async-mode', 'jspi',
    '--async-imports', ...storeFns.map((f) => `${STORE}#${f}`),
    '--async-exports', ...guardFns.map((f) => `${GUARD}#${f}`),
  ],
};

const bytes = readFileSync(wasm); // fails loudly when the component was not built
rmSync(out, { recursive: true, force: true });
for (const [name, flags] of Object.entries(variants)) {
  const dir = join(out, name);
  mkdirSync(dir, { recursive: true });
  execFileSync(process.execPath, [jco, 'transpile', wasm, '-o', dir, ...common, ...flags], {
    stdio: 'inherit',
  });
}
// Lets the loader and the tests prove gen/ was made from the component they were pointed at.
const sha256 = createHash('sha256').update(bytes).digest('hex');
writeFileSync(join(out, 'source.json'), JSON.stringify({ wasm, sha256 }, null, 2) + '\n');
console.log(`transpiled ${wasm} (sha256 ${sha256}) into ${out}`);

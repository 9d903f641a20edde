// Every suite first proves it is testing the component it was pointed at: IDEM_GUARD_WASM must be
// the file whose sha256 is IDEM_GUARD_SHA256, and gen/ must have been transpiled from it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { buildInfo } from '../../src/component.js';

export async function assertComponent() {
  const wasm = process.env.IDEM_GUARD_WASM;
  const expected = process.env.IDEM_GUARD_SHA256?.trim().toLowerCase();
  assert.ok(wasm, 'set IDEM_GUARD_WASM to the built guard component (idem_component.wasm)');
  assert.ok(expected, 'set IDEM_GUARD_SHA256 to the sha256 of IDEM_GUARD_WASM');
  const actual = createHash('sha256').update(await readFile(wasm)).digest('hex');
  assert.equal(actual, expected, `sha256 of ${wasm} differs from IDEM_GUARD_SHA256`);
  const built = await buildInfo();
  assert.equal(built.sha256, expected, `gen/ was transpiled from another component (${built.wasm}): run npm run build`);
}

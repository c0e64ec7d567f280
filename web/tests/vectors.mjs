// Checks web/seal.js against the shared vectors of the Rust crate
// (signaling/tests/vectors/vectors.json, see its README.md). Node >= 20:
//
//   node web/tests/vectors.mjs [path/to/vectors.json]
//
// Prints one line per failure and ends with "N passed, N failed"; exits 1 on
// any failure. The checks themselves are in vectors-core.js, which the
// Chromium test runs too.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { webcrypto } from 'node:crypto';
import { runVectors } from './vectors-core.js';

// Node 18 (Debian 12's nodejs) has WebCrypto only as node:crypto's webcrypto.
if (!globalThis.crypto) globalThis.crypto = webcrypto;
const seal = await import('../seal.js');

const here = path.dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] || path.join(here, '../../signaling/tests/vectors/vectors.json');
const V = JSON.parse(readFileSync(file, 'utf8'));
const { passed, failed } = await runVectors(seal, V, (line) => console.log(line));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

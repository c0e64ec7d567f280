// Unit tests of web/seal.js under Node's test runner (node >= 20 has
// WebCrypto at globalThis.crypto):   node --test web/tests/
// The shared vectors of signaling/tests/vectors/ are checked by vectors.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, hkdfSync } from 'node:crypto';
import {
  b64uEncode,
  b64uDecode,
  hkdfSha256,
  deriveKeyBytes,
  labelFor,
  nonceFor,
  Sealer,
  Opener,
  SealError,
  tokenHash,
  fingerprintFromSdp,
  sas,
  sasDisplay,
  MAX_PLAINTEXT,
} from '../seal.js';

const hex = (h) => Uint8Array.from(h.match(/../g) || [], (b) => parseInt(b, 16));
const toHex = (u) => Buffer.from(u).toString('hex');
const range = (a, b) => Uint8Array.from({ length: b - a + 1 }, (_, i) => a + i);
const CONS = 'AAAAAAAAAAAAAAAAAAAAAA';
const KEY = new Uint8Array(32).fill(7);

async function rejects(promise, code) {
  await assert.rejects(promise, (e) => e instanceof SealError && e.code === code);
}

test('HKDF-SHA256: RFC 5869 appendix A, test cases 1-3', async () => {
  // A.1
  assert.equal(
    toHex(await hkdfSha256(range(0, 12), new Uint8Array(22).fill(0x0b), range(0xf0, 0xf9), 42)),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
  // A.2
  assert.equal(
    toHex(await hkdfSha256(range(0x60, 0xaf), range(0x00, 0x4f), range(0xb0, 0xff), 82)),
    'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c' +
      '59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71' +
      'cc30c58179ec3e87c14c01d5c1f3434f1d87',
  );
  // A.3: empty salt and info
  assert.equal(
    toHex(await hkdfSha256(new Uint8Array(0), new Uint8Array(22).fill(0x0b), new Uint8Array(0), 42)),
    '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
  );
});

test('envelope key = HKDF(salt "telenode/v1/seal", ikm link key, info label)', async () => {
  const epoch = b64uEncode(new Uint8Array(16).fill(1));
  const label = labelFor(CONS, 'p2d', epoch);
  assert.equal(label, `telenode/v1|${CONS}|p2d|${epoch}`);
  const expect = Buffer.from(hkdfSync('sha256', KEY, Buffer.from('telenode/v1/seal'), Buffer.from(label), 32));
  assert.equal(toHex(await deriveKeyBytes(KEY, CONS, 'p2d', epoch)), expect.toString('hex'));
  assert.throws(() => labelFor(CONS, 'x2y', epoch), SealError);
  await rejects(deriveKeyBytes(new Uint8Array(31), CONS, 'p2d', epoch), 'bad_key');
});

test('nonce layout', () => {
  assert.deepEqual(Array.from(nonceFor(0x0102)), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
  assert.deepEqual(Array.from(nonceFor(2 ** 53 - 1)), [0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(Array.from(nonceFor(2 ** 32)), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
});

test('base64url: round trip, strict decoding', () => {
  for (let n = 0; n < 40; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 255);
    const s = b64uEncode(bytes);
    assert.equal(s, Buffer.from(bytes).toString('base64url'));
    assert.deepEqual(b64uDecode(s), bytes);
  }
  assert.equal(b64uEncode(new Uint8Array([0xfb, 0xff])), '-_8');
  for (const bad of ['A', 'AAAAA', 'AA==', 'AB', 'AAB', '+/8', 'AA AA', 'ÄÄ', 'A=']) {
    assert.throws(() => b64uDecode(bad), (e) => e instanceof SealError && e.code === 'malformed', bad);
  }
  assert.deepEqual(b64uDecode(''), new Uint8Array(0));
});

test('seal then open in order; ct is AES-256-GCM over the label', async () => {
  const s = await Sealer.create(KEY, CONS, 'd2p', new Uint8Array(16).fill(1));
  const o = new Opener(KEY, CONS, 'd2p');
  for (let i = 0; i < 5; i++) {
    const env = await s.seal(`{"kind":"chat","text":"${i}"}`);
    assert.equal(env.seq, i);
    assert.equal(env.epoch, b64uEncode(new Uint8Array(16).fill(1)));
    assert.equal(await o.open(env), `{"kind":"chat","text":"${i}"}`);
  }
  assert.equal(o.state.last, 4);
  // Independent check with node:crypto.
  const env = await s.seal('hi');
  const key = hkdfSync('sha256', KEY, Buffer.from('telenode/v1/seal'), Buffer.from(labelFor(CONS, 'd2p', env.epoch)), 32);
  const { createDecipheriv } = await import('node:crypto');
  const ct = Buffer.from(env.ct, 'base64url');
  const d = createDecipheriv('aes-256-gcm', Buffer.from(key), Buffer.from(nonceFor(5)));
  d.setAAD(Buffer.from(labelFor(CONS, 'd2p', env.epoch)));
  d.setAuthTag(ct.subarray(ct.length - 16));
  assert.equal(Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]).toString(), 'hi');
});

test('receiving rules; a rejection leaves the opener unchanged', async () => {
  const s = await Sealer.create(KEY, CONS, 'd2p');
  const o = new Opener(KEY, CONS, 'd2p');
  const e0 = await s.seal('a');
  const e1 = await s.seal('b');
  const e2 = await s.seal('c');
  await rejects(o.open(e1), 'epoch_not_at_zero');
  assert.equal(await o.open(e0), 'a');
  await rejects(o.open(e0), 'replay');
  await rejects(o.open(e2), 'out_of_order');
  const tampered = Object.assign({}, e1, { ct: e1.ct.slice(0, -2) + (e1.ct.endsWith('AA') ? 'BA' : 'AA') });
  await rejects(o.open(tampered), 'integrity');
  assert.deepEqual(o.state, { epoch: e0.epoch, last: 0, seen: 1 });
  assert.equal(await o.open(e1), 'b');
  assert.equal(await o.open(e2), 'c');

  // New epoch from 0 is accepted; the old one can never come back.
  const s2 = await Sealer.create(KEY, CONS, 'd2p');
  assert.equal(await o.open(await s2.seal('d')), 'd');
  await rejects(o.open(e2), 'reused_epoch');
  const s1again = await Sealer.create(KEY, CONS, 'd2p', b64uDecode(e0.epoch));
  await rejects(o.open(await s1again.seal('x')), 'reused_epoch');

  // A fresh epoch whose first envelope is forged does not become current.
  const s3 = await Sealer.create(KEY, CONS, 'd2p');
  const f0 = await s3.seal('e');
  await rejects(o.open(Object.assign({}, f0, { seq: 0, ct: (await s3.seal('zz')).ct })), 'integrity');
  assert.equal(o.state.seen, 2);
  assert.equal(await o.open(f0), 'e');
});

test('reflection, wrong consultation and wrong key fail authentication', async () => {
  const p2d = await Sealer.create(KEY, CONS, 'p2d');
  await rejects(new Opener(KEY, CONS, 'd2p').open(await p2d.seal('x')), 'integrity');
  const s = await Sealer.create(KEY, CONS, 'd2p');
  const env = await s.seal('y');
  await rejects(new Opener(KEY, 'BBBBBBBBBBBBBBBBBBBBBB', 'd2p').open(env), 'integrity');
  await rejects(new Opener(new Uint8Array(32), CONS, 'd2p').open(env), 'integrity');
});

test('malformed envelopes and size limits', async () => {
  const o = new Opener(KEY, CONS, 'd2p');
  const s = await Sealer.create(KEY, CONS, 'd2p');
  const env = await s.seal('x');
  await rejects(o.open(Object.assign({}, env, { epoch: 'AAAA' })), 'malformed');
  await rejects(o.open(Object.assign({}, env, { epoch: env.epoch + '=' })), 'malformed');
  await rejects(o.open(Object.assign({}, env, { seq: -1 })), 'malformed');
  await rejects(o.open(Object.assign({}, env, { seq: 1.5 })), 'malformed');
  await rejects(o.open(Object.assign({}, env, { seq: 2 ** 53 })), 'malformed');
  await rejects(o.open(Object.assign({}, env, { seq: '0' })), 'malformed');
  await rejects(o.open(Object.assign({}, env, { ct: 'AAAA' })), 'malformed');
  await rejects(o.open(Object.assign({}, env, { ct: 'A'.repeat(70000) })), 'too_large');
  await rejects(o.open(null), 'malformed');
  assert.equal(await o.open(env), 'x');

  const big = 'a'.repeat(MAX_PLAINTEXT);
  const benv = await s.seal(big);
  assert.equal(await o.open(benv), big);
  await rejects(s.seal(big + 'a'), 'too_large');
  assert.equal(s.nextSeq, 2, 'a refused seal does not use a seq');
});

test('overlapping open() calls are checked in call order', async () => {
  const s = await Sealer.create(KEY, CONS, 'd2p');
  const envs = [];
  for (let i = 0; i < 20; i++) envs.push(await s.seal(String(i)));
  const o = new Opener(KEY, CONS, 'd2p');
  const out = await Promise.all(envs.map((e) => o.open(e)));
  assert.deepEqual(out, envs.map((_, i) => String(i)));
});

test('token hash = SHA-256("telenode/v1/token|" || raw), hex', async () => {
  const raw = new Uint8Array(32).fill(0xfb);
  const expect = createHash('sha256').update('telenode/v1/token|').update(raw).digest('hex');
  assert.equal(await tokenHash(raw), expect);
});

test('fingerprint from SDP (as sas.rs)', () => {
  const sdp =
    'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n' +
    'a=fingerprint:SHA-256   ab:cd:0f \r\na=fingerprint:sha-1 00:11\r\n';
  assert.equal(fingerprintFromSdp(sdp), 'sha-256 AB:CD:0F');
  assert.equal(fingerprintFromSdp('v=0\r\n'), null);
  assert.equal(fingerprintFromSdp('a=fingerprint:sha-256'), null);
  assert.equal(fingerprintFromSdp('a=fingerprint:sha-256 AB:C'), null);
  assert.equal(fingerprintFromSdp('a=fingerprint:sha-256 AB:CD x'), null);
  assert.equal(fingerprintFromSdp('a=fingerprint:sha-256 AB::CD'), null);
  assert.equal(fingerprintFromSdp('a=fingerprint:sh a AB'), null);
});

test('SAS: six digits, order matters, display', async () => {
  const fd = 'sha-256 AA';
  const fp = 'sha-256 BB';
  const a = await sas(fd, fp);
  assert.match(a, /^[0-9]{6}$/);
  assert.notEqual(a, await sas(fp, fd));
  const h = createHash('sha256').update(`telenode/v1/sas|${fd}|${fp}`).digest();
  assert.equal(a, String(h.readUInt32BE(0) % 1000000).padStart(6, '0'));
  assert.equal(sasDisplay('012345'), '012 345');
  assert.equal(sasDisplay('12345'), '12345');
  assert.equal(sasDisplay('12345a'), '12345a');
});

// The checks of web/seal.js against the shared vectors
// (signaling/tests/vectors/vectors.json), with no imports of its own so the
// same code runs under Node.js (web/tests/vectors.mjs) and inside headless
// Chromium against the page's served seal.js (tests/browser_vectors.rs).
//
// runVectors(seal, V, log) -> { passed, failed }; `seal` is the seal.js
// module, `V` the parsed vectors, `log` receives one line per failure.
export async function runVectors(seal, V, log) {
  const {
    b64uDecode, hexEncode, hkdfSha256, labelFor, deriveKeyBytes, nonceFor,
    Sealer, Opener, sealedFrame, tokenHash, fingerprintFromSdp, sas, sasDisplay,
  } = seal;
  const hex = (h) => Uint8Array.from(h.match(/../g) || [], (b) => parseInt(b, 16));
  let passed = 0;
  let failed = 0;

  async function check(section, name, fn) {
    try {
      const problems = [];
      await fn((what, got, want) => {
        if (got !== want) problems.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
      });
      if (problems.length) throw new Error(problems.join('; '));
      passed++;
    } catch (e) {
      failed++;
      log(`FAIL ${section} / ${name}: ${e.message}`);
    }
  }

  /** The code a rejected open() gives, or 'ok:<plaintext>'. */
  async function outcome(opener, env) {
    try {
      return 'ok:' + (await opener.open(env));
    } catch (e) {
      return e.code || String(e);
    }
  }

  if (V.format !== 1) log(`note: vectors format ${V.format}, this checker knows format 1`);

  for (const v of V.hkdf_sha256 || []) {
    await check('hkdf_sha256', v.name, async (eq) => {
      eq('okm', hexEncode(await hkdfSha256(hex(v.salt), hex(v.ikm), hex(v.info), v.length)), v.okm);
    });
  }

  for (const v of V.seal || []) {
    await check('seal', v.name, async (eq) => {
      const key = b64uDecode(v.link_key);
      eq('label', labelFor(v.consultation, v.dir, v.epoch), v.label);
      eq('key', hexEncode(await deriveKeyBytes(key, v.consultation, v.dir, v.epoch)), v.key);
      eq('nonce', hexEncode(nonceFor(v.seq)), v.nonce);
      // A sender that started `epoch` and sealed `seq` fillers first.
      const sealer = await Sealer.create(key, v.consultation, v.dir, b64uDecode(v.epoch));
      const opener = new Opener(key, v.consultation, v.dir);
      for (let i = 0; i < v.seq; i++) {
        const filler = await sealer.seal(`{"kind":"chat","text":"filler ${i}"}`);
        eq(`filler ${i} opens`, await outcome(opener, filler), `ok:{"kind":"chat","text":"filler ${i}"}`);
      }
      const env = await sealer.seal(v.plaintext);
      eq('seq', env.seq, v.seq);
      eq('epoch', env.epoch, v.epoch);
      eq('ct', env.ct, v.ct);
      eq('frame', sealedFrame(env), v.frame);
      eq('open', await outcome(opener, { epoch: v.epoch, seq: v.seq, ct: v.ct }), 'ok:' + v.plaintext);
    });
  }

  for (const v of V.open_negative || []) {
    await check('open_negative', v.name, async (eq) => {
      const opener = new Opener(b64uDecode(v.link_key), v.consultation, v.dir);
      eq('error', await outcome(opener, v.envelope), v.error);
      eq('state unchanged', JSON.stringify(opener.state), JSON.stringify({ epoch: null, last: -1, seen: 0 }));
    });
  }

  for (const v of V.open_sequences || []) {
    await check('open_sequences', v.name, async (eq) => {
      const opener = new Opener(b64uDecode(v.link_key), v.consultation, v.dir);
      for (let i = 0; i < v.steps.length; i++) {
        const s = v.steps[i];
        const before = JSON.stringify(opener.state);
        const got = await outcome(opener, { epoch: s.epoch, seq: s.seq, ct: s.ct });
        eq(`step ${i}`, got, s.expect === 'ok' ? 'ok:' + s.plaintext : s.expect);
        if (s.expect !== 'ok') eq(`step ${i} leaves state unchanged`, JSON.stringify(opener.state), before);
      }
    });
  }

  for (const v of V.token_hash || []) {
    await check('token_hash', v.name, async (eq) => {
      eq('token_hash', await tokenHash(b64uDecode(v.token)), v.token_hash);
    });
  }

  for (const v of V.fingerprint || []) {
    await check('fingerprint', v.name, async (eq) => {
      eq('fingerprint', fingerprintFromSdp(v.sdp), v.fingerprint);
    });
  }

  for (const v of V.sas || []) {
    await check('sas', v.name, async (eq) => {
      const code = await sas(v.doctor_fp, v.patient_fp);
      eq('sas', code, v.sas);
      eq('display', sasDisplay(code), v.display);
    });
  }

  const known = new Set(['description', 'format', 'hkdf_sha256', 'seal', 'open_negative', 'open_sequences', 'token_hash', 'fingerprint', 'sas']);
  for (const k of Object.keys(V)) if (!known.has(k)) log(`note: section "${k}" is not checked by this script`);
  return { passed, failed };
}

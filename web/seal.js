// telenode sealed envelopes, token hash and short authentication string.
//
// The browser half of docs/PROTOCOL.md ("Sealed envelope", "Receiving rules",
// "Short authentication string"). WebCrypto only, no dependencies; checked
// against signaling/tests/vectors/ (web/tests/vectors.mjs, and from Rust in
// headless Chromium). Nothing here logs: keys, SDP and plaintexts never reach
// the console.

const subtle = globalThis.crypto.subtle;
const enc = new TextEncoder();
// fatal: invalid UTF-8 in an opened envelope is an error, not U+FFFD.
const dec = new TextDecoder('utf-8', { fatal: true });

const LABEL_PREFIX = 'telenode/v1|';
const SEAL_SALT = enc.encode('telenode/v1/seal');
const TOKEN_PREFIX = enc.encode('telenode/v1/token|');
const SAS_PREFIX = 'telenode/v1/sas|';

export const LINK_KEY_LEN = 32;
export const EPOCH_LEN = 16;
export const TAG_LEN = 16;
/** Largest plaintext an envelope may carry (48 KiB of UTF-8). */
export const MAX_PLAINTEXT = 48 * 1024;
/** seq is an integer 0 <= seq < 2^53. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER; // 2^53 - 1
/** Longest `ct` (base64url characters) an opener accepts: a full plaintext plus the tag. */
export const MAX_CT_B64_CHARS = Math.ceil((MAX_PLAINTEXT + TAG_LEN) / 3) * 4;
const DIRS = new Set(['d2p', 'p2d']);

/**
 * Every failure of this module. `.code` is machine readable and matches
 * `SealError::kind()` of signaling/src/seal.rs: malformed, too_large, replay,
 * out_of_order, epoch_not_at_zero, reused_epoch, integrity, bad_key,
 * seq_exhausted, bad_payload.
 */
export class SealError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'SealError';
    this.code = code;
  }
}

// ---------------------------------------------------------------- base64url

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64U_REV = new Int16Array(128).fill(-1);
for (let i = 0; i < B64U.length; i++) B64U_REV[B64U.charCodeAt(i)] = i;

/** RFC 4648 §5 base64url, no padding. */
export function b64uEncode(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('b64uEncode expects a Uint8Array');
  let out = '';
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64U[n >> 18] + B64U[(n >> 12) & 63] + B64U[(n >> 6) & 63] + B64U[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += B64U[n >> 18] + B64U[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64U[n >> 18] + B64U[(n >> 12) & 63] + B64U[(n >> 6) & 63];
  }
  return out;
}

/**
 * Strict base64url decoding, no padding: rejects '=', '+', '/', whitespace,
 * an impossible length and non-zero trailing bits (so every byte string has
 * exactly one accepted spelling, like Rust's URL_SAFE_NO_PAD engine).
 * Throws SealError('malformed').
 */
export function b64uDecode(str) {
  if (typeof str !== 'string') throw new SealError('malformed', 'base64url: not a string');
  const len = str.length;
  if (len % 4 === 1) throw new SealError('malformed', 'base64url: bad length');
  const out = new Uint8Array(Math.floor((len * 3) / 4));
  const val = (k) => {
    const c = str.charCodeAt(k);
    const v = c < 128 ? B64U_REV[c] : -1;
    if (v < 0) throw new SealError('malformed', 'base64url: bad character');
    return v;
  };
  let o = 0;
  let k = 0;
  for (; k + 4 <= len; k += 4) {
    const n = (val(k) << 18) | (val(k + 1) << 12) | (val(k + 2) << 6) | val(k + 3);
    out[o++] = n >> 16;
    out[o++] = (n >> 8) & 255;
    out[o++] = n & 255;
  }
  const rest = len - k;
  if (rest === 2) {
    const a = val(k);
    const b = val(k + 1);
    if (b & 15) throw new SealError('malformed', 'base64url: non-zero trailing bits');
    out[o++] = (a << 2) | (b >> 4);
  } else if (rest === 3) {
    const a = val(k);
    const b = val(k + 1);
    const c = val(k + 2);
    if (c & 3) throw new SealError('malformed', 'base64url: non-zero trailing bits');
    out[o++] = (a << 2) | (b >> 4);
    out[o++] = ((b & 15) << 4) | (c >> 2);
  }
  return out;
}

/** Lower-case hex. */
export function hexEncode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}

// ------------------------------------------------------------ key derivation

function checkLinkKey(linkKeyBytes) {
  if (!(linkKeyBytes instanceof Uint8Array) || linkKeyBytes.length !== LINK_KEY_LEN) {
    throw new SealError('bad_key', 'link key must be 32 bytes');
  }
}

function checkDir(dir) {
  if (!DIRS.has(dir)) throw new SealError('malformed', 'dir must be d2p or p2d');
}

/**
 * The HKDF info and the AEAD associated data:
 * "telenode/v1|" + consultation_id + "|" + dir + "|" + epoch_b64u.
 * consultation and epoch are the base64url strings as they travel.
 */
export function labelFor(consultation, dir, epochB64u) {
  if (typeof consultation !== 'string' || consultation === '') {
    throw new SealError('malformed', 'consultation id missing');
  }
  checkDir(dir);
  if (typeof epochB64u !== 'string') throw new SealError('malformed', 'epoch must be base64url');
  return LABEL_PREFIX + consultation + '|' + dir + '|' + epochB64u;
}

/** HKDF-SHA256(salt "telenode/v1/seal", ikm link key, info label, L 32): raw bytes. */
export async function deriveKeyBytes(linkKeyBytes, consultation, dir, epochB64u) {
  checkLinkKey(linkKeyBytes);
  return hkdfSha256(SEAL_SALT, linkKeyBytes, enc.encode(labelFor(consultation, dir, epochB64u)), 32);
}

/**
 * Generic HKDF-SHA256 (RFC 5869) to `length` bytes, for the RFC 5869 test
 * vectors; deriveKeyBytes is this with the envelope's salt and label.
 */
export async function hkdfSha256(salt, ikm, info, length) {
  const key = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const bits = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, length * 8);
  return new Uint8Array(bits);
}

/** The same key as a non-extractable AES-256-GCM CryptoKey. */
export async function deriveKey(linkKeyBytes, consultation, dir, epochB64u) {
  const raw = await deriveKeyBytes(linkKeyBytes, consultation, dir, epochB64u);
  try {
    return await subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  } finally {
    raw.fill(0);
  }
}

/** 0x00000000 ‖ u64_be(seq). */
export function nonceFor(seq) {
  const nonce = new Uint8Array(12);
  const view = new DataView(nonce.buffer);
  // seq < 2^53: split into the high and low 32-bit halves of the u64.
  view.setUint32(4, Math.floor(seq / 2 ** 32));
  view.setUint32(8, seq >>> 0);
  return nonce;
}

function isValidSeq(seq) {
  return Number.isSafeInteger(seq) && seq >= 0;
}

// ------------------------------------------------------------------- sealing

/** Seals one direction with one epoch; seq counts from 0. */
export class Sealer {
  /**
   * @param {Uint8Array} linkKeyBytes 32 bytes
   * @param {string} consultation consultation id (base64url, from `welcome`)
   * @param {'d2p'|'p2d'} dir the direction this side sends
   * @param {Uint8Array} [epochBytes] 16 bytes; fresh random when absent
   */
  static async create(linkKeyBytes, consultation, dir, epochBytes) {
    checkLinkKey(linkKeyBytes);
    if (epochBytes === undefined || epochBytes === null) {
      epochBytes = globalThis.crypto.getRandomValues(new Uint8Array(EPOCH_LEN));
    }
    if (!(epochBytes instanceof Uint8Array) || epochBytes.length !== EPOCH_LEN) {
      throw new SealError('malformed', 'epoch must be 16 bytes');
    }
    const epoch = b64uEncode(epochBytes);
    const label = labelFor(consultation, dir, epoch);
    const key = await deriveKey(linkKeyBytes, consultation, dir, epoch);
    return new Sealer(key, label, epoch);
  }

  constructor(key, label, epoch) {
    this._key = key;
    this._aad = enc.encode(label);
    this.epoch = epoch;
    this._next = 0;
  }

  /** The seq the next seal() will use. */
  get nextSeq() {
    return this._next;
  }

  /**
   * Seals one plaintext (a JSON string) and returns the envelope fields
   * {epoch, seq, ct}. seq is taken synchronously, so envelopes are numbered
   * in call order; the caller must still *send* them in that order (chain
   * seal+send, as app.js does).
   */
  async seal(plaintextString) {
    if (typeof plaintextString !== 'string') throw new TypeError('seal expects a string');
    const pt = enc.encode(plaintextString);
    if (pt.length > MAX_PLAINTEXT) throw new SealError('too_large', 'plaintext over 48 KiB');
    const seq = this._next;
    if (seq > MAX_SEQ) throw new SealError('seq_exhausted', 'sequence numbers exhausted; start a new epoch');
    this._next = seq + 1;
    const ct = await subtle.encrypt(
      { name: 'AES-GCM', iv: nonceFor(seq), additionalData: this._aad, tagLength: 128 },
      this._key,
      pt,
    );
    return { epoch: this.epoch, seq, ct: b64uEncode(new Uint8Array(ct)) };
  }
}

/** The `sealed` wire message carrying an envelope, fields in protocol order. */
export function sealedFrame(env) {
  return JSON.stringify({ v: 1, type: 'sealed', epoch: env.epoch, seq: env.seq, ct: env.ct });
}

// ------------------------------------------------------------------- opening

/**
 * Opens the envelopes of one direction and enforces the receiving rules:
 *   bad fields  -> 'malformed' (ct longer than a full envelope: 'too_large')
 *   same epoch  -> seq must be last + 1            (else 'replay' / 'out_of_order')
 *   new epoch   -> never seen, and seq must be 0   (else 'reused_epoch' / 'epoch_not_at_zero')
 *   AEAD fails  -> 'integrity'
 * in that order, as signaling/src/seal.rs. A rejected envelope leaves the
 * state unchanged. Plaintext that is not UTF-8 counts as accepted (the
 * state advances, as in Rust) but throws 'bad_payload'. Calls are queued, so
 * even overlapping open() calls are checked strictly in call order.
 */
export class Opener {
  /**
   * @param {Uint8Array} linkKeyBytes 32 bytes
   * @param {string} consultation consultation id
   * @param {'d2p'|'p2d'} dir the direction this side *receives*
   */
  constructor(linkKeyBytes, consultation, dir) {
    checkLinkKey(linkKeyBytes);
    labelFor(consultation, dir, ''); // validates consultation and dir
    this._linkKey = linkKeyBytes.slice();
    this._consultation = consultation;
    this._dir = dir;
    this._epoch = null; // current epoch (b64u) or null before the first envelope
    this._last = -1; // last accepted seq in the current epoch
    this._seen = new Set(); // every epoch ever accepted
    this._keys = new Map(); // cache: epoch -> CryptoKey (only the current one kept)
    this._tail = Promise.resolve();
  }

  /** The current epoch (b64u) and last accepted seq, for diagnostics/tests. */
  get state() {
    return { epoch: this._epoch, last: this._last, seen: this._seen.size };
  }

  open(envelope) {
    const run = this._tail.then(() => this._open(envelope));
    this._tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async _open(envelope) {
    if (envelope === null || typeof envelope !== 'object') {
      throw new SealError('malformed', 'envelope must be an object');
    }
    const { epoch, seq, ct } = envelope;
    if (typeof epoch !== 'string' || b64uDecode(epoch).length !== EPOCH_LEN) {
      throw new SealError('malformed', 'epoch must be 16 bytes of base64url');
    }
    if (!isValidSeq(seq)) throw new SealError('malformed', 'seq must be an integer 0 <= seq < 2^53');
    if (typeof ct !== 'string') throw new SealError('malformed', 'ct must be base64url');
    if (ct.length > MAX_CT_B64_CHARS) throw new SealError('too_large', 'ct longer than any envelope');
    const ctBytes = b64uDecode(ct);
    if (ctBytes.length < TAG_LEN) throw new SealError('malformed', 'ct shorter than the tag');

    // Sequence rules first (cheap), decryption second; commit only after both.
    const sameEpoch = epoch === this._epoch;
    if (sameEpoch) {
      if (seq <= this._last) throw new SealError('replay', 'replayed envelope');
      if (seq !== this._last + 1) throw new SealError('out_of_order', 'envelope out of order');
    } else {
      if (this._seen.has(epoch)) throw new SealError('reused_epoch', 'epoch seen before');
      if (seq !== 0) throw new SealError('epoch_not_at_zero', 'a new epoch must start at seq 0');
    }

    let key = this._keys.get(epoch);
    if (!key) key = await deriveKey(this._linkKey, this._consultation, this._dir, epoch);
    const aad = enc.encode(labelFor(this._consultation, this._dir, epoch));
    let pt;
    try {
      pt = await subtle.decrypt(
        { name: 'AES-GCM', iv: nonceFor(seq), additionalData: aad, tagLength: 128 },
        key,
        ctBytes,
      );
    } catch (_e) {
      throw new SealError('integrity', 'envelope failed authentication');
    }

    // Accepted: commit the new state.
    if (!sameEpoch) {
      this._seen.add(epoch);
      this._keys.clear();
      this._keys.set(epoch, key);
      this._epoch = epoch;
    }
    this._last = seq;
    try {
      return dec.decode(pt);
    } catch (_e) {
      throw new SealError('bad_payload', 'plaintext is not UTF-8');
    }
  }
}

// --------------------------------------------------------------- token hash

async function sha256(bytes) {
  return new Uint8Array(await subtle.digest('SHA-256', bytes));
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** SHA-256("telenode/v1/token|" ‖ raw token bytes), as lower-case hex (as in the vectors). */
export async function tokenHash(rawTokenBytes) {
  if (!(rawTokenBytes instanceof Uint8Array)) throw new TypeError('tokenHash expects a Uint8Array');
  return hexEncode(await sha256(concat(TOKEN_PREFIX, rawTokenBytes)));
}

// ---------------------------------------------------------------------- SAS

const SDP_TRIM = /^[ \t\r]+|[ \t\r]+$/g;
const FP_ALGO = /^[A-Za-z0-9_-]+$/;
const FP_BYTE = /^[0-9A-Fa-f]{2}$/;

/**
 * Normalises a fingerprint value "ALG HEX" to "alg HEX" (algorithm lower
 * case, one space, hex upper case), or null if it is not an algorithm name
 * followed by colon-separated hex bytes.
 */
export function normaliseFingerprint(value) {
  if (typeof value !== 'string') return null;
  const parts = value.split(/[ \t]/).filter((p) => p !== '');
  if (parts.length !== 2) return null;
  const [algo, hex] = parts;
  if (!FP_ALGO.test(algo)) return null;
  if (!hex.split(':').every((b) => FP_BYTE.test(b))) return null;
  return algo.toLowerCase() + ' ' + hex.toUpperCase();
}

/**
 * The DTLS fingerprint of an SDP, as sas.rs `fingerprint_from_sdp`: the
 * first `a=fingerprint:` line (session or media level), normalised as
 * "sha-256 AB:CD:..."; null when there is none or that first line is
 * malformed.
 */
export function fingerprintFromSdp(sdp) {
  if (typeof sdp !== 'string') return null;
  for (const raw of sdp.split('\n')) {
    const line = raw.replace(SDP_TRIM, '');
    if (line.startsWith('a=fingerprint:')) return normaliseFingerprint(line.slice('a=fingerprint:'.length));
  }
  return null;
}

/** SAS = u32_be(SHA-256("telenode/v1/sas|" + fd + "|" + fp)[0..4]) mod 1e6, six digits. */
export async function sas(doctorFp, patientFp) {
  if (typeof doctorFp !== 'string' || typeof patientFp !== 'string') {
    throw new TypeError('sas expects two fingerprint strings');
  }
  const h = await sha256(enc.encode(SAS_PREFIX + doctorFp + '|' + patientFp));
  const n = new DataView(h.buffer).getUint32(0);
  return String(n % 1000000).padStart(6, '0');
}

/** "123456" -> "123 456"; anything but six ASCII digits is returned unchanged. */
export function sasDisplay(s) {
  const str = String(s);
  return /^[0-9]{6}$/.test(str) ? str.slice(0, 3) + ' ' + str.slice(3) : str;
}

#!/usr/bin/env python3
"""Generates vectors.json, the shared test vectors of telenode signalling v1.

This script is an *independent* implementation of the crypto in
docs/PROTOCOL.md ("Sealed envelope", "Short authentication string", token
hashes), written against the Python `cryptography` package and `hashlib`, not
against the Rust code. The Rust crate (signaling/tests/vectors.rs) and the
browser (web/seal.js) are both checked against its output.

    pip install cryptography
    python3 signaling/tests/vectors/generate.py > signaling/tests/vectors/vectors.json

All inputs are deterministic (derived from SHA-256 of a fixed name), so
re-running the script reproduces the file byte for byte.
"""

import base64
import hashlib
import hmac
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEAL_SALT = b"telenode/v1/seal"
TOKEN_PREFIX = b"telenode/v1/token|"
SAS_PREFIX = "telenode/v1/sas|"


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def det(name: str, n: int) -> bytes:
    """n deterministic pseudo-random bytes named `name`."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"telenode vectors|{name}|{i}".encode()).digest()
        i += 1
    return out[:n]


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def label(consultation: str, direction: str, epoch: str) -> str:
    return f"telenode/v1|{consultation}|{direction}|{epoch}"


def nonce(seq: int) -> bytes:
    return b"\x00\x00\x00\x00" + seq.to_bytes(8, "big")


def seal(link_key: bytes, consultation: str, direction: str, epoch: str, seq: int, pt: bytes):
    lab = label(consultation, direction, epoch)
    key = hkdf(SEAL_SALT, link_key, lab.encode(), 32)
    ct = AESGCM(key).encrypt(nonce(seq), pt, lab.encode())
    return lab, key, ct


def open_(link_key: bytes, consultation: str, direction: str, env: dict) -> bytes:
    lab = label(consultation, direction, env["epoch"])
    key = hkdf(SEAL_SALT, link_key, lab.encode(), 32)
    return AESGCM(key).decrypt(nonce(env["seq"]), b64u_dec(env["ct"]), lab.encode())


# --- RFC 5869 appendix A, test cases 1-3 (HKDF-SHA256) -----------------------

RFC5869 = [
    {
        "name": "RFC 5869 A.1 (basic test case with SHA-256)",
        "ikm": "0b" * 22,
        "salt": "000102030405060708090a0b0c",
        "info": "f0f1f2f3f4f5f6f7f8f9",
        "length": 42,
        "prk": "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "okm": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        "34007208d5b887185865",
    },
    {
        "name": "RFC 5869 A.2 (test with SHA-256 and longer inputs/outputs)",
        "ikm": bytes(range(0x00, 0x50)).hex(),
        "salt": bytes(range(0x60, 0xB0)).hex(),
        "info": bytes(range(0xB0, 0x100)).hex(),
        "length": 82,
        "prk": "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "okm": "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    },
    {
        "name": "RFC 5869 A.3 (test with SHA-256 and zero-length salt/info)",
        "ikm": "0b" * 22,
        "salt": "",
        "info": "",
        "length": 42,
        "prk": "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "okm": "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
        "9d201395faa4b61a96c8",
    },
]

for tc in RFC5869:
    salt, ikm, info = (bytes.fromhex(tc[k]) for k in ("salt", "ikm", "info"))
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    assert prk.hex() == tc["prk"], tc["name"]
    assert hkdf(salt, ikm, info, tc["length"]).hex() == tc["okm"], tc["name"]

# --- seal vectors --------------------------------------------------------------

LINK_KEY = det("link key", 32)
CONSULTATION = b64u(det("consultation", 16))
EPOCH_D = b64u(det("epoch d2p", 16))
EPOCH_P = b64u(det("epoch p2d", 16))

SDP = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\na=fingerprint:sha-256 "
    + ":".join(f"{b:02X}" for b in det("doctor fp", 32))
    + "\r\na=setup:actpass\r\n"
)

seal_inputs = [
    ("knock, patient to doctor, seq 0", LINK_KEY, CONSULTATION, "p2d", EPOCH_P, 0,
     '{"kind":"hello","name":"Erika M."}'),
    ("offer, doctor to patient, seq 0", LINK_KEY, CONSULTATION, "d2p", EPOCH_D, 0,
     json.dumps({"kind": "offer", "sdp": SDP}, separators=(",", ":"))),
    ("candidate, doctor to patient, seq 1", LINK_KEY, CONSULTATION, "d2p", EPOCH_D, 1,
     '{"kind":"candidate","candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host",'
     '"sdpMid":"0","sdpMLineIndex":0}'),
    ("non-ASCII chat, patient to doctor, seq 2", LINK_KEY, CONSULTATION, "p2d", EPOCH_P, 2,
     '{"kind":"chat","text":"Grüße, Zoë — 診察 ✓"}'),
    ("empty plaintext, seq 258 (nonce bytes 0x01 0x02)", LINK_KEY, CONSULTATION, "d2p",
     EPOCH_D, 258, ""),
    ("other link key and consultation, all-zero epoch", det("other link key", 32),
     b64u(det("other consultation", 16)), "p2d", b64u(bytes(16)), 0,
     '{"kind":"bye","reason":"hangup"}'),
]

seal_vectors = []
for name, lk, cons, d, ep, seq, pt in seal_inputs:
    lab, key, ct = seal(lk, cons, d, ep, seq, pt.encode())
    env = {"epoch": ep, "seq": seq, "ct": b64u(ct)}
    assert open_(lk, cons, d, env) == pt.encode()
    seal_vectors.append({
        "name": name,
        "link_key": b64u(lk),
        "consultation": cons,
        "dir": d,
        "epoch": ep,
        "seq": seq,
        "plaintext": pt,
        "label": lab,
        "key": key.hex(),
        "nonce": nonce(seq).hex(),
        "ct": b64u(ct),
        "frame": json.dumps({"v": 1, "type": "sealed", **env}, separators=(",", ":")),
    })

# --- negative vectors: a fresh opener must reject ------------------------------

base = seal_vectors[1]  # offer, d2p, seq 0
base_ct = b64u_dec(base["ct"])


def flip(b: bytes, i: int) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1:]


_, _, ct_seq1 = seal(LINK_KEY, CONSULTATION, "d2p", EPOCH_D, 1, b'{"kind":"end_of_candidates"}')

negative = []


def neg(name, env, error, link_key=LINK_KEY, consultation=CONSULTATION, d="d2p"):
    if error == "integrity":
        try:
            open_(link_key, consultation, d, env)
        except Exception:
            pass
        else:
            raise AssertionError(f"{name} opens")
    negative.append({
        "name": name,
        "link_key": b64u(link_key),
        "consultation": consultation,
        "dir": d,
        "envelope": env,
        "error": error,
    })


ok_env = {"epoch": EPOCH_D, "seq": 0, "ct": base["ct"]}
neg("ciphertext byte flipped", {**ok_env, "ct": b64u(flip(base_ct, 0))}, "integrity")
neg("tag byte flipped", {**ok_env, "ct": b64u(flip(base_ct, len(base_ct) - 1))}, "integrity")
neg("ciphertext truncated by one byte", {**ok_env, "ct": b64u(base_ct[:-1])}, "integrity")
neg("reflected: d2p envelope opened as p2d", ok_env, "integrity", d="p2d")
neg("wrong consultation", ok_env, "integrity", consultation=b64u(det("consultation 2", 16)))
neg("wrong link key", ok_env, "integrity", link_key=det("wrong link key", 32))
neg("epoch swapped for another", {**ok_env, "epoch": EPOCH_P}, "integrity")
neg("seq 1 envelope relabelled as seq 0", {"epoch": EPOCH_D, "seq": 0, "ct": b64u(ct_seq1)},
    "integrity")
neg("new epoch not starting at seq 0", {"epoch": EPOCH_D, "seq": 1, "ct": b64u(ct_seq1)},
    "epoch_not_at_zero")
neg("epoch of 15 bytes", {**ok_env, "epoch": b64u(det("short epoch", 15))}, "malformed")
neg("epoch with padding", {**ok_env, "epoch": EPOCH_D + "=="}, "malformed")
neg("ct shorter than the tag", {**ok_env, "ct": b64u(base_ct[:15])}, "malformed")
neg("ct not base64url", {**ok_env, "ct": base["ct"][:-2] + "+/"}, "malformed")

# --- sequences: one opener, steps in order --------------------------------------

E1 = b64u(det("sequence epoch 1", 16))
E2 = b64u(det("sequence epoch 2", 16))
E3 = b64u(det("sequence epoch 3", 16))


def env_of(ep, seq, pt, d="d2p"):
    _, _, ct = seal(LINK_KEY, CONSULTATION, d, ep, seq, pt.encode())
    return {"epoch": ep, "seq": seq, "ct": b64u(ct)}


def chat(i):
    return json.dumps({"kind": "chat", "text": f"message {i}"}, separators=(",", ":"))


steps = []


def step(env, expect, pt=None):
    s = {**env, "expect": expect}
    if pt is not None:
        s["plaintext"] = pt
    steps.append(s)


e1 = [env_of(E1, i, chat(i)) for i in range(6)]
e2 = [env_of(E2, i, chat(100 + i)) for i in range(4)]
step(e1[0], "ok", chat(0))
step(e1[1], "ok", chat(1))
step(e1[1], "replay")                    # exact replay
step(e1[0], "replay")                    # older replay
step(e1[3], "out_of_order")              # gap (2 missing)
step(e1[2], "ok", chat(2))               # state was unchanged by the rejections
step({**e1[3], "ct": b64u(flip(b64u_dec(e1[3]["ct"]), 3))}, "integrity")
step(e1[3], "ok", chat(3))               # the genuine one still opens
step(env_of(E1, 4, chat(4), d="p2d"), "integrity")  # reflected direction
step(e2[0], "ok", chat(100))             # new epoch from seq 0
step(e1[4], "reused_epoch")              # the old epoch never comes back
step(e1[0], "reused_epoch")
step(e2[2], "out_of_order")              # reordered: 2 before 1
step(e2[1], "ok", chat(101))
step(e2[2], "ok", chat(102))
step(env_of(E3, 1, chat(200)), "epoch_not_at_zero")
step(env_of(E3, 0, chat(200)), "ok", chat(200))
step(e2[3], "reused_epoch")

sequences = [{
    "name": "replay, reorder, gap, tamper, reflection and epoch rules",
    "link_key": b64u(LINK_KEY),
    "consultation": CONSULTATION,
    "dir": "d2p",
    "steps": steps,
}]

# --- token hashes ----------------------------------------------------------------

token_vectors = []
for name, raw in [("all zero", bytes(32)), ("0x00..0x1f", bytes(range(32))),
                  ("deterministic", det("token", 32))]:
    token_vectors.append({
        "name": name,
        "token": b64u(raw),
        "token_hash": hashlib.sha256(TOKEN_PREFIX + raw).hexdigest(),
    })

# --- fingerprints and SAS --------------------------------------------------------


def fp_of(name):
    return "sha-256 " + ":".join(f"{b:02X}" for b in det(name, 32))


def sas(fd, fp):
    h = hashlib.sha256((SAS_PREFIX + fd + "|" + fp).encode()).digest()
    return f"{int.from_bytes(h[:4], 'big') % 1_000_000:06d}"


FD = "sha-256 " + ":".join(f"{b:02X}" for b in det("doctor fp", 32))
FP = fp_of("patient fp")
sas_vectors = [
    {"name": "doctor and patient", "doctor_fp": FD, "patient_fp": FP},
    {"name": "swapped order gives another code", "doctor_fp": FP, "patient_fp": FD},
]
# One whose code has a leading zero, found deterministically.
i = 0
while True:
    fp = fp_of(f"patient fp {i}")
    if sas(FD, fp).startswith("0"):
        sas_vectors.append({"name": f"leading zero (patient fp {i})",
                            "doctor_fp": FD, "patient_fp": fp})
        break
    i += 1
for v in sas_vectors:
    v["sas"] = sas(v["doctor_fp"], v["patient_fp"])
    v["display"] = v["sas"][:3] + " " + v["sas"][3:]

fp_lower = FD.split(" ")[1].lower()
fingerprint_vectors = [
    {"name": "media-level line in an offer", "sdp": SDP, "fingerprint": FD},
    {"name": "session level, mixed case, extra spaces, first line wins",
     "sdp": "v=0\r\na=fingerprint:SHA-256  " + fp_lower + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
            "a=fingerprint:sha-256 " + FP.split(" ")[1] + "\r\n",
     "fingerprint": FD},
    {"name": "LF line endings", "sdp": "v=0\na=fingerprint:sha-256 " + fp_lower + "\n",
     "fingerprint": FD},
    {"name": "no fingerprint", "sdp": "v=0\r\ns=-\r\n", "fingerprint": None},
    {"name": "malformed hex", "sdp": "a=fingerprint:sha-256 AB:CD:E\r\n", "fingerprint": None},
]

out = {
    "description": "telenode signalling v1 test vectors; see README.md in this directory",
    "format": 1,
    "hkdf_sha256": RFC5869,
    "seal": seal_vectors,
    "open_negative": negative,
    "open_sequences": sequences,
    "token_hash": token_vectors,
    "fingerprint": fingerprint_vectors,
    "sas": sas_vectors,
}
json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
sys.stdout.write("\n")

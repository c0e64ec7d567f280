//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1,
//! 6 digits, 30-second steps, the form every authenticator app reads from an
//! `otpauth://` URI. Pure: the time and the last accepted step come in.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Length of a secret in bytes (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now, for clocks a little off.
pub const SKEW_STEPS: u64 = 1;

/// The HOTP value of `secret` at `counter`, `digits` long (RFC 4226 5.3).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(digits)
}

/// The time step of `unix_secs`.
pub fn step(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// Checks a typed `code` at `unix_secs`: the step it matches (within
/// [`SKEW_STEPS`]) if that step is later than `last_step` (a code is good
/// once), `None` otherwise. Every candidate step is compared in constant
/// time.
pub fn verify(secret: &[u8], code: &str, unix_secs: u64, last_step: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step(unix_secs);
    let mut found = None;
    for s in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        let expected = code_of(secret, s);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && s > last_step {
            found = Some(s);
        }
    }
    found
}

/// The current code of `secret` (what an authenticator app shows).
pub fn code_at(secret: &[u8], unix_secs: u64) -> String {
    code_of(secret, step(unix_secs))
}

/// The code of `secret` at time step `step`, zero-padded.
fn code_of(secret: &[u8], step: u64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step, DIGITS),
        width = DIGITS as usize
    )
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (how authenticator apps take secrets).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 (case, spaces, hyphens and padding ignored).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in text.chars() {
        if c.is_whitespace() || c == '-' || c == '=' {
            continue;
        }
        let v = BASE32
            .iter()
            .position(|&a| char::from(a) == c.to_ascii_uppercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The `otpauth://` URI an authenticator app enrols from (Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        base32_encode(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d_hotp_values() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1_values() {
        // (time, 8-digit TOTP) for the SHA1 rows of RFC 6238's table.
        for (t, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(RFC_SECRET, step(t), 8), want, "t={t}");
        }
    }

    #[test]
    fn verify_accepts_one_step_of_skew_and_each_code_once() {
        let t = 1_700_000_000;
        let code = code_at(RFC_SECRET, t);
        let s = step(t);
        assert_eq!(verify(RFC_SECRET, &code, t, 0), Some(s));
        assert_eq!(
            verify(RFC_SECRET, &code, t + STEP_SECS, 0),
            Some(s),
            "30 s late"
        );
        assert_eq!(
            verify(RFC_SECRET, &code, t - STEP_SECS, 0),
            Some(s),
            "30 s early"
        );
        assert_eq!(
            verify(RFC_SECRET, &code, t + 2 * STEP_SECS, 0),
            None,
            "60 s late"
        );
        assert_eq!(verify(RFC_SECRET, &code, t, s), None, "replayed");
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(verify(RFC_SECRET, &spaced, t, 0), Some(s));
        for bad in ["", "12345", "1234567", "abcdef", "99999x"] {
            assert_eq!(verify(RFC_SECRET, bad, t, 0), None, "{bad:?}");
        }
        let wrong = format!(
            "{:06}",
            (code.parse::<u32>().expect("digits") + 1) % 1_000_000
        );
        assert_eq!(verify(RFC_SECRET, &wrong, t, 0), None);
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw6ytboi======"), Some(b"foobar".to_vec()));
        for n in 0..=SECRET_BYTES {
            let bytes: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base32_decode(&base32_encode(&bytes)), Some(bytes));
        }
        assert_eq!(base32_decode("MZ1W"), None, "1 is not base32");
    }

    #[test]
    fn otpauth_uri_escapes_and_carries_the_secret() {
        let uri = otpauth_uri("telenode clinic", "dr.o'neil", b"foobar");
        assert_eq!(
            uri,
            "otpauth://totp/telenode%20clinic:dr.o%27neil?secret=MZXW6YTBOI&issuer=telenode%20clinic&algorithm=SHA1&digits=6&period=30"
        );
    }
}

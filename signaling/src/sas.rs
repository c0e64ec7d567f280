//! The short authentication string (`PROTOCOL.md`, "Short authentication
//! string (SAS)").
//!
//! Both peers take the DTLS fingerprints from the SDP of the doctor (`fd`)
//! and of the patient (`fp`), normalised as `sha-256 AB:CD:…`, and compute
//!
//! ```text
//! h   = SHA-256("telenode/v1/sas|" + fd + "|" + fp)
//! sas = u32_be(h[0..4]) mod 1_000_000, six decimal digits
//! ```
//!
//! shown as `123 456` to be read aloud.

use sha2::{Digest, Sha256};

/// Domain-separation prefix of the SAS hash.
pub const SAS_PREFIX: &str = "telenode/v1/sas|";

/// The first `a=fingerprint:` line of `sdp` (session or media level),
/// normalised: algorithm in lower case, one space, hex bytes in upper case
/// separated by colons. `None` if there is no such line or the first one is
/// malformed (no algorithm, or a value that is not colon-separated hex bytes).
pub fn fingerprint_from_sdp(sdp: &str) -> Option<String> {
    let value = sdp
        .lines()
        .map(|l| l.trim_matches([' ', '\t', '\r']))
        .find_map(|l| l.strip_prefix("a=fingerprint:"))?;
    let mut parts = value.split([' ', '\t']).filter(|p| !p.is_empty());
    let algo = parts.next()?;
    let hex = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    if !algo
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return None;
    }
    let bytes: Vec<&str> = hex.split(':').collect();
    if !bytes
        .iter()
        .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(format!(
        "{} {}",
        algo.to_ascii_lowercase(),
        hex.to_ascii_uppercase()
    ))
}

/// The six-digit SAS of the doctor's and the patient's normalised
/// fingerprints (order matters: doctor first).
pub fn sas(doctor_fp: &str, patient_fp: &str) -> String {
    let mut h = Sha256::new();
    h.update(SAS_PREFIX.as_bytes());
    h.update(doctor_fp.as_bytes());
    h.update(b"|");
    h.update(patient_fp.as_bytes());
    let h = h.finalize();
    let n = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 1_000_000;
    format!("{n:06}")
}

/// Formats a six-digit SAS for display: `"123456"` → `"123 456"`. Any other
/// input is returned unchanged.
pub fn sas_display(sas: &str) -> String {
    if sas.len() == 6 && sas.bytes().all(|b| b.is_ascii_digit()) {
        format!("{} {}", &sas[..3], &sas[3..])
    } else {
        sas.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_normalised() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:SHA-256   ab:cd:0f \r\na=fingerprint:sha-1 00:11\r\n";
        assert_eq!(
            fingerprint_from_sdp(sdp).as_deref(),
            Some("sha-256 AB:CD:0F")
        );
        assert_eq!(fingerprint_from_sdp("v=0\r\n"), None);
        assert_eq!(fingerprint_from_sdp("a=fingerprint:sha-256"), None);
        assert_eq!(fingerprint_from_sdp("a=fingerprint:sha-256 AB:C"), None);
        assert_eq!(fingerprint_from_sdp("a=fingerprint:sha-256 AB:CD x"), None);
        assert_eq!(fingerprint_from_sdp("a=fingerprint:sha-256 AB::CD"), None);
        assert_eq!(fingerprint_from_sdp("a=fingerprint:sh a AB"), None);
    }

    #[test]
    fn sas_shape_and_order() {
        let a = sas("sha-256 AA", "sha-256 BB");
        assert_eq!(a.len(), 6);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_ne!(a, sas("sha-256 BB", "sha-256 AA"));
        assert_eq!(sas_display("012345"), "012 345");
        assert_eq!(sas_display("12345"), "12345");
    }
}

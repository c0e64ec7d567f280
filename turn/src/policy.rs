//! Which peer addresses the relay may send to: deny by default.
//!
//! A TURN relay that forwards to anything is an open proxy into the
//! operator's own network (the metadata service at 169.254.169.254, a
//! database on 10.0.0.5, the node's own admin port on 127.0.0.1). Every
//! peer address of CreatePermission, ChannelBind and Send is checked here;
//! a refused one gets `403 Forbidden`.
//!
//! Refused unless an operator allows the range ([`PeerPolicy::allow`]):
//! IPv4 `0.0.0.0/8` (incl. unspecified), `10/8`, `100.64/10` (CGNAT),
//! `127/8`, `169.254/16` (link-local, incl. 169.254.169.254), `172.16/12`,
//! `192.0.0.0/24` (IETF protocol assignments), `192.168/16`, `198.18/15`
//! (benchmarking), `224/4` (multicast), `240/4` (reserved, incl.
//! 255.255.255.255 broadcast); IPv6 `::/128`, `::1/128`, `fc00::/7` (ULA),
//! `fe80::/10` (link-local), `fec0::/10` (old site-local), `ff00::/8`
//! (multicast), `100::/64` (discard), `64:ff9b:1::/48` (local NAT64).
//!
//! IPv6 spellings of IPv4 addresses are judged by the IPv4 address they
//! carry: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`,
//! IPv4-translated `::ffff:0:a.b.c.d`, 6to4 `2002:AABB:CCDD::/48`, NAT64
//! well-known prefix `64:ff9b::a.b.c.d`, and Teredo `2001:0::/32` (its
//! server and obfuscated client address). So `::ffff:127.0.0.1`,
//! `::127.0.0.1`, `2002:7f00:1::` and `64:ff9b::a9fe:a9fe` are refused
//! like `127.0.0.1` and `169.254.169.254` (CVE-2020-26262 was such a
//! bypass in coturn).
//!
//! The node's own listening sockets (TURN, HTTPS) are refused even when
//! their range is allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// An IP network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CIDR (expected e.g. 127.0.0.0/8 or fd00::/8): {0:?}")]
pub struct BadCidr(pub String);

impl Cidr {
    /// `addr/prefix`; bits beyond the prefix are cleared. `None` if the
    /// prefix is too long for the family.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Some(Cidr { addr, prefix })
    }

    /// Whether `ip` is inside (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = BadCidr;

    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a host route).
    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_owned());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix = match p {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => {
                if addr.is_ipv4() {
                    32
                } else {
                    128
                }
            }
        };
        Cidr::new(addr, prefix).ok_or_else(bad)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> (u32, u8) {
    (u32::from_be_bytes([a, b, c, d]), prefix)
}

/// IPv4 ranges refused by default.
const DENY_V4: [(u32, u8); 12] = [
    v4(0, 0, 0, 0, 8),
    v4(10, 0, 0, 0, 8),
    v4(100, 64, 0, 0, 10),
    v4(127, 0, 0, 0, 8),
    v4(169, 254, 0, 0, 16),
    v4(172, 16, 0, 0, 12),
    v4(192, 0, 0, 0, 24),
    v4(192, 168, 0, 0, 16),
    v4(198, 18, 0, 0, 15),
    v4(224, 0, 0, 0, 4),
    v4(240, 0, 0, 0, 4),
    v4(255, 255, 255, 255, 32),
];

/// IPv6 ranges refused by default (besides IPv4 embeddings).
const DENY_V6: [(u128, u8); 8] = [
    (0, 128),                                           // ::
    (1, 128),                                           // ::1
    (0xfc00 << 112, 7),                                 // ULA
    (0xfe80 << 112, 10),                                // link-local
    (0xfec0 << 112, 10),                                // site-local
    (0xff00 << 112, 8),                                 // multicast
    (0x0100 << 112, 64),                                // discard-only
    ((0x0064 << 112) | (0xff9b << 96) | (1 << 80), 48), // local-use NAT64
];

fn in_v4(ip: Ipv4Addr, (net, prefix): (u32, u8)) -> bool {
    u32::from(ip) & mask32(prefix) == net
}

fn in_v6(ip: Ipv6Addr, (net, prefix): (u128, u8)) -> bool {
    u128::from(ip) & mask128(prefix) == net
}

/// The IPv4 addresses an IPv6 address carries, in every spelling the
/// relay knows (see the module docs). At most two (Teredo).
pub fn embedded_ipv4(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    let b = u128::from(ip);
    let low = Ipv4Addr::from((b & 0xFFFF_FFFF) as u32);
    let top96 = b >> 32;
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, incl. :: and ::1),
    // ::ffff:0:a.b.c.d (translated), 64:ff9b::a.b.c.d (NAT64 well-known).
    if top96 == 0xFFFF || top96 == 0 || top96 == 0xFFFF_0000 || top96 == 0x0064_ff9b << 64 {
        return [Some(low), None];
    }
    // 2002:AABB:CCDD::/16 (6to4).
    if b >> 112 == 0x2002 {
        return [Some(Ipv4Addr::from(((b >> 80) & 0xFFFF_FFFF) as u32)), None];
    }
    // 2001:0000:SSSS:SSSS:flags:port:CCCC:CCCC (Teredo; client obfuscated).
    if b >> 96 == 0x2001_0000 {
        let server = Ipv4Addr::from(((b >> 64) & 0xFFFF_FFFF) as u32);
        let client = Ipv4Addr::from(!((b & 0xFFFF_FFFF) as u32));
        return [Some(server), Some(client)];
    }
    [None, None]
}

/// Why a peer address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// In a range refused by default and not allowed by the operator.
    #[error("peer address in a denied range")]
    Range,
    /// One of the node's own listening sockets.
    #[error("peer address is the node itself")]
    OwnSocket,
}

/// The relay's peer-address policy.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allow: Vec<Cidr>,
    own: Vec<SocketAddr>,
}

impl PeerPolicy {
    /// Deny by default; `allow` lists operator-allowed ranges, `own` the
    /// node's listening sockets (an unspecified IP there stands for "this
    /// port on any address that is denied by default or allowed": the
    /// node's own addresses are among those).
    pub fn new(allow: Vec<Cidr>, own: Vec<SocketAddr>) -> Self {
        PeerPolicy { allow, own }
    }

    /// Allowed ranges.
    pub fn allow(&self) -> &[Cidr] {
        &self.allow
    }

    /// Whether the relay may send to `peer`.
    pub fn check(&self, peer: SocketAddr) -> Result<(), Denied> {
        let ip = peer.ip();
        let default_denied = denied_by_default(ip);
        let allowed = self.is_allowed(ip);
        for own in &self.own {
            if own.port() != peer.port() {
                continue;
            }
            let same_ip = own.ip().to_canonical() == ip.to_canonical();
            // A wildcard listener answers on every local address; local
            // addresses are the private/loopback ones or ones the operator
            // allowed (public ones cannot be told apart without the
            // interface list: those are rare ports on a public peer).
            if same_ip || (own.ip().is_unspecified() && (default_denied || allowed)) {
                return Err(Denied::OwnSocket);
            }
        }
        if default_denied && !allowed {
            return Err(Denied::Range);
        }
        Ok(())
    }

    fn is_allowed(&self, ip: IpAddr) -> bool {
        let c = ip.to_canonical();
        self.allow.iter().any(|n| n.contains(ip) || n.contains(c))
    }
}

/// Whether `ip` is in a range refused unless allowed, in any spelling.
pub fn denied_by_default(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => DENY_V4.iter().any(|&r| in_v4(a, r)),
        IpAddr::V6(a) => {
            DENY_V6.iter().any(|&r| in_v6(a, r))
                || embedded_ipv4(a)
                    .into_iter()
                    .flatten()
                    .any(|v| DENY_V4.iter().any(|&r| in_v4(v, r)))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn denied(ip: &str) -> bool {
        PeerPolicy::default()
            .check(SocketAddr::new(ip.parse().unwrap(), 5000))
            .is_err()
    }

    #[test]
    fn relay_to_denied_ipv4_ranges_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.168.0.1",
            "192.168.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(denied(ip), "{ip} must be denied");
        }
    }

    #[test]
    fn public_ipv4_allowed() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "203.0.113.5",
            "223.255.255.255",
        ] {
            assert!(!denied(ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn relay_to_denied_ipv6_ranges_refused() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf:ffff::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "64:ff9b:1::1",
        ] {
            assert!(denied(ip), "{ip} must be denied");
        }
        for ip in ["2001:4860:4860::8888", "2a00:1450::1", "2606:4700::1111"] {
            assert!(!denied(ip), "{ip} must be allowed");
        }
    }

    /// Every IPv6 spelling of a denied IPv4 address is denied too
    /// (CVE-2020-26262 class).
    #[test]
    fn relay_to_ipv6_spellings_of_denied_ipv4_refused() {
        for v4 in [
            "127.0.0.1",
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.168.1.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            let a: Ipv4Addr = v4.parse().unwrap();
            let o = a.octets();
            let x = u32::from(a);
            let spellings = [
                format!("::ffff:{v4}"),
                format!("::{v4}"),
                format!("::ffff:0:{v4}"),
                format!("64:ff9b::{v4}"),
                format!("2002:{:02x}{:02x}:{:02x}{:02x}::1", o[0], o[1], o[2], o[3]),
                // Teredo with the address as server, and as (obfuscated) client.
                format!("2001:0:{:x}:{:x}::1", x >> 16, x & 0xffff),
                format!("2001:0:0808:0808:0:0:{:x}:{:x}", (!x) >> 16, (!x) & 0xffff),
            ];
            for s in spellings {
                assert!(denied(&s), "{s} (= {v4}) must be denied");
            }
        }
        // Public IPv4 in the same spellings stays allowed.
        for s in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(!denied(s), "{s} must be allowed");
        }
    }

    #[test]
    fn operator_allow_list_overrides_denied_range() {
        let p = PeerPolicy::new(vec!["127.0.0.0/8".parse().unwrap()], vec![]);
        assert_eq!(p.check(sa("127.0.0.1:5000")), Ok(()));
        // The mapped spelling of an allowed address is allowed too.
        assert_eq!(p.check(sa("[::ffff:127.0.0.1]:5000")), Ok(()));
        assert_eq!(p.check(sa("10.0.0.1:5000")), Err(Denied::Range));
        assert_eq!(p.check(sa("[::1]:5000")), Err(Denied::Range));
        let p = PeerPolicy::new(vec!["fd00::/8".parse().unwrap()], vec![]);
        assert_eq!(p.check(sa("[fd00::5]:1")), Ok(()));
        assert_eq!(p.check(sa("[fe80::5]:1")), Err(Denied::Range));
    }

    #[test]
    fn relay_to_node_own_sockets_refused() {
        let own = vec![sa("127.0.0.1:3478"), sa("0.0.0.0:8080")];
        let p = PeerPolicy::new(vec!["127.0.0.0/8".parse().unwrap()], own);
        assert_eq!(p.check(sa("127.0.0.1:3478")), Err(Denied::OwnSocket));
        assert_eq!(
            p.check(sa("[::ffff:127.0.0.1]:3478")),
            Err(Denied::OwnSocket)
        );
        assert_eq!(p.check(sa("127.0.0.1:8080")), Err(Denied::OwnSocket));
        assert_eq!(p.check(sa("127.0.0.2:8080")), Err(Denied::OwnSocket));
        assert_eq!(p.check(sa("127.0.0.1:3479")), Ok(()));
        assert_eq!(p.check(sa("8.8.8.8:3478")), Ok(()));
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "x/8",
            "10.0.0.0/+8",
            "1/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));
    }
}

//! The relay never sees plaintext, and keeps nothing.
//!
//! A real call between two native agents through the node's embedded TURN
//! relay (`force_relay` on both sides, so each peer sends through its own
//! allocation and the two relay sockets talk to each other) runs while
//! `tcpdump` records every UDP datagram on `lo`. The capture is parsed here
//! (classic pcap, Ethernet, IPv4, UDP) and restricted to this node: the TURN
//! address, and the relay addresses the node announced in its Allocate success
//! responses (XOR-RELAYED-ADDRESS). Every payload the relay forwards (the
//! DATA of Send/Data indications and ChannelData on the TURN port, and the
//! raw datagrams of the relay sockets) is classified by its first byte
//! (RFC 7983) and must be one of:
//!
//! - STUN (the peers' ICE checks), well formed;
//! - DTLS records that chain to the end of the datagram; the negotiated
//!   SRTP profile is read from the ServerHello's `use_srtp` extension;
//! - SRTP: no clear VP8 keyframe header (RFC 7741 payload descriptor
//!   followed by the start code `9d 01 2a`), and per stream (and over all
//!   streams) the first payload byte is spread like random bytes (a clear
//!   stream repeats its Opus TOC byte or VP8 descriptor byte in most
//!   packets);
//! - SRTCP: the RTCP length fields do *not* chain to the datagram's end (a
//!   clear compound packet does), the E flag is set in the SRTCP index where
//!   the negotiated profile puts it, a one-packet compound leaves exactly the
//!   profile's trailer (index and tag), and the index grows per stream.
//!
//! Anything else fails the test. The second test is the positive control:
//! the same analysis, on a capture built from clear RTP (a real VP8 keyframe
//! and Opus frames, packetised by `webrtc`'s own payloaders) and clear RTCP
//! carried the same three ways, reports each of those faults.
//!
//! Nothing written to disk: the node's data directory is listed before the
//! call (its WAL checkpointed into the database file, so the WAL starts
//! empty), after hang-up (the WAL holds what the call wrote) and after the
//! node stopped (which checkpoints again). What the call wrote, and what the
//! directory grew by, must stay under 5% of what the relay forwarded (the
//! call's metadata); no file may appear but SQLite's own sidecars; and
//! neither listing may contain any of 64 16-byte windows of forwarded SRTP
//! payloads.
//!
//! Limits, honestly:
//! - SRTP authentication tags cannot be checked without the keys, which
//!   only the peers hold. "Protected" means the structure above; the control
//!   shows that a clear stream does not pass it.
//! - Only UDP is captured: `webrtc` 0.21 skips `?transport=tcp` TURN URLs,
//!   so the call cannot use TURN over TCP.
//! - Only the node's data directory is watched. The relay has no file path
//!   of its own; writes elsewhere (say, under /tmp) would not be seen.
//!
//! Needs `tcpdump` (Debian package `tcpdump`) and root for the capture;
//! without the tool the test fails with a message saying how to install it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Node, metric, patient_options, wait_end, wait_for};
use telenode::client::{AgentEvent, CallAgent, EndCause, parse_link};
use telenode::peer::MediaStats;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

/// Bytes the relay must have forwarded (its own counter) before hang-up.
const MIN_RELAYED_BYTES: f64 = 2_000_000.0;
/// Distinct RTP packets the capture must hold.
const MIN_RTP_PACKETS: usize = 500;
/// Streams with at least this many distinct packets get the skew check.
const MIN_SKEW_PACKETS: usize = 64;
/// Largest share of one first-payload byte in a protected stream. Random
/// bytes give about 1/256; with 64 packets, more than 1/8 (9 or more alike)
/// happens by chance with a probability near 1e-9, and the streams of the
/// call have hundreds. A clear Opus stream repeats its TOC byte in nearly
/// every packet, a clear VP8 stream its descriptor byte.
const MAX_FIRST_BYTE_SHARE: f64 = 0.125;
/// Windows of SRTP payload looked for in the data directory.
const SAMPLES: usize = 64;
const SAMPLE_LEN: usize = 16;

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "{tool} not found: install it (`apt-get install -y tcpdump`; scripts/test-all installs it)"
    );
}

// ---------------------------------------------------------------------------
// Capture

/// `tcpdump` writing every UDP datagram on `lo` to a file; killed when
/// dropped (also on panic).
struct Capture {
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
}

impl Capture {
    /// Starts `tcpdump` and waits until it is listening.
    async fn start(file: &Path) -> Capture {
        require("tcpdump");
        let mut child = Command::new("tcpdump")
            // -U: write each packet as it comes; -B: a 16 MiB kernel buffer
            // so nothing is dropped; -Z root: keep the rights to write the
            // file (Debian's tcpdump otherwise switches to user `tcpdump`).
            .args(["-i", "lo", "-n", "-U", "-B", "16384", "-Z", "root", "-w"])
            .arg(file)
            .arg("udp")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting tcpdump");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let listening = tokio::time::timeout(Duration::from_secs(10), async {
            let mut line = String::new();
            loop {
                line.clear();
                if stderr.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return false;
                }
                seen.push_str(&line);
                if line.contains("listening on lo") {
                    return true;
                }
            }
        })
        .await;
        assert!(
            listening == Ok(true),
            "tcpdump did not start listening (tests must run as root):\n{seen}"
        );
        let stderr = tokio::spawn(rest(stderr));
        Capture { child, stderr }
    }

    /// Stops `tcpdump` with SIGTERM (it flushes and prints its counters);
    /// returns what it printed.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("tcpdump runs");
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("tcpdump exits on SIGTERM")
            .unwrap();
        let text = (&mut self.stderr).await.unwrap();
        assert!(status.success(), "tcpdump: {status}\n{text}");
        text
    }
}

async fn rest(mut stderr: BufReader<ChildStderr>) -> String {
    let mut text = String::new();
    let _ = stderr.read_to_string(&mut text).await;
    text
}

// ---------------------------------------------------------------------------
// pcap

/// One UDP datagram (IPv4) of the capture.
#[derive(Debug, Clone)]
struct Datagram {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct Pcap {
    datagrams: Vec<Datagram>,
    /// Frames that are not IPv4 UDP (IPv6 on `lo`, say).
    other: usize,
    /// IPv4 fragments: they could not be classified.
    fragments: usize,
    /// Records shorter than the packet on the wire.
    truncated: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The pcap link type of Ethernet; Linux's `lo` shows up as Ethernet with
/// zeroed addresses.
const LINKTYPE_ETHERNET: u32 = 1;

/// Reads a classic pcap file (either byte order, micro- or nanosecond
/// timestamps) of Ethernet frames.
fn read_pcap(file: &[u8]) -> Result<Pcap, String> {
    let little = match file.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d]) => false,
        _ => return Err(format!("not a pcap file ({} bytes)", file.len())),
    };
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = file.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    // The top bits of the link type field may carry FCS information.
    let linktype = word(20).ok_or("short global header")? & 0x03FF_FFFF;
    if linktype != LINKTYPE_ETHERNET {
        return Err(format!("link type {linktype}, expected Ethernet (1)"));
    }
    let mut pcap = Pcap::default();
    let mut at = 24;
    while let (Some(incl), Some(orig)) = (word(at + 8), word(at + 12)) {
        let start = at + 16;
        let Some(frame) = file.get(start..start + incl as usize) else {
            return Err(format!("record at {at} cut short"));
        };
        at = start + incl as usize;
        if incl != orig {
            pcap.truncated += 1;
            continue;
        }
        match udp_of(frame) {
            Frame::Udp(d) => pcap.datagrams.push(d),
            Frame::Fragment => pcap.fragments += 1,
            Frame::Other => pcap.other += 1,
        }
    }
    Ok(pcap)
}

enum Frame {
    Udp(Datagram),
    Fragment,
    Other,
}

fn udp_of(frame: &[u8]) -> Frame {
    const ETHERTYPE_IPV4: u16 = 0x0800;
    const UDP: u8 = 17;
    if be16(frame, 12) != Some(ETHERTYPE_IPV4) {
        return Frame::Other;
    }
    let ip = &frame[14..];
    let (Some(&vihl), Some(total), Some(frag), Some(&proto)) =
        (ip.first(), be16(ip, 2), be16(ip, 6), ip.get(9))
    else {
        return Frame::Other;
    };
    if vihl >> 4 != 4 || proto != UDP {
        return Frame::Other;
    }
    // More-fragments flag or a fragment offset.
    if frag & 0x3FFF != 0 {
        return Frame::Fragment;
    }
    let ihl = usize::from(vihl & 0x0F) * 4;
    let addr = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let Some(udp) = ip.get(ihl..usize::from(total)) else {
        return Frame::Other;
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), Some(len)) =
        (addr(12), addr(16), be16(udp, 0), be16(udp, 2), be16(udp, 4))
    else {
        return Frame::Other;
    };
    let Some(payload) = udp.get(8..usize::from(len)) else {
        return Frame::Other;
    };
    Frame::Udp(Datagram {
        src: SocketAddrV4::new(src, sport),
        dst: SocketAddrV4::new(dst, dport),
        payload: payload.to_vec(),
    })
}

// ---------------------------------------------------------------------------
// Analysis

/// STUN magic cookie (RFC 5389 §6).
const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Allocate success response (RFC 8656 §7.3): method 0x003, class success.
const ALLOCATE_SUCCESS: u16 = 0x0103;
/// Send indication (RFC 8656 §10.1): method 0x006, class indication.
const SEND_INDICATION: u16 = 0x0016;
/// Data indication (RFC 8656 §10.3): method 0x007, class indication.
const DATA_INDICATION: u16 = 0x0017;
/// DATA attribute (RFC 8656 §18.4).
const ATTR_DATA: u16 = 0x0013;
/// XOR-RELAYED-ADDRESS attribute (RFC 8656 §18.5).
const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
/// `use_srtp` TLS extension (RFC 5764 §4.1.1).
const EXT_USE_SRTP: u16 = 0x000E;

/// What went wrong; the positive control checks each kind is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// A datagram on the TURN port that is neither STUN nor ChannelData, or
    /// a Send/Data indication without DATA.
    TurnFraming,
    /// A forwarded payload that is none of STUN, DTLS, RTP, RTCP.
    Unclassified,
    BadStun,
    BadDtls,
    BadRtp,
    /// A VP8 keyframe header readable in an RTP payload.
    ClearVp8Keyframe,
    /// A stream whose first payload byte repeats like a clear stream's.
    FirstByteSkew,
    /// RTCP length fields chain exactly to the datagram's end.
    ClearRtcp,
    /// SRTCP without the E flag or trailer where the profile puts them.
    SrtcpLayout,
    /// SRTCP index not growing within one stream.
    SrtcpIndex,
    /// RTCP seen but no (or more than one) SRTP profile negotiated.
    NoSrtpProfile,
}

#[derive(Debug)]
struct Finding {
    fault: Fault,
    detail: String,
}

/// Which hop of the relay a datagram was captured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Hop {
    /// Client to the TURN port (Send indication, ChannelData).
    ToTurn,
    /// TURN port to client (Data indication, ChannelData).
    FromTurn,
    /// Between two relay sockets of this node (raw payload).
    RelayToRelay,
    /// A relay socket and anything else (raw payload).
    RelayOther,
}

/// A hop with its ports: streams are told apart per leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Leg {
    hop: Hop,
    src: u16,
    dst: u16,
}

/// First-payload-byte histogram of one RTP stream, over distinct packets.
#[derive(Debug)]
struct Stream {
    pt: u8,
    seqs: HashSet<u16>,
    first_byte: [usize; 256],
}

impl Stream {
    fn new(pt: u8) -> Self {
        Self {
            pt,
            seqs: HashSet::new(),
            first_byte: [0; 256],
        }
    }

    fn packets(&self) -> usize {
        self.seqs.len()
    }

    /// The share of the most common first payload byte.
    fn max_share(&self) -> f64 {
        let max = self.first_byte.iter().max().copied().unwrap_or(0);
        max as f64 / self.packets().max(1) as f64
    }
}

#[derive(Debug, Default)]
struct Analysis {
    turn: Option<SocketAddrV4>,
    relays: BTreeSet<SocketAddrV4>,
    /// Datagrams of this node per hop.
    hops: BTreeMap<Hop, usize>,
    /// TURN requests and responses (no forwarded data).
    turn_control: usize,
    channel_data: usize,
    send_indications: usize,
    data_indications: usize,
    /// Forwarded payloads by class (every hop counted).
    stun: usize,
    dtls_datagrams: usize,
    dtls_records: usize,
    /// DTLS records of epoch 1 or later (encrypted).
    dtls_encrypted: usize,
    rtp: usize,
    rtcp: usize,
    /// SRTCP packets whose trailer length was checked exactly.
    srtcp_exact: usize,
    /// `use_srtp` profiles chosen in ServerHellos.
    profiles: BTreeSet<u16>,
    streams: BTreeMap<u32, Stream>,
    rtcp_seen: Vec<(Leg, Vec<u8>)>,
    /// Windows of SRTP payload, for the data directory scan.
    samples: Vec<[u8; SAMPLE_LEN]>,
    findings: Vec<Finding>,
}

impl Analysis {
    /// Analyses what the relay listening on `turn` forwarded in `pcap`.
    fn run(pcap: &Pcap, turn: SocketAddrV4) -> Analysis {
        let mut a = Analysis {
            turn: Some(turn),
            ..Analysis::default()
        };
        // The relay addresses this node announced.
        for d in pcap.datagrams.iter().filter(|d| d.src == turn) {
            if let Some(relay) = relayed_address(&d.payload) {
                a.relays.insert(relay);
            }
        }
        for d in &pcap.datagrams {
            let (from_relay, to_relay) = (a.relays.contains(&d.src), a.relays.contains(&d.dst));
            let hop = if d.dst == turn {
                Hop::ToTurn
            } else if d.src == turn {
                Hop::FromTurn
            } else if from_relay && to_relay {
                Hop::RelayToRelay
            } else if from_relay || to_relay {
                Hop::RelayOther
            } else {
                continue;
            };
            *a.hops.entry(hop).or_default() += 1;
            let leg = Leg {
                hop,
                src: d.src.port(),
                dst: d.dst.port(),
            };
            match hop {
                Hop::ToTurn | Hop::FromTurn => a.turn_framed(leg, &d.payload),
                Hop::RelayToRelay | Hop::RelayOther => a.classify(leg, &d.payload),
            }
        }
        a.finish();
        a
    }

    fn fault(&mut self, fault: Fault, leg: Option<Leg>, what: &str, bytes: &[u8]) {
        let head: String = bytes.iter().take(24).map(|b| format!("{b:02x}")).collect();
        self.findings.push(Finding {
            fault,
            detail: format!("{what} on {leg:?}, {} bytes: {head}", bytes.len()),
        });
    }

    /// A datagram to or from the TURN port: STUN or ChannelData
    /// (RFC 8656 §12.4).
    fn turn_framed(&mut self, leg: Leg, p: &[u8]) {
        match p.first() {
            Some(0x40..=0x7F) => {
                let len = usize::from(be16(p, 2).unwrap_or(u16::MAX));
                match p.get(4..4 + len) {
                    Some(inner) => {
                        self.channel_data += 1;
                        self.classify(leg, inner);
                    }
                    None => self.fault(Fault::TurnFraming, Some(leg), "ChannelData length", p),
                }
            }
            Some(0x00..=0x3F) => {
                if !stun_ok(p) {
                    return self.fault(Fault::TurnFraming, Some(leg), "STUN framing", p);
                }
                let kind = be16(p, 0).unwrap_or(0);
                if kind != SEND_INDICATION && kind != DATA_INDICATION {
                    self.turn_control += 1;
                    return;
                }
                match stun_attr(p, ATTR_DATA) {
                    Some(inner) => {
                        if kind == SEND_INDICATION {
                            self.send_indications += 1;
                        } else {
                            self.data_indications += 1;
                        }
                        self.classify(leg, inner);
                    }
                    None => self.fault(Fault::TurnFraming, Some(leg), "indication w/o DATA", p),
                }
            }
            _ => self.fault(
                Fault::TurnFraming,
                Some(leg),
                "neither STUN nor ChannelData",
                p,
            ),
        }
    }

    /// One forwarded payload, by its first byte (RFC 7983 §7).
    fn classify(&mut self, leg: Leg, p: &[u8]) {
        match p.first() {
            Some(0..=3) => {
                if stun_ok(p) {
                    self.stun += 1;
                } else {
                    self.fault(Fault::BadStun, Some(leg), "STUN", p);
                }
            }
            Some(20..=63) => self.dtls(leg, p),
            // RTCP packet types 192..=223 (RFC 5761 §4).
            Some(128..=191) if matches!(p.get(1), Some(192..=223)) => {
                self.rtcp += 1;
                self.rtcp_seen.push((leg, p.to_vec()));
            }
            Some(128..=191) => self.rtp(leg, p),
            _ => self.fault(Fault::Unclassified, Some(leg), "unknown payload", p),
        }
    }

    /// DTLS 1.2 records (RFC 6347 §4.1) that fill the datagram exactly.
    fn dtls(&mut self, leg: Leg, p: &[u8]) {
        self.dtls_datagrams += 1;
        let mut at = 0;
        while at < p.len() {
            let rec = &p[at..];
            let (Some(&ctype), Some(version), Some(epoch), Some(len)) =
                (rec.first(), be16(rec, 1), be16(rec, 3), be16(rec, 11))
            else {
                return self.fault(Fault::BadDtls, Some(leg), "short record header", p);
            };
            let Some(body) = rec.get(13..13 + usize::from(len)) else {
                return self.fault(Fault::BadDtls, Some(leg), "record overruns datagram", p);
            };
            // change_cipher_spec, alert, handshake, application_data.
            if !(20..=23).contains(&ctype) || !matches!(version, 0xFEFF | 0xFEFD) {
                return self.fault(Fault::BadDtls, Some(leg), "record type or version", p);
            }
            if ctype == 23 && epoch == 0 {
                return self.fault(Fault::BadDtls, Some(leg), "application data in clear", p);
            }
            if epoch > 0 {
                self.dtls_encrypted += 1;
            } else if ctype == 22
                && let Some(profile) = server_hello_srtp_profile(body)
            {
                self.profiles.insert(profile);
            }
            self.dtls_records += 1;
            at += 13 + usize::from(len);
        }
    }

    /// An RTP packet (RFC 3550 §5.1): header in clear, payload must not be.
    fn rtp(&mut self, leg: Leg, p: &[u8]) {
        self.rtp += 1;
        let Some(start) = rtp_payload_start(p) else {
            return self.fault(Fault::BadRtp, Some(leg), "RTP header overruns", p);
        };
        let payload = &p[start..];
        // SRTP always appends an authentication tag of 10 or 16 bytes.
        if payload.len() < 10 {
            return self.fault(Fault::BadRtp, Some(leg), "no room for an auth tag", p);
        }
        if clear_vp8_keyframe(payload) {
            self.fault(Fault::ClearVp8Keyframe, Some(leg), "VP8 keyframe header", p);
        }
        let (pt, seq, ssrc) = (p[1] & 0x7F, be16(p, 2).unwrap(), be32(p, 8).unwrap());
        let stream = self.streams.entry(ssrc).or_insert_with(|| Stream::new(pt));
        // The same packet is seen on up to three hops; count it once.
        if stream.seqs.insert(seq) {
            stream.first_byte[usize::from(payload[0])] += 1;
            let n = self.streams.values().map(Stream::packets).sum::<usize>();
            if payload.len() >= SAMPLE_LEN && self.samples.len() < SAMPLES && n % 7 == 0 {
                self.samples.push(payload[..SAMPLE_LEN].try_into().unwrap());
            }
        }
    }

    /// Checks that need the whole capture: SRTCP against the negotiated
    /// profile, and the first-byte spread of each stream.
    fn finish(&mut self) {
        let rtcp = std::mem::take(&mut self.rtcp_seen);
        let profile = match (self.profiles.len(), self.profiles.first()) {
            (1, Some(&p)) => srtcp_trailer(p),
            _ => None,
        };
        if !rtcp.is_empty() && profile.is_none() {
            let what = format!("RTCP, SRTP profiles negotiated: {:04x?}", self.profiles);
            self.fault(Fault::NoSrtpProfile, None, &what, &[]);
        }
        let mut last_index: HashMap<(Leg, u32), u32> = HashMap::new();
        for (leg, p) in &rtcp {
            if rtcp_chains(p) {
                self.fault(Fault::ClearRtcp, Some(*leg), "RTCP compound in clear", p);
                continue;
            }
            let Some((trailer, index_at)) = profile else {
                continue;
            };
            let first = (usize::from(be16(p, 2).unwrap_or(0)) + 1) * 4;
            let Some(word) = be32(p, p.len().saturating_sub(index_at)) else {
                self.fault(Fault::SrtcpLayout, Some(*leg), "too short", p);
                continue;
            };
            if word & 0x8000_0000 == 0 || first + trailer > p.len() || p.len() < 8 + trailer {
                self.fault(Fault::SrtcpLayout, Some(*leg), "E flag or trailer", p);
                continue;
            }
            if first + trailer == p.len() {
                self.srtcp_exact += 1;
            }
            let ssrc = be32(p, 4).unwrap();
            let index = word & 0x7FFF_FFFF;
            if let Some(prev) = last_index.insert((*leg, ssrc), index)
                && index <= prev
            {
                self.fault(
                    Fault::SrtcpIndex,
                    Some(*leg),
                    &format!("{prev} -> {index}"),
                    p,
                );
            }
        }
        let mut pooled = [0usize; 256];
        let mut skewed = Vec::new();
        for (ssrc, s) in &self.streams {
            for (total, n) in pooled.iter_mut().zip(s.first_byte) {
                *total += n;
            }
            if s.packets() >= MIN_SKEW_PACKETS && s.max_share() > MAX_FIRST_BYTE_SHARE {
                skewed.push(format!(
                    "stream {ssrc:08x} (PT {}): {} packets, top first byte {:.0}%",
                    s.pt,
                    s.packets(),
                    100.0 * s.max_share()
                ));
            }
        }
        let pooled_packets: usize = pooled.iter().sum();
        let pooled_share =
            pooled.iter().max().copied().unwrap_or(0) as f64 / pooled_packets.max(1) as f64;
        if pooled_packets >= MIN_SKEW_PACKETS && pooled_share > MAX_FIRST_BYTE_SHARE {
            skewed.push(format!(
                "all streams: {pooled_packets} packets, top first byte {:.0}%",
                100.0 * pooled_share
            ));
        }
        for what in skewed {
            self.fault(Fault::FirstByteSkew, None, &what, &[]);
        }
    }

    fn faults(&self) -> BTreeSet<Fault> {
        self.findings.iter().map(|f| f.fault).collect()
    }

    /// Distinct RTP packets over all streams.
    fn rtp_packets(&self) -> usize {
        self.streams.values().map(Stream::packets).sum()
    }

    fn report(&self) -> String {
        let streams: Vec<String> = self
            .streams
            .iter()
            .map(|(ssrc, s)| {
                format!(
                    "{ssrc:08x} PT {} {} pkts top byte {:.1}%",
                    s.pt,
                    s.packets(),
                    100.0 * s.max_share()
                )
            })
            .collect();
        format!(
            "TURN {:?}, relays {:?}\n\
             datagrams per hop {:?}\n\
             TURN control {}, ChannelData {}, Send ind. {}, Data ind. {}\n\
             forwarded (all hops): STUN {}, DTLS {} datagrams / {} records ({} encrypted), \
             RTP {} ({} distinct), RTCP {} ({} with exact SRTCP trailer)\n\
             SRTP profiles {:04x?}\nstreams: {streams:#?}",
            self.turn,
            self.relays,
            self.hops,
            self.turn_control,
            self.channel_data,
            self.send_indications,
            self.data_indications,
            self.stun,
            self.dtls_datagrams,
            self.dtls_records,
            self.dtls_encrypted,
            self.rtp,
            self.rtp_packets(),
            self.rtcp,
            self.srtcp_exact,
            self.profiles,
        )
    }

    fn findings_text(&self) -> String {
        let mut out = String::new();
        for f in self.findings.iter().take(20) {
            out.push_str(&format!("{:?}: {}\n", f.fault, f.detail));
        }
        if self.findings.len() > 20 {
            out.push_str(&format!("... {} findings in all\n", self.findings.len()));
        }
        out
    }
}

/// A STUN message (RFC 5389 §6): cookie, and a length that fills the
/// datagram.
fn stun_ok(p: &[u8]) -> bool {
    p.first().is_some_and(|b| b & 0xC0 == 0)
        && be32(p, 4) == Some(MAGIC_COOKIE)
        && be16(p, 2).is_some_and(|len| usize::from(len) + 20 == p.len())
}

/// The value of the first attribute `kind` of a STUN message.
fn stun_attr(p: &[u8], kind: u16) -> Option<&[u8]> {
    let mut at = 20;
    while let (Some(t), Some(len)) = (be16(p, at), be16(p, at + 2)) {
        let value = p.get(at + 4..at + 4 + usize::from(len))?;
        if t == kind {
            return Some(value);
        }
        at += 4 + usize::from(len).next_multiple_of(4);
    }
    None
}

/// The relayed transport address (IPv4) of an Allocate success response.
fn relayed_address(p: &[u8]) -> Option<SocketAddrV4> {
    const IPV4: u8 = 0x01;
    if !stun_ok(p) || be16(p, 0)? != ALLOCATE_SUCCESS {
        return None;
    }
    let value = stun_attr(p, ATTR_XOR_RELAYED_ADDRESS)?;
    if *value.get(1)? != IPV4 {
        return None;
    }
    let port = be16(value, 2)? ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = Ipv4Addr::from(be32(value, 4)? ^ MAGIC_COOKIE);
    Some(SocketAddrV4::new(ip, port))
}

/// The `use_srtp` profile a DTLS ServerHello (epoch 0, one fragment)
/// selected (RFC 5764 §4.1.1).
fn server_hello_srtp_profile(record: &[u8]) -> Option<u16> {
    const SERVER_HELLO: u8 = 2;
    // Handshake header: type, length (3), message_seq (2), fragment
    // offset (3), fragment length (3).
    if *record.first()? != SERVER_HELLO || record.get(6..9)? != [0, 0, 0] {
        return None;
    }
    let body = record.get(12..)?;
    // server_version (2), random (32), session_id.
    let mut at = 34;
    at += 1 + usize::from(*body.get(at)?);
    // cipher_suite (2), compression_method (1), extensions length (2).
    at += 3;
    let end = at + 2 + usize::from(be16(body, at)?);
    at += 2;
    while at + 4 <= end {
        let (kind, len) = (be16(body, at)?, usize::from(be16(body, at + 2)?));
        if kind == EXT_USE_SRTP {
            // profile list length (2), the one selected profile (2).
            return be16(body, at + 6);
        }
        at += 4 + len;
    }
    None
}

/// SRTCP trailer of an SRTP profile: (bytes after the RTCP compound, offset
/// of the E flag and index word from the end).
fn srtcp_trailer(profile: u16) -> Option<(usize, usize)> {
    match profile {
        // SRTP_AES128_CM_HMAC_SHA1_80 (RFC 3711 §3.4): index, 10-byte tag.
        0x0001 => Some((4 + 10, 14)),
        // SRTP_AES128_CM_HMAC_SHA1_32: index, 4-byte tag.
        0x0002 => Some((4 + 4, 8)),
        // SRTP_AEAD_AES_128_GCM / _256_GCM (RFC 7714 §9.2): 16-byte tag,
        // then the index.
        0x0007 | 0x0008 => Some((16 + 4, 4)),
        _ => None,
    }
}

/// Whether `p` is a clear RTCP compound packet: version 2 and an RTCP
/// packet type in every header, lengths chaining to exactly its end.
fn rtcp_chains(p: &[u8]) -> bool {
    let mut at = 0;
    while at < p.len() {
        let (Some(&b0), Some(&pt), Some(len)) = (p.get(at), p.get(at + 1), be16(p, at + 2)) else {
            return false;
        };
        if b0 >> 6 != 2 || !(192..=223).contains(&pt) {
            return false;
        }
        at += (usize::from(len) + 1) * 4;
    }
    at == p.len()
}

/// Where an RTP packet's payload starts: after the CSRCs and the header
/// extension.
fn rtp_payload_start(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let mut at = 12 + 4 * usize::from(b0 & 0x0F);
    if b0 & 0x10 != 0 {
        at += 4 + 4 * usize::from(be16(p, at + 2)?);
    }
    (at < p.len()).then_some(at)
}

/// Whether an RTP payload reads as the first packet of a clear VP8
/// keyframe: a payload descriptor (RFC 7741 §4.2) with S=1 and PID=0, a
/// payload header with P=0 (§4.3), and the keyframe start code
/// `9d 01 2a` (RFC 6386 §9.1).
fn clear_vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    if b0 & 0x10 == 0 || b0 & 0x07 != 0 {
        return false;
    }
    let mut at = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        at = 2;
        if x & 0x80 != 0 {
            // PictureID, 7 or 15 bits (M).
            at += if payload.get(2).is_some_and(|m| m & 0x80 != 0) {
                2
            } else {
                1
            };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    payload.get(at).is_some_and(|h| h & 0x01 == 0)
        && payload.get(at + 3..at + 6) == Some(&[0x9d, 0x01, 0x2a][..])
}

// ---------------------------------------------------------------------------
// Data directory

/// Every file under `dir` with its size, by path relative to `dir`.
fn files(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, meta.len());
            }
        }
    }
    out
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files(dir)
        .into_keys()
        .map(|p| {
            let bytes = std::fs::read(dir.join(&p)).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Moves the node's WAL into its database file (`wal_checkpoint(TRUNCATE)`
/// through a connection of our own, closed at once), so that the sizes
/// before the call count what was written and the node's close, which
/// checkpoints too, does not hide writes made during the call.
fn checkpoint(data_dir: &Path) {
    let conn = rusqlite::Connection::open(telenode::store::db_path(data_dir)).unwrap();
    for _ in 0..50 {
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        if busy == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the node's WAL could not be checkpointed");
}

/// Bytes of data in a listing: SQLite's shared-memory index (`-shm`) holds
/// no data and goes away when the node closes, so it is left out.
fn data_bytes(files: &BTreeMap<PathBuf, u64>) -> u64 {
    files
        .iter()
        .filter(|(p, _)| !p.to_string_lossy().ends_with("-shm"))
        .map(|(_, n)| n)
        .sum()
}

/// SQLite's own files beside a database that existed before.
fn is_sqlite_sidecar(path: &Path, before: &BTreeMap<PathBuf, u64>) -> bool {
    let name = path.to_string_lossy();
    ["-wal", "-shm", "-journal"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|db| before.contains_key(Path::new(db)))
    })
}

// ---------------------------------------------------------------------------
// The call

fn latest_stats(events: &mut tokio::sync::mpsc::UnboundedReceiver<AgentEvent>) -> MediaStats {
    let mut last = None;
    while let Ok(ev) = events.try_recv() {
        if let AgentEvent::Stats(s) = ev {
            last = Some(s);
        }
    }
    last.expect("a stats event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_forwards_only_protected_media_and_stores_none() {
    require("tcpdump");
    let node = Node::start_relaying().await;
    let turn = match node.running.as_ref().unwrap().turn_addr() {
        Some(SocketAddr::V4(turn)) => turn,
        other => panic!("the node's TURN relay: {other:?}"),
    };
    node.add_doctor("dr-capture", "Dr. Capture");
    let api = node.login("dr-capture").await;
    let link = api.new_consultation(None).await.expect("consultation");
    let (_, token, key) = parse_link(&link.url).expect("link");
    let data_dir = node.dir.path().join("data");
    checkpoint(&data_dir);
    let before = files(&data_dir);

    let scratch = tempfile::tempdir().unwrap();
    let pcap_path = scratch.path().join("relay.pcap");
    let capture = Capture::start(&pcap_path).await;

    let mut d_opts = common::doctor_options(&api, &link);
    d_opts.auto_admit = true;
    d_opts.force_relay = true;
    let mut p_opts = patient_options(node.ws_url(), token, None, key);
    p_opts.force_relay = true;
    let (doctor, mut d_events) = CallAgent::start(d_opts).await.expect("doctor");
    let (patient, mut p_events) = CallAgent::start(p_opts).await.expect("patient");
    for (who, events) in [("doctor", &mut d_events), ("patient", &mut p_events)] {
        let (local, remote, _) = common::wait_connected(events, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{who} connects: {e}"));
        assert_eq!(
            (local.as_str(), remote.as_str()),
            ("relay", "relay"),
            "{who}"
        );
    }
    let enough = |e: &AgentEvent| match e {
        AgentEvent::Stats(s) if s.video_frames_decoded > 60 && s.audio_frames_decoded > 100 => {
            Some(())
        }
        _ => None,
    };
    for (who, events) in [("doctor", &mut d_events), ("patient", &mut p_events)] {
        wait_for(events, Duration::from_secs(20), enough)
            .await
            .unwrap_or_else(|e| panic!("{who} decodes media: {e}"));
    }
    // Let media flow until the relay forwarded enough to make the disk
    // comparison meaningful.
    let started = Instant::now();
    let relayed = loop {
        let text = node.metrics().await;
        let relayed = metric(&text, "telenode_turn_relayed_bytes_total");
        if relayed >= MIN_RELAYED_BYTES || started.elapsed() > Duration::from_secs(60) {
            break relayed;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        relayed >= MIN_RELAYED_BYTES,
        "relay forwarded only {relayed} bytes"
    );
    // One more stats round so the figures cover the whole call.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let d_stats = latest_stats(&mut d_events);
    let p_stats = latest_stats(&mut p_events);

    doctor.hang_up();
    assert_eq!(
        wait_end(&mut d_events, Duration::from_secs(5)).await,
        Some(EndCause::Completed)
    );
    wait_end(&mut p_events, Duration::from_secs(5)).await;
    doctor.join().await;
    patient.join().await;
    let text = node.metrics().await;
    let relayed = metric(&text, "telenode_turn_relayed_bytes_total");
    let relayed_packets = metric(&text, "telenode_turn_relayed_packets_total");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tcpdump = capture.stop().await;
    // The WAL as the call left it, before the node's close checkpoints it.
    let mut kept = contents(&data_dir);
    let during = files(&data_dir);
    let dir = node.stop().await;
    let after = files(&dir.path().join("data"));
    kept.extend(contents(&dir.path().join("data")));

    // --- What the relay forwarded.
    let file = std::fs::read(&pcap_path).unwrap();
    let pcap = read_pcap(&file).unwrap();
    let a = Analysis::run(&pcap, turn);
    eprintln!(
        "capture: {} bytes, {} UDP datagrams on lo ({} other frames, {} fragments, \
         {} truncated)\n{}\ntcpdump: {}\n\
         relay metrics: {relayed} bytes, {relayed_packets} packets\n\
         doctor: {d_stats:?}\npatient: {p_stats:?}",
        file.len(),
        pcap.datagrams.len(),
        pcap.other,
        pcap.fragments,
        pcap.truncated,
        a.report(),
        tcpdump.trim().replace('\n', "; "),
    );
    assert!(
        tcpdump.contains("\n0 packets dropped by kernel"),
        "the capture lost packets: {tcpdump}"
    );
    assert_eq!(pcap.truncated, 0, "truncated records");
    assert_eq!(
        pcap.fragments, 0,
        "fragmented datagrams cannot be classified"
    );
    assert!(
        a.findings.is_empty(),
        "the relay forwarded something that is not protected:\n{}{}",
        a.findings_text(),
        a.report()
    );
    // The capture saw the call, every way it was relayed.
    assert!(a.relays.len() >= 2, "{}", a.report());
    for hop in [Hop::ToTurn, Hop::FromTurn, Hop::RelayToRelay] {
        assert!(
            a.hops.get(&hop).copied().unwrap_or(0) > 100,
            "{hop:?}: {}",
            a.report()
        );
    }
    assert!(a.rtp_packets() >= MIN_RTP_PACKETS, "{}", a.report());
    let big: Vec<&Stream> = a
        .streams
        .values()
        .filter(|s| s.packets() >= MIN_SKEW_PACKETS)
        .collect();
    assert!(
        big.len() >= 4,
        "audio and video both ways checked for skew: {}",
        a.report()
    );
    assert!(a.stun >= 2, "ICE checks over the relay: {}", a.report());
    assert!(
        a.dtls_records >= 4 && a.dtls_encrypted >= 2,
        "{}",
        a.report()
    );
    assert_eq!(a.profiles.len(), 1, "one SRTP profile: {}", a.report());
    assert!(a.rtcp >= 4 && a.srtcp_exact >= 1, "{}", a.report());
    // Keyframes were sent (so their headers would have shown), and media
    // was decoded both ways.
    for (who, s) in [("doctor", d_stats), ("patient", p_stats)] {
        assert!(s.video_keyframes_sent >= 1, "{who}: {s:?}");
        assert!(s.video_frames_decoded > 60, "{who}: {s:?}");
        assert!(s.audio_frames_decoded > 100, "{who}: {s:?}");
    }
    assert_eq!(a.samples.len(), SAMPLES);

    // --- What the node kept.
    // The WAL was empty before the call and only grows until a checkpoint
    // (a full one would leave it at its high-water mark), so its size after
    // hang-up bounds what the call wrote; after the stop, the database file
    // holds all of it.
    let written = data_bytes(&during).saturating_sub(data_bytes(&before));
    let grown = data_bytes(&after).saturating_sub(data_bytes(&before));
    eprintln!(
        "data dir before: {before:?}\nafter hang-up: {during:?}\nafter stop: {after:?}\n\
         {written} bytes written by the call, the directory grew by {grown} bytes, \
         while the relay forwarded {relayed} bytes"
    );
    let new_files = during.keys().chain(after.keys());
    for path in new_files.filter(|p| !before.contains_key(*p)) {
        assert!(
            is_sqlite_sidecar(path, &before),
            "new file {} in the data directory",
            path.display()
        );
    }
    assert!(
        (written.max(grown) as f64) < 0.05 * relayed,
        "the call wrote {written} bytes, the data directory grew by {grown} bytes, \
         for {relayed} bytes relayed"
    );
    let needles: HashSet<&[u8]> = a.samples.iter().map(|s| &s[..]).collect();
    for (path, bytes) in &kept {
        let hit = bytes.windows(SAMPLE_LEN).find(|w| needles.contains(w));
        assert!(
            hit.is_none(),
            "forwarded SRTP bytes found in {}",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Positive control

/// A pcap file (little-endian, microseconds, Ethernet) of UDP datagrams.
fn write_pcap(datagrams: &[Datagram]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // thiszone, sigfigs
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    for (i, d) in datagrams.iter().enumerate() {
        let udp_len = 8 + d.payload.len();
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&(20 + udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]); // DF, TTL, UDP
        frame.extend_from_slice(&d.src.ip().octets());
        frame.extend_from_slice(&d.dst.ip().octets());
        frame.extend_from_slice(&d.src.port().to_be_bytes());
        frame.extend_from_slice(&d.dst.port().to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&d.payload);
        out.extend_from_slice(&(i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

/// A STUN message of `kind` with one attribute.
fn stun_message(kind: u16, attr: u16, value: &[u8]) -> Vec<u8> {
    let padded = value.len().next_multiple_of(4);
    let mut m = kind.to_be_bytes().to_vec();
    m.extend_from_slice(&(4 + padded as u16).to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(&[7; 12]); // transaction id
    m.extend_from_slice(&attr.to_be_bytes());
    m.extend_from_slice(&(value.len() as u16).to_be_bytes());
    m.extend_from_slice(value);
    m.resize(20 + 4 + padded, 0);
    m
}

/// Clear RTP: a real VP8 keyframe and the frames after it, and Opus
/// frames, packetised by `webrtc`'s own payloaders.
fn clear_rtp() -> Vec<Vec<u8>> {
    use bytes::Bytes;
    use rtc::rtp::codec::{opus::OpusPayloader, vp8::Vp8Payloader};
    use rtc::rtp::packetizer::{Packetizer, new_packetizer};
    use rtc::rtp::sequence::new_random_sequencer;
    use rtc::shared::marshal::Marshal;
    use telenode::peer::media::{TestPattern, Tone, opus_encoder, video_bitrate_kbps};
    use telenode_vpx::{EncoderConfig, Vp8Encoder};

    let now = std::time::Instant::now();
    let mut packets = Vec::new();
    let (w, h, fps) = (320, 240, 30);
    let mut encoder = Vp8Encoder::new(EncoderConfig::realtime(
        w,
        h,
        fps,
        video_bitrate_kbps(w, h, fps),
    ))
    .unwrap();
    let mut pattern = TestPattern::new(w, h);
    // As `webrtc` sets it up for VP8 (`RTCRtpCodec::payloader`).
    let mut vp8 = Vp8Payloader::default();
    vp8.enable_picture_id = true;
    let mut video = new_packetizer(
        now,
        1200,
        96,
        0x1111_1111,
        Box::new(vp8),
        Box::new(new_random_sequencer()),
        90_000,
    );
    let mut keyframes = 0;
    for i in 0..90 {
        for frame in encoder.encode(pattern.render(i), i as i64, i == 0).unwrap() {
            keyframes += usize::from(frame.keyframe);
            for p in video
                .packetize(now, &Bytes::from(frame.data), 90_000 / fps)
                .unwrap()
            {
                packets.push(p.marshal().unwrap().to_vec());
            }
        }
    }
    assert!(keyframes >= 1, "the encoder made a keyframe");
    let mut opus = opus_encoder().unwrap();
    let mut tone = Tone::new(440.0);
    let mut audio = new_packetizer(
        now,
        1200,
        111,
        0x2222_2222,
        Box::new(OpusPayloader),
        Box::new(new_random_sequencer()),
        48_000,
    );
    for _ in 0..100 {
        let mut buf = [0u8; 1500];
        let n = opus.encode(&tone.next_frame(), &mut buf).unwrap();
        for p in audio
            .packetize(now, &Bytes::copy_from_slice(&buf[..n]), 960)
            .unwrap()
        {
            packets.push(p.marshal().unwrap().to_vec());
        }
    }
    packets
}

/// A clear RTCP compound packet: receiver report and PLI.
fn clear_rtcp() -> Vec<u8> {
    use rtc::rtcp::packet::{Packet, marshal};
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtcp::receiver_report::ReceiverReport;
    let packets: Vec<Box<dyn Packet>> = vec![
        Box::new(ReceiverReport {
            ssrc: 0x3333_3333,
            ..Default::default()
        }),
        Box::new(PictureLossIndication {
            sender_ssrc: 0x3333_3333,
            media_ssrc: 0x1111_1111,
        }),
    ];
    marshal(&packets).unwrap().to_vec()
}

/// The analysis flags clear media carried each way the relay carries it:
/// the checks of the capture test can fail.
#[test]
fn clear_media_is_caught() {
    let ip = Ipv4Addr::LOCALHOST;
    let (turn, client_a, client_b, relay_a, relay_b) = (3478, 40001, 40002, 50001, 50002);
    let at = |port| SocketAddrV4::new(ip, port);
    let dgram = |src, dst, payload: Vec<u8>| Datagram {
        src: at(src),
        dst: at(dst),
        payload,
    };
    let mut capture = Vec::new();
    for (client, relay) in [(client_a, relay_a), (client_b, relay_b)] {
        let xport = relay ^ (MAGIC_COOKIE >> 16) as u16;
        let mut value = vec![0, 1];
        value.extend_from_slice(&xport.to_be_bytes());
        value.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
        let allocated = stun_message(ALLOCATE_SUCCESS, ATTR_XOR_RELAYED_ADDRESS, &value);
        capture.push(dgram(turn, client, allocated));
    }
    let mut media = clear_rtp();
    media.push(clear_rtcp());
    media.push(b"GET / HTTP/1.1\r\n\r\n".to_vec());
    for (i, p) in media.into_iter().enumerate() {
        // Client A sends with a Send indication or ChannelData, alternately.
        let sent = if i % 2 == 0 {
            let mut peer = vec![0, 1];
            peer.extend_from_slice(&(relay_b ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
            peer.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
            let mut m = stun_message(SEND_INDICATION, 0x0012, &peer);
            let data = stun_message(0, ATTR_DATA, &p);
            m.extend_from_slice(&data[20..]);
            let len = (m.len() - 20) as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            m
        } else {
            let mut m = vec![0x40, 0x00];
            m.extend_from_slice(&(p.len() as u16).to_be_bytes());
            m.extend_from_slice(&p);
            m
        };
        capture.push(dgram(client_a, turn, sent));
        capture.push(dgram(relay_a, relay_b, p.clone()));
        capture.push(dgram(
            turn,
            client_b,
            stun_message(DATA_INDICATION, ATTR_DATA, &p),
        ));
    }
    let pcap = read_pcap(&write_pcap(&capture)).unwrap();
    let a = Analysis::run(&pcap, at(turn));
    eprintln!("{}\n{}", a.report(), a.findings_text());
    assert_eq!(a.relays, BTreeSet::from([at(relay_a), at(relay_b)]));
    assert!(a.send_indications > 0 && a.channel_data > 0 && a.data_indications > 0);
    assert_eq!(a.streams.len(), 2, "video and audio");
    let faults = a.faults();
    for fault in [
        Fault::ClearVp8Keyframe,
        Fault::FirstByteSkew,
        Fault::ClearRtcp,
        Fault::Unclassified,
    ] {
        assert!(faults.contains(&fault), "{fault:?} not found: {faults:?}");
    }
    // The skew is found per stream: audio and video each, and pooled.
    let skewed = a
        .findings
        .iter()
        .filter(|f| f.fault == Fault::FirstByteSkew)
        .count();
    assert_eq!(skewed, 3, "{}", a.findings_text());
    // The keyframe's first packet, on each of the three hops.
    let keyframe = a
        .findings
        .iter()
        .filter(|f| f.fault == Fault::ClearVp8Keyframe)
        .count();
    assert_eq!(keyframe, 3, "{}", a.findings_text());
}

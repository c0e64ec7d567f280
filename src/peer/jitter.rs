//! Playout jitter buffer for received Opus audio (48 kHz RTP clock, 20 ms
//! frames).
//!
//! Pure and I/O-free: the receive task [`push`](JitterBuffer::push)es RTP
//! packets, the playout task [`pop`](JitterBuffer::pop)s one decision per
//! 20 ms of its own playback clock, and both pass the time in.
//!
//! The playout point is an RTP timestamp that moves one frame per pop, so
//! timing follows the sender's clock, not the sequence numbers (a DTX gap
//! moves the timestamp but not the sequence number). What a pop returns:
//!
//! - the packet due now, in timestamp order whatever order it came in;
//! - [`Playout::Fec`] when the due frame is missing but the next one is here
//!   (Opus carries the previous frame's FEC in each packet);
//! - [`Playout::Silence`] in a DTX gap: the next packet's sequence number
//!   follows the last one played, so nothing was lost;
//! - [`Playout::Conceal`] otherwise. With nothing buffered at all the frame
//!   is probably late rather than lost, so the playout point waits for it:
//!   the concealment adds one frame of delay (up to the target plus
//!   [`LATENCY_MARGIN`]). That is how the delay grows when jitter does.
//!
//! The delay shrinks again by skipping: a whole packet at most every fourth
//! pop once the delay has been over target + [`LATENCY_MARGIN`] for half a
//! second, silent frames at once (nobody hears them go).
//!
//! "Delay" here is how long after its earliest possible arrival a frame is
//! played: the frame's time since the stream began, against the fastest
//! packet of the last few seconds. Unlike the number of packets buffered it
//! does not swing with every burst, so bursts do not make it skip.
//!
//! The target delay comes from the same relative delays (arrival time
//! minus RTP time, as in RFC 3550 §6.4.1): the peak spread above the
//! fastest packet, decaying over seconds; see `DelayEstimator`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::media::{AUDIO_FRAME, AUDIO_FRAME_DURATION, AUDIO_RATE, OPUS_DTX_MAX_LEN};

/// RTP ticks in one 20 ms Opus frame at 48 kHz.
pub const FRAME_TICKS: u32 = AUDIO_FRAME as u32;
/// One frame of playback.
pub const FRAME: Duration = AUDIO_FRAME_DURATION;
/// The target delay never goes below this: two frames.
pub const MIN_DELAY: Duration = Duration::from_millis(40);
/// The target delay never goes above this, however bad the path.
pub const MAX_DELAY: Duration = Duration::from_millis(400);
/// Most packets held at once: 2 s of audio.
pub const CAPACITY: usize = 100;
/// Delay above target + this (for half a second) is shed by skipping
/// packets; concealment waits for a late packet only up to it.
pub const LATENCY_MARGIN: Duration = Duration::from_millis(60);
/// How long the delay must stay too high before packets are skipped: a
/// single spike is not worth a skip.
const LATENCY_PATIENCE: Duration = Duration::from_millis(500);
/// At most one packet is skipped in this many pops, so speech is sped up
/// by a quarter, not chopped.
const SKIP_EVERY: u32 = 4;
/// Nothing to play and no packet for this long: the stream is quiet, stop
/// concealing and start afresh with the next packet.
const STALL: Duration = Duration::from_secs(1);
/// A jump of more sequence numbers than this (20 s at 50 packets/s) is a
/// new stream, not loss.
const MAX_SEQ_JUMP: i64 = 1000;
/// The lowest delay is looked for over one to two of these windows.
const FLOOR_WINDOW: Duration = Duration::from_secs(2);
/// Half-life of the jitter peak once the path calms down, in seconds.
const PEAK_HALF_LIFE_S: f64 = 1.5;
const FRAME_I: i64 = FRAME_TICKS as i64;
/// Packets more than this ahead of the playout point mean a timestamp jump.
const WINDOW_TICKS: i64 = CAPACITY as i64 * FRAME_I;
const FRAME_US: i64 = FRAME.as_micros() as i64;

/// What to play for the next 20 ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet normally.
    Packet(Bytes),
    /// The frame due now was lost but the next packet is here: decode *that*
    /// packet with FEC (opus decode `fec = true`) to rebuild the lost frame.
    /// The same packet comes again as [`Playout::Packet`] on the next pop.
    Fec(Bytes),
    /// The frame due now was lost and cannot be rebuilt: let the decoder
    /// conceal it (PLC).
    Conceal,
    /// Nothing to play on purpose: before the first packet or while
    /// prebuffering, in a sender's DTX gap, or after the stream went quiet.
    /// Play silence or comfort noise.
    Silence,
}

/// Counters since the buffer was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Pops that returned [`Playout::Packet`].
    pub played: u64,
    /// Pops that returned [`Playout::Fec`].
    pub fec: u64,
    /// Pops that returned [`Playout::Conceal`].
    pub concealed: u64,
    /// Packets that arrived after their frame was played; dropped.
    pub late: u64,
    /// Packets received twice; the copy was dropped.
    pub duplicates: u64,
    /// Frames skipped to shrink the delay (packets, or silence in a DTX gap).
    pub dropped_for_latency: u64,
    /// Packets dropped because [`CAPACITY`] packets were already held.
    pub overflow: u64,
    /// Times playout started afresh: after a stall or a jump in the stream.
    pub reanchored: u64,
}

/// The playout jitter buffer; see the module documentation.
#[derive(Debug)]
pub struct JitterBuffer {
    /// Held packets by extended timestamp.
    held: BTreeMap<i64, Held>,
    stream: Option<Stream>,
    estimator: DelayEstimator,
    phase: Phase,
    /// Extended timestamp of the frame the next pop plays (when playing).
    next_ts: i64,
    /// Sequence number of the last frame played or found lost: the next
    /// packet is `last_seq + 1` unless packets were lost.
    last_seq: Option<i64>,
    /// The last packet played was an Opus DTX frame.
    in_dtx: bool,
    /// When the last packet that went into the buffer arrived.
    last_arrival: Option<Instant>,
    /// Since when the delay has been above target + margin.
    over_since: Option<Instant>,
    pops_since_skip: u32,
    stats: JitterStats,
}

#[derive(Debug)]
struct Held {
    seq: i64,
    payload: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No packet yet.
    Idle,
    /// Waiting for the first packet to have waited the target delay.
    Prebuffer {
        since: Instant,
    },
    Playing,
    /// The stream went quiet; the next packet starts it afresh.
    Stalled,
}

/// The frame due at a pop, as far as the held packets tell.
enum Due {
    Packet,
    /// Missing, and the next packet's sequence number follows the last one.
    Dtx,
    /// Missing; `fec` if the next packet is exactly one frame later.
    Lost {
        fec: bool,
    },
    Empty,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    /// An empty buffer: target delay [`MIN_DELAY`], [`CAPACITY`] packets.
    pub fn new() -> Self {
        JitterBuffer {
            held: BTreeMap::new(),
            stream: None,
            estimator: DelayEstimator::default(),
            phase: Phase::Idle,
            next_ts: 0,
            last_seq: None,
            in_dtx: false,
            last_arrival: None,
            over_since: None,
            pops_since_skip: 0,
            stats: JitterStats::default(),
        }
    }

    /// A received packet: RTP sequence number, RTP timestamp, Opus payload.
    /// Any input is accepted; nonsense is dropped, counted, or starts the
    /// stream afresh.
    pub fn push(&mut self, now: Instant, seq: u16, timestamp: u32, payload: Bytes) {
        let anchored = matches!(self.phase, Phase::Prebuffer { .. } | Phase::Playing);
        let Some(stream) = self.stream.as_mut().filter(|_| anchored) else {
            self.stats.reanchored += u64::from(self.phase == Phase::Stalled);
            return self.anchor(now, seq, timestamp, payload);
        };
        let (seq, ts) = stream.extend(seq, timestamp);
        let seq_jump = seq - stream.highest_seq;
        // What may be held: from the playout point (or, before playout,
        // around the first packet) up to CAPACITY frames ahead of it.
        let (oldest, end) = match self.phase {
            Phase::Playing => (self.next_ts, self.next_ts + WINDOW_TICKS),
            _ => (stream.base_ts - WINDOW_TICKS, stream.base_ts + WINDOW_TICKS),
        };
        if seq_jump.abs() > MAX_SEQ_JUMP
            || ts >= end
            || (seq_jump > 0 && ts - stream.highest_ts <= -WINDOW_TICKS)
        {
            self.stats.reanchored += 1;
            return self.anchor(now, seq as u16, ts as u32, payload);
        }
        if !stream.mark(seq, ts) {
            self.stats.duplicates += 1;
            return;
        }
        // Late packets count too: they are what the delay must cover.
        self.estimator
            .observe(now, stream.relative_delay_us(now, ts));
        if ts < oldest {
            self.stats.late += 1;
        } else if self.held.contains_key(&ts) {
            self.stats.duplicates += 1;
        } else if self.held.len() >= CAPACITY {
            self.stats.overflow += 1;
        } else {
            self.held.insert(ts, Held { seq, payload });
            self.last_arrival = Some(now);
        }
    }

    /// Called once per 20 ms of playback (the caller's playback clock
    /// decides when). Returns what to play for the next 20 ms.
    pub fn pop(&mut self, now: Instant) -> Playout {
        let out = self.decide(now);
        match out {
            Playout::Packet(_) => self.stats.played += 1,
            Playout::Fec(_) => self.stats.fec += 1,
            Playout::Conceal => self.stats.concealed += 1,
            Playout::Silence => {}
        }
        out
    }

    /// The current target delay (what the buffer aims to hold):
    /// a frame plus the recent peak of the delay spread, within
    /// [`MIN_DELAY`]..=[`MAX_DELAY`].
    pub fn target_delay(&self) -> Duration {
        let peak = Duration::from_micros(self.estimator.peak_us as u64);
        (FRAME + peak).clamp(MIN_DELAY, MAX_DELAY)
    }

    /// Audio currently buffered ahead of the playout point (a DTX gap in it
    /// counts: it is time still to be played).
    pub fn buffered(&self) -> Duration {
        let start = match self.phase {
            Phase::Playing => self.next_ts,
            _ => self.held.keys().next().copied().unwrap_or(0),
        };
        let ticks = self
            .held
            .keys()
            .next_back()
            .map_or(0, |last| last + FRAME_I - start);
        Duration::from_micros(ticks_to_us(ticks.max(0)).unsigned_abs())
    }

    /// How many packets are held (never more than [`CAPACITY`]).
    pub fn held_packets(&self) -> usize {
        self.held.len()
    }

    /// Counters since the buffer was made.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Starts the stream afresh at this packet: fresh unwrapping and delay
    /// floor, an empty buffer, a fresh prebuffer.
    fn anchor(&mut self, now: Instant, seq: u16, timestamp: u32, payload: Bytes) {
        let stream = Stream::new(now, seq, timestamp);
        self.estimator.forget_floor();
        self.estimator.observe(now, 0);
        self.held.clear();
        self.held.insert(
            stream.highest_ts,
            Held {
                seq: stream.highest_seq,
                payload,
            },
        );
        self.stream = Some(stream);
        self.phase = Phase::Prebuffer { since: now };
        self.last_seq = None;
        self.in_dtx = false;
        self.last_arrival = Some(now);
        self.over_since = None;
    }

    fn decide(&mut self, now: Instant) -> Playout {
        match self.phase {
            Phase::Idle | Phase::Stalled => return Playout::Silence,
            Phase::Prebuffer { since } => {
                if now.saturating_duration_since(since) < self.target_delay() {
                    return Playout::Silence;
                }
                self.start_playout(now);
            }
            Phase::Playing => {}
        }
        self.pops_since_skip = self.pops_since_skip.saturating_add(1);
        let mut skip = self.may_skip(now);
        let target = micros(self.target_delay());
        loop {
            match self.due() {
                Due::Packet => {
                    let Some((ts, held)) = self.held.pop_first() else {
                        return Playout::Silence;
                    };
                    self.next_ts = self.next_ts.max(ts + FRAME_I);
                    self.last_seq = Some(held.seq);
                    let next_here =
                        self.held.first_key_value().map(|(&t, _)| t) == Some(self.next_ts);
                    if skip && next_here {
                        skip = false;
                        self.pops_since_skip = 0;
                        self.stats.dropped_for_latency += 1;
                        continue;
                    }
                    self.in_dtx = held.payload.len() <= OPUS_DTX_MAX_LEN;
                    return Playout::Packet(held.payload);
                }
                // Silence is where the delay changes for free: cut while it
                // is over target, stretched while under.
                Due::Dtx if self.delay_us(now) > target + FRAME_US => {
                    self.next_ts += FRAME_I;
                    self.stats.dropped_for_latency += 1;
                }
                Due::Dtx => return self.silence(now, target),
                Due::Lost { fec } => {
                    self.next_ts += FRAME_I;
                    self.last_seq = self.last_seq.map(|s| s + 1);
                    self.in_dtx = false;
                    return match self.held.first_key_value() {
                        Some((_, next)) if fec => Playout::Fec(next.payload.clone()),
                        _ => Playout::Conceal,
                    };
                }
                Due::Empty => {
                    let quiet = self
                        .last_arrival
                        .is_none_or(|t| now.saturating_duration_since(t) >= STALL);
                    if quiet {
                        self.phase = Phase::Stalled;
                        return Playout::Silence;
                    }
                    if self.in_dtx {
                        return self.silence(now, target);
                    }
                    // Probably late: wait for it, up to a limit.
                    if self.delay_us(now) >= target + micros(LATENCY_MARGIN) {
                        self.next_ts += FRAME_I;
                    }
                    return Playout::Conceal;
                }
            }
        }
    }

    /// A silent frame: played (the playout point moves on) if the delay is
    /// at least the target, else stretched.
    fn silence(&mut self, now: Instant, target: i64) -> Playout {
        if self.delay_us(now) >= target {
            self.next_ts += FRAME_I;
        }
        Playout::Silence
    }

    /// Playout starts at the oldest held packet, less those already more
    /// than two frames (the pop's phase, a reordering) over the target
    /// delay: after a stall the backlog is skipped, not played.
    fn start_playout(&mut self, now: Instant) {
        self.phase = Phase::Playing;
        self.next_ts = self.held.keys().next().copied().unwrap_or(0);
        self.last_seq = None;
        self.in_dtx = false;
        self.over_since = None;
        self.pops_since_skip = 0;
        let keep = micros(self.target_delay()) + 2 * FRAME_US;
        while self.delay_us(now) > keep && self.held.len() > 1 {
            let Some((ts, held)) = self.held.pop_first() else {
                break;
            };
            self.next_ts = self.held.keys().next().copied().unwrap_or(ts + FRAME_I);
            self.last_seq = Some(held.seq);
            self.stats.dropped_for_latency += 1;
        }
    }

    /// Whether this pop may skip a packet: the delay has been above target
    /// plus margin for a while, and the last skip was a few pops ago. Keeps
    /// skipping until the delay is within a frame of the target.
    fn may_skip(&mut self, now: Instant) -> bool {
        let delay = self.delay_us(now);
        let target = micros(self.target_delay());
        if delay > target + micros(LATENCY_MARGIN) {
            self.over_since.get_or_insert(now);
        } else if delay <= target + FRAME_US {
            self.over_since = None;
        }
        self.over_since
            .is_some_and(|t| now.saturating_duration_since(t) >= LATENCY_PATIENCE)
            && self.pops_since_skip >= SKIP_EVERY
    }

    fn due(&self) -> Due {
        let Some((&ts, held)) = self.held.first_key_value() else {
            return Due::Empty;
        };
        if ts < self.next_ts + FRAME_I {
            Due::Packet
        } else if self.last_seq == Some(held.seq - 1) {
            Due::Dtx
        } else {
            Due::Lost {
                fec: ts == self.next_ts + FRAME_I,
            }
        }
    }

    /// How long after its earliest possible arrival the frame due now is
    /// played, in microseconds.
    fn delay_us(&self, now: Instant) -> i64 {
        let Some(stream) = &self.stream else {
            return 0;
        };
        stream.relative_delay_us(now, self.next_ts) - self.estimator.floor()
    }
}

/// Sequence numbers and timestamps extended past their wrap, relative to
/// the first packet, and which sequence numbers were seen.
#[derive(Debug)]
struct Stream {
    highest_seq: i64,
    highest_ts: i64,
    /// Bit `n`: sequence number `highest_seq - n` was received.
    seen: u128,
    /// The first packet's arrival and timestamp, for relative delays.
    base_at: Instant,
    base_ts: i64,
}

impl Stream {
    fn new(now: Instant, seq: u16, timestamp: u32) -> Self {
        Stream {
            highest_seq: i64::from(seq),
            highest_ts: i64::from(timestamp),
            seen: 1,
            base_at: now,
            base_ts: i64::from(timestamp),
        }
    }

    /// The extended values nearest to the highest seen so far.
    fn extend(&self, seq: u16, timestamp: u32) -> (i64, i64) {
        let seq_delta = seq.wrapping_sub(self.highest_seq as u16) as i16;
        let ts_delta = timestamp.wrapping_sub(self.highest_ts as u32) as i32;
        (
            self.highest_seq + i64::from(seq_delta),
            self.highest_ts + i64::from(ts_delta),
        )
    }

    /// Records a packet; false if its sequence number was seen already.
    fn mark(&mut self, seq: i64, ts: i64) -> bool {
        let ahead = seq - self.highest_seq;
        if ahead > 0 {
            self.seen = if ahead >= 128 { 0 } else { self.seen << ahead };
            self.seen |= 1;
            self.highest_seq = seq;
        } else if -ahead < 128 {
            let bit = 1u128 << -ahead;
            if self.seen & bit != 0 {
                return false;
            }
            self.seen |= bit;
        }
        self.highest_ts = self.highest_ts.max(ts);
        true
    }

    /// Arrival time minus send time (by timestamp), both since the first
    /// packet: constant on a perfect path, higher when a packet is delayed.
    fn relative_delay_us(&self, at: Instant, ts: i64) -> i64 {
        let since = at.saturating_duration_since(self.base_at);
        micros(since) - ticks_to_us(ts - self.base_ts)
    }
}

/// Network jitter from relative delays: the floor is the lowest delay of
/// the last two to four seconds (the fastest the path has been); the peak
/// is the largest spread above it, decaying with a half-life of
/// [`PEAK_HALF_LIFE_S`]. A buffer that holds the peak catches every packet
/// the path delivered lately.
#[derive(Debug, Default)]
struct DelayEstimator {
    /// Lowest delay of the previous and the current window.
    floors: [Option<i64>; 2],
    window_start: Option<Instant>,
    peak_us: f64,
    peak_at: Option<Instant>,
}

impl DelayEstimator {
    fn observe(&mut self, now: Instant, delay_us: i64) {
        match self.window_start.map(|t| now.saturating_duration_since(t)) {
            Some(age) if age < FLOOR_WINDOW => {}
            Some(age) if age < 2 * FLOOR_WINDOW => {
                self.floors = [self.floors[1], None];
                self.window_start = Some(now);
            }
            _ => {
                self.floors = [None, None];
                self.window_start = Some(now);
            }
        }
        self.floors[1] = Some(self.floors[1].map_or(delay_us, |f| f.min(delay_us)));
        let decay = self.peak_at.map_or(1.0, |t| {
            let age = now.saturating_duration_since(t).as_secs_f64();
            0.5f64.powf(age / PEAK_HALF_LIFE_S)
        });
        let spread = (delay_us - self.floor()) as f64;
        self.peak_us = (self.peak_us * decay)
            .max(spread)
            .min(micros(MAX_DELAY) as f64);
        self.peak_at = Some(now);
    }

    fn floor(&self) -> i64 {
        self.floors.iter().flatten().min().copied().unwrap_or(0)
    }

    fn forget_floor(&mut self) {
        self.floors = [None, None];
        self.window_start = None;
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn ticks_to_us(ticks: i64) -> i64 {
    ticks.saturating_mul(1_000_000) / i64::from(AUDIO_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// xorshift64*: deterministic, no `rand` needed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Frame `i`'s payload: its index, so the tests see what is played.
    fn payload(frame: u32) -> Bytes {
        Bytes::copy_from_slice(&frame.to_be_bytes())
    }

    fn frame_of(payload: &Bytes) -> u32 {
        let bytes: [u8; 4] = payload[..].try_into().expect("a test payload");
        u32::from_be_bytes(bytes)
    }

    /// `P7` (packet of frame 7), `F7` (FEC from frame 7's packet), `C`, `S`.
    fn show(p: &Playout) -> String {
        let label = |b: &Bytes| match b.len() {
            4 => frame_of(b).to_string(),
            _ => "dtx".to_owned(),
        };
        match p {
            Playout::Packet(b) => format!("P{}", label(b)),
            Playout::Fec(b) => format!("F{}", label(b)),
            Playout::Conceal => "C".to_owned(),
            Playout::Silence => "S".to_owned(),
        }
    }

    /// A sender, a path and a fake clock around one buffer. Frame `i` has
    /// sequence number `seq0 + i` and timestamp `ts0 + 960 i`; times are
    /// milliseconds since `t0`.
    struct Link {
        jb: JitterBuffer,
        t0: Instant,
        seq0: u16,
        ts0: u32,
        /// Packets on their way, by (arrival, order sent).
        pending: BTreeMap<(u64, usize), (u16, u32, Bytes)>,
    }

    impl Link {
        fn new() -> Self {
            Self::starting_at(1000, 50_000)
        }

        fn starting_at(seq0: u16, ts0: u32) -> Self {
            Link {
                jb: JitterBuffer::new(),
                t0: Instant::now(),
                seq0,
                ts0,
                pending: BTreeMap::new(),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        /// Frame `frame` arrives at `ms`.
        fn send(&mut self, ms: u64, frame: u32) {
            let seq = self.seq0.wrapping_add(frame as u16);
            let ts = self.ts0.wrapping_add(frame.wrapping_mul(FRAME_TICKS));
            self.send_raw(ms, seq, ts, payload(frame));
        }

        fn send_raw(&mut self, ms: u64, seq: u16, ts: u32, payload: Bytes) {
            let order = self.pending.len();
            self.pending.insert((ms, order), (seq, ts, payload));
        }

        /// Delivers what has arrived by `ms`; returns the frames counted late.
        fn deliver(&mut self, ms: u64) -> Vec<u32> {
            let mut late = Vec::new();
            while let Some(entry) = self.pending.first_entry() {
                if entry.key().0 > ms {
                    break;
                }
                let ((at, _), (seq, ts, payload)) = entry.remove_entry();
                let before = self.jb.stats().late;
                let frame = (payload.len() == 4).then(|| frame_of(&payload));
                self.jb.push(self.at(at), seq, ts, payload);
                if self.jb.stats().late > before {
                    late.extend(frame);
                }
            }
            late
        }

        fn pop(&mut self, ms: u64) -> Playout {
            self.deliver(ms);
            self.jb.pop(self.at(ms))
        }

        /// `n` pops, 20 ms apart, from `ms` on.
        fn pops(&mut self, ms: u64, n: u64) -> Vec<String> {
            (0..n).map(|k| show(&self.pop(ms + 20 * k))).collect()
        }
    }

    fn frames(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|f| format!("P{f}")).collect()
    }

    #[test]
    fn prebuffer_is_silent_until_the_first_packet_waited_the_target() {
        let mut link = Link::new();
        for i in 0..10 {
            link.send(20 * u64::from(i), i);
        }
        assert_eq!(link.jb.pop(link.at(0)), Playout::Silence, "no packet yet");
        assert_eq!(link.jb.target_delay(), MIN_DELAY);
        // The first packet arrives at 0 ms; 25 ms < 40 ms; 45 ms >= 40 ms.
        assert_eq!(link.pops(5, 5), ["S", "S", "P0", "P1", "P2"]);
    }

    #[test]
    fn a_steady_stream_plays_every_packet_at_the_minimum_delay() {
        let mut link = Link::new();
        let mut rng = Rng(1);
        for i in 0..500 {
            link.send(20 * u64::from(i) + 5 + rng.below(5), i);
        }
        let out = link.pops(13, 450);
        assert_eq!(out[..2], ["S", "S"]);
        assert_eq!(out[2..], frames(0..448)[..]);
        assert_eq!(link.jb.target_delay(), MIN_DELAY);
        assert!(
            link.jb.buffered() <= MIN_DELAY + FRAME,
            "{:?}",
            link.jb.buffered()
        );
        assert!(link.jb.held_packets() <= 3);
    }

    #[test]
    fn sequence_numbers_and_timestamps_unwrap_across_their_wrap() {
        // The sequence number wraps after frame 5, the timestamp after 2.
        let mut link = Link::starting_at(u16::MAX - 5, u32::MAX - 2 * FRAME_TICKS - 100);
        let order = [0, 1, 3, 2, 4, 6, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        for (slot, &frame) in order.iter().enumerate() {
            link.send(20 * slot as u64, frame);
        }
        assert_eq!(link.pops(45, 16), frames(0..16));
        // Wrapped values still extend from the highest seen so far.
        let stream = Stream::new(link.t0, u16::MAX - 1, u32::MAX - 10);
        assert_eq!(
            stream.extend(1, 5),
            (i64::from(u16::MAX) + 2, i64::from(u32::MAX) + 6)
        );
        assert_eq!(
            stream.extend(u16::MAX - 3, u32::MAX - 20),
            (i64::from(u16::MAX) - 3, i64::from(u32::MAX) - 20)
        );
        assert_eq!(link.jb.stats().reanchored, 0);
    }

    #[test]
    fn reordered_packets_play_in_order() {
        let mut link = Link::new();
        // Pairs swapped, and frame 8 overtaken by three others.
        let order = [1, 0, 3, 2, 4, 5, 7, 6, 9, 10, 11, 8, 12, 13, 14, 15];
        for (slot, &frame) in order.iter().enumerate() {
            link.send(20 * slot as u64, frame);
        }
        link.jb.estimator.peak_us = 60_000.0; // a buffer deep enough for frame 8
        assert_eq!(link.pops(5, 20)[4..], frames(0..16)[..]);
        assert_eq!(link.jb.stats().late, 0);
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let mut link = Link::new();
        for i in 0..10 {
            link.send(20 * u64::from(i), i);
            link.send(20 * u64::from(i) + 3, i);
        }
        link.send(400, 2); // long after it was played
        assert_eq!(link.pops(45, 10), frames(0..10));
        link.deliver(400);
        assert_eq!(link.jb.stats().duplicates, 11);
        assert_eq!(link.jb.stats().late, 0);
    }

    #[test]
    fn a_packet_after_its_frame_was_played_is_dropped_as_late() {
        let mut link = Link::new();
        for i in (0..10).filter(|&i| i != 4) {
            link.send(20 * u64::from(i), i);
        }
        link.send(200, 4); // its slot was at 125 ms
        assert_eq!(
            link.pops(45, 8),
            ["P0", "P1", "P2", "P3", "F5", "P5", "P6", "P7"]
        );
        assert_eq!(link.deliver(200), [4]);
        assert_eq!(link.pops(205, 2), ["P8", "P9"]);
        assert_eq!(link.jb.stats().late, 1);
    }

    #[test]
    fn a_lost_frame_is_rebuilt_from_the_next_packets_fec() {
        let mut link = Link::new();
        for i in (0..10).filter(|&i| i != 4) {
            link.send(20 * u64::from(i), i);
        }
        assert_eq!(
            link.pops(45, 9),
            ["P0", "P1", "P2", "P3", "F5", "P5", "P6", "P7", "P8"]
        );
        let stats = link.jb.stats();
        assert_eq!((stats.played, stats.fec, stats.concealed), (8, 1, 0));
    }

    #[test]
    fn two_lost_frames_are_concealed_then_rebuilt() {
        let mut link = Link::new();
        for i in (0..10).filter(|&i| i != 4 && i != 5) {
            link.send(20 * u64::from(i), i);
        }
        link.jb.estimator.peak_us = 40_000.0; // frame 6 is in by frame 4's slot
        assert_eq!(
            link.pops(65, 8),
            ["P0", "P1", "P2", "P3", "C", "F6", "P6", "P7"]
        );
    }

    /// Sends `(arrival ms, sequence number, timestamp in frames)`.
    fn send_frames(link: &mut Link, packets: &[(u64, u16, u32)]) {
        for &(ms, seq, frame) in packets {
            let ts = link.ts0 + frame * FRAME_TICKS;
            link.send_raw(ms, link.seq0 + seq, ts, payload(frame));
        }
    }

    #[test]
    fn a_dtx_gap_between_consecutive_sequence_numbers_is_silence() {
        let mut link = Link::new();
        for i in 0..6 {
            link.send(20 * u64::from(i), i);
        }
        // Sequence numbers go on 6, 7, 8; timestamps skip frames 6, 8 and 9.
        send_frames(&mut link, &[(140, 6, 7), (200, 7, 10), (220, 8, 11)]);
        let out = link.pops(45, 12);
        assert_eq!(out[5..], ["P5", "S", "P7", "S", "S", "P10", "P11"]);
        let stats = link.jb.stats();
        assert_eq!(
            (stats.fec, stats.concealed, stats.dropped_for_latency),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_loss_before_a_dtx_gap_is_concealed_and_the_wait_cut_from_the_silence() {
        let mut link = Link::new();
        for i in 0..6 {
            link.send(20 * u64::from(i), i);
        }
        // Sequence number 6 is lost; 7 comes after a gap, at frame 10.
        send_frames(&mut link, &[(200, 7, 10), (220, 8, 11)]);
        let out = link.pops(45, 11);
        // Nothing buffered at frame 6: wait for it twice (C C), then learn
        // it was lost (C). Frames 7..9 are silence, and the 40 ms the waits
        // added are cut from it.
        assert_eq!(out[5..], ["P5", "C", "C", "C", "S", "P10"]);
        assert_eq!(link.jb.stats().dropped_for_latency, 2);
    }

    #[test]
    fn after_an_opus_dtx_frame_an_empty_buffer_is_silence() {
        let mut link = Link::new();
        for i in 0..6 {
            link.send(20 * u64::from(i), i);
        }
        // A one-byte DTX frame, then nothing for 400 ms: what WebRTC sends.
        link.send_raw(
            120,
            link.seq0 + 6,
            link.ts0 + 6 * FRAME_TICKS,
            Bytes::from_static(&[0x08]),
        );
        send_frames(&mut link, &[(520, 7, 26), (540, 8, 27)]);
        let out = link.pops(45, 28);
        let mut expected = frames(0..6);
        expected.push("Pdtx".to_owned());
        expected.extend(std::iter::repeat_n("S".to_owned(), 19));
        expected.extend(["P26".to_owned(), "P27".to_owned()]);
        assert_eq!(out, expected);
    }

    #[test]
    fn a_late_burst_is_waited_for_and_grows_the_delay() {
        let mut link = Link::new();
        for i in 0..100 {
            // Frames 50..=54 are held up 50 ms on the path.
            let extra = if (50..55).contains(&i) { 50 } else { 0 };
            link.send(20 * u64::from(i) + extra, i);
        }
        let out = link.pops(45, 100);
        let played: Vec<String> = out.iter().filter(|p| p.starts_with('P')).cloned().collect();
        assert_eq!(played, frames(0..played.len() as u32));
        assert!(played.len() >= 95);
        let stats = link.jb.stats();
        assert_eq!((stats.late, stats.fec), (0, 0));
        assert!((1..=3).contains(&stats.concealed), "{stats:?}");
        assert!(link.jb.target_delay() > MIN_DELAY);
    }

    #[test]
    fn a_long_stall_goes_silent_and_restarts_without_the_backlog() {
        let mut link = Link::new();
        for i in 0..50 {
            link.send(20 * u64::from(i), i);
        }
        // Nothing from 1 s to 3 s, then the path hands over 0.5 s of
        // backlog at once and goes on.
        for i in 125..150 {
            link.send(3000, i);
        }
        for i in 150..250 {
            link.send(20 * u64::from(i), i);
        }
        let out = link.pops(45, 240);
        let at = |ms: u64| &out[((ms - 45) / 20) as usize];
        assert!(out[..(3000 - 45) / 20].iter().filter(|p| *p == "C").count() <= 50);
        assert!((2000..3040).step_by(20).all(|ms| at(ms + 5) == "S"));
        let first_after = out[(3045 - 45) / 20..].iter().find(|p| p.starts_with('P'));
        assert_eq!(first_after.map(String::as_str), Some("P149"));
        assert!(out[(3100 - 45) / 20..].iter().all(|p| p.starts_with('P')));
        let stats = link.jb.stats();
        assert_eq!(stats.reanchored, 1);
        assert_eq!(stats.dropped_for_latency, 24);
    }

    /// 2 s steady, 10 s in clumps of five every 100 ms, 10 s steady again;
    /// one pop every 20 ms. Returns (pop ms, target, output) per pop.
    fn bursty_then_calm() -> (Link, Vec<(u64, Duration, String)>) {
        let mut link = Link::new();
        for i in 0..1100u32 {
            let sent = 20 * u64::from(i);
            let arrives = match i {
                100..600 => (sent / 100 + 1) * 100 + 5,
                _ => sent + 5,
            };
            link.send(arrives, i);
        }
        let mut out = Vec::new();
        for k in 0..1100 {
            let ms = 13 + 20 * k;
            let p = show(&link.pop(ms));
            out.push((ms, link.jb.target_delay(), p));
        }
        (link, out)
    }

    #[test]
    fn bursty_arrivals_raise_the_target_until_nothing_is_concealed() {
        let (_, out) = bursty_then_calm();
        let target_at = |ms: u64| out.iter().find(|o| o.0 >= ms).map(|o| o.1);
        assert_eq!(target_at(1990), Some(MIN_DELAY));
        assert!(
            target_at(11_990) >= Some(Duration::from_millis(90)),
            "{:?}",
            target_at(11_990)
        );
        // The first clumps find the buffer too shallow: a few frames are
        // concealed, each adding a frame of delay ...
        let warm = out.iter().filter(|o| (2000..4000).contains(&o.0));
        let concealed = warm.filter(|o| o.2 == "C").count();
        assert!((1..=5).contains(&concealed), "{concealed}");
        // ... and from then on every frame is played from its packet.
        let not_played: Vec<u64> = out
            .iter()
            .filter(|o| o.0 >= 4000 && !o.2.starts_with('P'))
            .map(|o| o.0)
            .collect();
        assert!(not_played.is_empty(), "{not_played:?}");
    }

    #[test]
    fn the_target_decays_over_seconds_when_jitter_calms_down() {
        let (link, out) = bursty_then_calm();
        let target_at = |ms: u64| out.iter().find(|o| o.0 >= ms).map(|o| o.1);
        let high = target_at(12_000).expect("a pop");
        // Not at once ...
        assert!(
            target_at(12_600) > Some(high / 2),
            "{:?}",
            target_at(12_600)
        );
        // ... but within seconds, and the delay follows it down.
        assert_eq!(target_at(18_000), Some(MIN_DELAY));
        assert!(
            link.jb.buffered() <= MIN_DELAY + 2 * FRAME,
            "{:?}",
            link.jb.buffered()
        );
        assert!(link.jb.stats().dropped_for_latency > 0);
        assert!(out[600..].iter().all(|o| o.2.starts_with('P')));
    }

    #[test]
    fn excess_delay_is_shed_one_packet_at_a_time() {
        let mut link = Link::new();
        for i in 0..300 {
            link.send(20 * u64::from(i) + 5, i);
        }
        // The playback clock stalls for 300 ms at 2 s: 15 frames pile up.
        let slots = (0..300u64)
            .map(|k| 13 + 20 * k)
            .filter(|ms| !(2000..2300).contains(ms));
        let mut skips = Vec::new();
        let mut out = Vec::new();
        for (n, ms) in slots.enumerate() {
            let before = link.jb.stats().dropped_for_latency;
            out.push(show(&link.pop(ms)));
            if link.jb.stats().dropped_for_latency > before {
                skips.push(n);
            }
        }
        // 48 ms + 300 ms down to within a frame of 40 ms: 15 skips, not
        // before the delay was too high for 500 ms, at most one in 4 pops.
        assert_eq!(skips.len(), 15);
        assert!(skips[0] >= 100 + 25, "{skips:?}");
        assert!(
            skips.windows(2).all(|w| w[1] - w[0] >= SKIP_EVERY as usize),
            "{skips:?}"
        );
        assert!(out[2..].iter().all(|p| p.starts_with('P')));
        assert!(link.jb.buffered() <= MIN_DELAY + FRAME);
    }

    #[test]
    fn the_held_packets_are_capped() {
        let mut link = Link::new();
        // Half a frame apart: 150 packets fit the 2 s window.
        for i in 0..150 {
            let ts = link.ts0 + i * FRAME_TICKS / 2;
            link.send_raw(0, link.seq0 + i as u16, ts, payload(i));
        }
        link.deliver(0);
        assert_eq!(link.jb.held_packets(), CAPACITY);
        assert_eq!(link.jb.stats().overflow, 50);
    }

    #[test]
    fn a_jump_in_sequence_or_timestamp_starts_the_stream_afresh() {
        for (seq_jump, ts_jump) in [(5000u16, 0u32), (u16::MAX - 4000, 0), (10, 5 * 48_000)] {
            let mut link = Link::new();
            for i in 0..20 {
                link.send(20 * u64::from(i), i);
            }
            assert_eq!(link.pops(45, 10), frames(0..10));
            // Frames 20.. come with shifted numbers, where frame 20 was due.
            for i in 20..40 {
                let seq = link.seq0.wrapping_add(i as u16).wrapping_add(seq_jump);
                let ts = link.ts0 + i * FRAME_TICKS + ts_jump;
                link.send_raw(400 + 20 * u64::from(i - 20), seq, ts, payload(i));
            }
            let out = link.pops(245, 20);
            // What was held of the old stream is dropped (frames 18 and
            // 19); the new one is prebuffered afresh from 400 ms.
            assert_eq!(out[..8], frames(10..18)[..], "jump {seq_jump} {ts_jump}");
            assert_eq!(out[8..10], ["S", "S"]);
            assert_eq!(out[10..], frames(20..30)[..]);
            assert_eq!(link.jb.stats().reanchored, 1);
        }
    }

    #[test]
    fn a_flood_of_random_packets_neither_panics_nor_grows() {
        let mut rng = Rng(0xDEAD_BEEF);
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let (mut now, mut next_pop) = (Duration::ZERO, Duration::ZERO);
        let (mut seq, mut ts) = (0u16, 0u32);
        for _ in 0..100_000 {
            let (s, t) = match rng.below(40) {
                // Garbage.
                0 => (rng.next() as u16, rng.next() as u32),
                // Near the stream: duplicates, late, far ahead.
                1..10 => (
                    seq.wrapping_add(rng.below(64) as u16).wrapping_sub(32),
                    ts.wrapping_add(rng.below(200_000) as u32)
                        .wrapping_sub(100_000),
                ),
                // The stream, with some loss and DTX, ±20 ms of jitter.
                _ => {
                    seq = seq.wrapping_add(1 + u16::from(rng.below(20) == 0));
                    let frames = 1 + u32::from(rng.below(20) == 0) * rng.below(4) as u32;
                    ts = ts.wrapping_add(FRAME_TICKS * frames);
                    now += Duration::from_millis(rng.below(40));
                    (seq, ts)
                }
            };
            let len = rng.below(6) as usize;
            jb.push(t0 + now, s, t, Bytes::from(vec![0xA5; len]));
            while next_pop <= now {
                let _ = jb.pop(t0 + next_pop);
                next_pop += FRAME;
            }
            assert!(jb.held_packets() <= CAPACITY);
            assert!(jb.buffered() <= Duration::from_secs(4) + FRAME);
            assert!((MIN_DELAY..=MAX_DELAY).contains(&jb.target_delay()));
        }
        // Every path was taken (overflow needs unaligned timestamps: see
        // the_held_packets_are_capped).
        let stats = jb.stats();
        let counters = [stats.played, stats.fec, stats.concealed, stats.late];
        let more = [
            stats.duplicates,
            stats.dropped_for_latency,
            stats.reanchored,
        ];
        assert!(counters.iter().chain(&more).all(|&c| c > 0), "{stats:?}");
    }

    #[test]
    fn twenty_seconds_of_a_lossy_jittery_path() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Both the sequence number and the timestamp wrap during the call.
        let mut link = Link::starting_at(65_000, u32::MAX - 200 * FRAME_TICKS);
        let mut delivered = [false; 1000];
        for i in 0..1000u32 {
            if rng.below(100) < 5 {
                continue; // 5 % loss
            }
            // 50 ms ± 30 ms, and now and then 45 ms more: reordering.
            let mut at = 20 * u64::from(i) + 20 + rng.below(61);
            if rng.below(100) < 3 {
                at += 45;
            }
            link.send(at, i);
            delivered[i as usize] = true;
        }
        let mut out = Vec::new();
        let mut late = Vec::new();
        for slot in 0..1000u64 {
            let ms = 7 + 20 * slot;
            for frame in link.deliver(ms) {
                // Late means its slot had passed.
                let playout = (link.jb.next_ts - i64::from(link.ts0)) / FRAME_I;
                assert!(
                    i64::from(frame) < playout,
                    "frame {frame} late at {playout}"
                );
                late.push(frame);
            }
            out.push(link.jb.pop(link.at(ms)));
        }
        let stats = link.jb.stats();
        let silent = out.iter().filter(|p| **p == Playout::Silence).count() as u64;
        assert_eq!(stats.played + stats.fec + stats.concealed + silent, 1000);
        assert_eq!(out.len(), 1000, "one decision per 20 ms slot");
        // Every frame that made its deadline is played once, in order.
        let played: Vec<u32> = out
            .iter()
            .filter_map(|p| match p {
                Playout::Packet(b) => Some(frame_of(b)),
                _ => None,
            })
            .collect();
        assert!(played.windows(2).all(|w| w[0] < w[1]));
        let last = *played.last().expect("something played");
        let unplayed: Vec<u32> = (played[0]..=last)
            .filter(|&f| delivered[f as usize] && !played.contains(&f) && !late.contains(&f))
            .collect();
        assert_eq!(
            unplayed.len() as u64,
            stats.dropped_for_latency,
            "{unplayed:?}"
        );
        // A lost frame whose successor was played was rebuilt from it.
        for (k, p) in out.iter().enumerate() {
            if let Playout::Packet(b) = p
                && frame_of(b) > played[0]
                && !delivered[frame_of(b) as usize - 1]
            {
                assert_eq!(
                    out[k - 1],
                    Playout::Fec(b.clone()),
                    "frame {}",
                    frame_of(b) - 1
                );
            }
        }
        let lost = delivered.iter().filter(|d| !**d).count() as u64;
        assert!(stats.fec >= lost * 3 / 4, "{stats:?}, {lost} lost");
        assert!(late.len() <= 10, "{late:?}");
        assert_eq!(stats.reanchored, 0);
    }
}

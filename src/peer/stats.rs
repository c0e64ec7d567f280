//! Media counters (atomics, cheap to read) and the once-a-second stats poll
//! that fills in round-trip time and loss from `get_stats()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use webrtc::peer_connection::{PeerConnection, RTCStatsReport, RTCStatsReportEntry, StatsSelector};

use super::{CandidateKind, Shared};

/// A snapshot of what a peer sent, received and decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct MediaStats {
    /// Opus RTP packets received.
    pub audio_packets_received: u64,
    /// Opus frames libopus decoded.
    pub audio_frames_decoded: u64,
    /// Lost Opus frames rebuilt from the next packet's in-band FEC.
    pub audio_frames_recovered: u64,
    /// Lost Opus frames the decoder had to conceal (no FEC to rebuild them).
    pub audio_frames_concealed: u64,
    /// What the playout jitter buffer holds back now, in milliseconds.
    pub audio_jitter_delay_ms: u64,
    /// Silent frames not sent thanks to Opus DTX.
    pub audio_frames_dtx: u64,
    /// VP8 frames libvpx decoded.
    pub video_frames_decoded: u64,
    /// Opus packets sent.
    pub audio_packets_sent: u64,
    /// VP8 frames sent.
    pub video_frames_sent: u64,
    /// VP8 bytes sent (payload, before packetisation).
    pub video_bytes_sent: u64,
    /// VP8 keyframes sent (the first, periodic ones, and those requested
    /// by PLI/FIR).
    pub video_keyframes_sent: u64,
    /// Round-trip time from RTCP or ICE, if known.
    pub rtt_ms: Option<f64>,
    /// Inbound RTP packets lost (all streams).
    pub packets_lost: u64,
    /// What the video encoder aims at now, kbit/s: it follows the loss the
    /// receiver reports (0 before video is sent).
    pub video_target_kbps: u64,
}

/// `rtt_us` value meaning "unknown".
const NO_RTT: u64 = u64::MAX;

/// The live counters behind [`MediaStats`].
#[derive(Debug)]
pub(super) struct Counters {
    pub audio_packets_received: AtomicU64,
    pub audio_frames_decoded: AtomicU64,
    pub audio_frames_recovered: AtomicU64,
    pub audio_frames_concealed: AtomicU64,
    pub audio_jitter_delay_ms: AtomicU64,
    pub audio_frames_dtx: AtomicU64,
    pub video_frames_decoded: AtomicU64,
    pub audio_packets_sent: AtomicU64,
    pub video_frames_sent: AtomicU64,
    pub video_bytes_sent: AtomicU64,
    pub video_keyframes_sent: AtomicU64,
    pub packets_lost: AtomicU64,
    pub video_target_kbps: AtomicU64,
    rtt_us: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            audio_packets_received: AtomicU64::new(0),
            audio_frames_decoded: AtomicU64::new(0),
            audio_frames_recovered: AtomicU64::new(0),
            audio_frames_concealed: AtomicU64::new(0),
            audio_jitter_delay_ms: AtomicU64::new(0),
            audio_frames_dtx: AtomicU64::new(0),
            video_frames_decoded: AtomicU64::new(0),
            audio_packets_sent: AtomicU64::new(0),
            video_frames_sent: AtomicU64::new(0),
            video_bytes_sent: AtomicU64::new(0),
            video_keyframes_sent: AtomicU64::new(0),
            packets_lost: AtomicU64::new(0),
            video_target_kbps: AtomicU64::new(0),
            rtt_us: AtomicU64::new(NO_RTT),
        }
    }
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> MediaStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rtt = get(&self.rtt_us);
        MediaStats {
            audio_packets_received: get(&self.audio_packets_received),
            audio_frames_decoded: get(&self.audio_frames_decoded),
            audio_frames_recovered: get(&self.audio_frames_recovered),
            audio_frames_concealed: get(&self.audio_frames_concealed),
            audio_jitter_delay_ms: get(&self.audio_jitter_delay_ms),
            audio_frames_dtx: get(&self.audio_frames_dtx),
            video_frames_decoded: get(&self.video_frames_decoded),
            audio_packets_sent: get(&self.audio_packets_sent),
            video_frames_sent: get(&self.video_frames_sent),
            video_bytes_sent: get(&self.video_bytes_sent),
            video_keyframes_sent: get(&self.video_keyframes_sent),
            rtt_ms: (rtt != NO_RTT).then(|| rtt as f64 / 1000.0),
            packets_lost: get(&self.packets_lost),
            video_target_kbps: get(&self.video_target_kbps),
        }
    }

    fn set_rtt(&self, rtt: Option<Duration>) {
        let us = rtt.map_or(NO_RTT, |d| {
            u64::try_from(d.as_micros()).unwrap_or(NO_RTT - 1)
        });
        self.rtt_us.store(us, Ordering::Relaxed);
    }
}

/// Candidate types of the selected pair, read from a stats report.
pub(super) fn selected_pair_kinds(
    report: &RTCStatsReport,
) -> Option<(CandidateKind, CandidateKind)> {
    let pair_id = &report.transport()?.selected_candidate_pair_id;
    let Some(RTCStatsReportEntry::IceCandidatePair(pair)) = report.get(pair_id) else {
        return None;
    };
    let kind = |id: &str| match report.get(id)? {
        RTCStatsReportEntry::LocalCandidate(c) | RTCStatsReportEntry::RemoteCandidate(c) => {
            CandidateKind::from_rtc(c.candidate_type)
        }
        _ => None,
    };
    Some((
        kind(&pair.local_candidate_id)?,
        kind(&pair.remote_candidate_id)?,
    ))
}

/// Round-trip time: RTCP receiver reports first (what the media sees), then
/// the ICE consent checks of the selected pair.
fn rtt(report: &RTCStatsReport) -> Option<Duration> {
    let rtcp = report
        .iter()
        .filter_map(|e| match e {
            RTCStatsReportEntry::RemoteInboundRtp(s)
                if s.round_trip_time_measurements > 0 && s.round_trip_time > 0.0 =>
            {
                Some(s.round_trip_time)
            }
            _ => None,
        })
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.min(v)))
        });
    let ice = || {
        let pair_id = &report.transport()?.selected_candidate_pair_id;
        match report.get(pair_id)? {
            RTCStatsReportEntry::IceCandidatePair(p) if p.current_round_trip_time > 0.0 => {
                Some(p.current_round_trip_time)
            }
            _ => None,
        }
    };
    rtcp.or_else(ice)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn packets_lost(report: &RTCStatsReport) -> u64 {
    report
        .inbound_rtp_streams()
        .map(|s| u64::try_from(s.received_rtp_stream_stats.packets_lost).unwrap_or(0))
        .sum()
}

/// Refreshes RTT and loss about once a second until the peer shuts down.
pub(super) async fn poll_loop(pc: Arc<dyn PeerConnection>, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
        if report.is_empty() {
            continue;
        }
        if let Some(rtt) = rtt(&report) {
            shared.counters.set_rtt(Some(rtt));
        }
        shared
            .counters
            .packets_lost
            .store(packets_lost(&report), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_is_none_until_measured() {
        let counters = Counters::default();
        assert_eq!(counters.snapshot().rtt_ms, None);
        counters.set_rtt(Some(Duration::from_micros(1500)));
        assert_eq!(counters.snapshot().rtt_ms, Some(1.5));
    }
}

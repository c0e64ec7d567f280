//! The video sender's bitrate follows what the network carries: the
//! loss-based half of Google Congestion Control (draft-ietf-rmcat-gcc-02,
//! §6), driven by the receiver's RTCP reports, and capped by a receiver
//! estimate (REMB) when the far side sends one.
//!
//! Pure: reports in, a target bitrate out. The sender applies the target to
//! the running VP8 encoder.

use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;

/// Loss above this fraction means congestion: back off.
const LOSS_HIGH: f64 = 0.10;
/// Loss below this fraction means room: probe upwards.
const LOSS_LOW: f64 = 0.02;
/// Growth per report without loss.
const GROWTH: f64 = 1.08;

/// The target bitrate of one video sender.
#[derive(Debug, Clone)]
pub struct RateController {
    kbps: f64,
    min_kbps: f64,
    max_kbps: f64,
    /// The receiver's own estimate, if it sent one.
    remb_kbps: Option<f64>,
}

impl RateController {
    /// Starts at `max_kbps` (what the resolution is configured for) and
    /// never leaves `min_kbps..=max_kbps`.
    pub fn new(min_kbps: u32, max_kbps: u32) -> RateController {
        let max = f64::from(max_kbps.max(min_kbps));
        RateController {
            kbps: max,
            min_kbps: f64::from(min_kbps),
            max_kbps: max,
            remb_kbps: None,
        }
    }

    /// The current target in kbit/s.
    pub fn target_kbps(&self) -> u32 {
        let cap = self.remb_kbps.unwrap_or(self.max_kbps).min(self.max_kbps);
        self.kbps.min(cap).max(self.min_kbps).round() as u32
    }

    /// A receiver report: `fraction_lost` of our packets (0..=1) went
    /// missing since the previous one.
    pub fn on_loss(&mut self, fraction_lost: f64) {
        let loss = fraction_lost.clamp(0.0, 1.0);
        if loss > LOSS_HIGH {
            self.kbps *= 1.0 - 0.5 * loss;
        } else if loss < LOSS_LOW {
            self.kbps *= GROWTH;
        }
        self.kbps = self.kbps.clamp(self.min_kbps, self.max_kbps);
    }

    /// A receiver estimate of the maximum bitrate (REMB), in bit/s.
    pub fn on_estimate(&mut self, bps: f64) {
        if bps.is_finite() && bps > 0.0 {
            self.remb_kbps = Some(bps / 1000.0);
        }
    }

    /// Applies whatever congestion feedback `packet` carries.
    pub fn on_rtcp(&mut self, packet: &dyn rtc::rtcp::Packet) {
        if let Some(loss) = fraction_lost(packet) {
            self.on_loss(loss);
        }
        if let Some(remb) = packet
            .as_any()
            .downcast_ref::<ReceiverEstimatedMaximumBitrate>()
        {
            self.on_estimate(f64::from(remb.bitrate));
        }
    }
}

/// Whether an RTCP packet carries congestion feedback for a sender.
pub fn is_feedback(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<ReceiverReport>()
        || any.is::<SenderReport>()
        || any.is::<ReceiverEstimatedMaximumBitrate>()
}

/// The worst loss fraction among the report blocks of a receiver or sender
/// report. Blocks about the other streams count too: the streams of a call
/// share one path (bundled on one transport), and loss on any of them is
/// loss on that path. Acting on our own stream's blocks only let a sender
/// whose packets happened to get through keep its rate while the other
/// direction starved on a shared bottleneck (tests/congestion.rs).
pub fn fraction_lost(packet: &dyn rtc::rtcp::Packet) -> Option<f64> {
    let any = packet.as_any();
    let reports = if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
        &rr.reports
    } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
        &sr.reports
    } else {
        return None;
    };
    reports
        .iter()
        .map(|r| f64::from(r.fraction_lost) / 256.0)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::reception_report::ReceptionReport;

    fn rr(fraction_lost: u8) -> ReceiverReport {
        ReceiverReport {
            reports: vec![ReceptionReport {
                fraction_lost,
                ..ReceptionReport::default()
            }],
            ..ReceiverReport::default()
        }
    }

    #[test]
    fn heavy_loss_backs_off_and_clean_reports_climb_back() {
        let mut c = RateController::new(100, 1000);
        assert_eq!(c.target_kbps(), 1000);
        // 25 % loss: 1000 × (1 − 0.125).
        c.on_rtcp(&rr(64));
        assert_eq!(c.target_kbps(), 875);
        for _ in 0..20 {
            c.on_rtcp(&rr(128));
        }
        assert_eq!(c.target_kbps(), 100, "floor");
        // Moderate loss holds.
        c.on_loss(0.05);
        assert_eq!(c.target_kbps(), 100);
        // Clean reports: +8 % each, up to the ceiling.
        c.on_rtcp(&rr(0));
        assert_eq!(c.target_kbps(), 108);
        for _ in 0..60 {
            c.on_rtcp(&rr(0));
        }
        assert_eq!(c.target_kbps(), 1000, "ceiling");
    }

    #[test]
    fn a_receiver_estimate_caps_the_target() {
        let mut c = RateController::new(100, 1000);
        let remb = ReceiverEstimatedMaximumBitrate {
            bitrate: 300_000.0,
            ..ReceiverEstimatedMaximumBitrate::default()
        };
        assert!(is_feedback(&remb));
        c.on_rtcp(&remb);
        assert_eq!(c.target_kbps(), 300);
        c.on_estimate(5_000_000.0);
        assert_eq!(c.target_kbps(), 1000);
        c.on_estimate(f64::NAN);
        assert_eq!(c.target_kbps(), 1000);
    }

    #[test]
    fn the_worst_block_counts_and_other_packets_are_ignored() {
        let mut c = RateController::new(100, 1000);
        let mut report = rr(0);
        report.reports.push(ReceptionReport {
            fraction_lost: 128,
            ..ReceptionReport::default()
        });
        c.on_rtcp(&report);
        assert_eq!(c.target_kbps(), 750);
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        };
        assert!(!is_feedback(&pli));
        c.on_rtcp(&pli);
        assert_eq!(c.target_kbps(), 750);
    }
}

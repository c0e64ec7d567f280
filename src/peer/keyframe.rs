//! Lets keyframe requests (PLI, FIR) and congestion feedback (receiver and
//! sender reports, REMB) from the remote reach our senders.
//!
//! On `webrtc` 0.21's default interceptor chain, inbound RTCP stops at the
//! end of the chain and `TrackLocal::poll` never yields anything. This
//! interceptor, placed last, marks those packets with
//! `DeliverToApplication` and drops all other inbound RTCP (the interceptors
//! before it have already acted on it). Modelled on the crate's
//! `rtcp-processing` example.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// Where the forwarder sits: after every default interceptor (they use
/// slots up to a few thousand, spaced a thousand apart).
pub(super) const SLOT: usize = 14_000;

/// Whether an RTCP packet asks for a keyframe.
pub(super) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// The interceptor; see the module documentation.
#[derive(Default)]
pub(super) struct KeyframeRequestForwarder {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl KeyframeRequestForwarder {
    pub(super) fn slot() -> Slot {
        Slot::from(SLOT)
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    is_keyframe_request(p.as_ref()) || super::congestion::is_feedback(p.as_ref())
                })
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pli_and_fir_are_keyframe_requests_receiver_reports_are_not() {
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 2,
        };
        assert!(is_keyframe_request(&pli));
        let fir = FullIntraRequest::default();
        assert!(is_keyframe_request(&fir));
        let rr = rtc::rtcp::receiver_report::ReceiverReport::default();
        assert!(!is_keyframe_request(&rr));
    }
}

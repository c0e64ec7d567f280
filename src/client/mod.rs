//! The native side of a consultation: the doctor API client and the call
//! agent that joins a seat, seals every signalling payload end to end and
//! drives the native WebRTC peer.
//!
//! The headless doctor (`telenode doctor --headless`) is a thin printer of
//! [`AgentEvent`]s; tests use the same agent as a native patient.

mod agent;
mod api;
mod trust;

pub use agent::{AgentEvent, CallAgent, CallOptions, EndCause, Seat};
pub use api::{
    ApiClient, ConsultationInfo, HttpError, PatientLink, SessionHandle, TOTP_SECRET_ENV,
    parse_link, sign_in, ws_url,
};
pub use trust::Trust;

/// The next message of a channel that may be absent; an absent one never
/// yields (for `tokio::select!` arms).
pub(crate) async fn recv_opt<T>(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<T>>,
) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

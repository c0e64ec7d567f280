//! telenode's signalling protocol, pure and I/O-free. See `docs/PROTOCOL.md`.
//!
//! - [`msg`]: wire messages (JSON, versioned) and their codec.
//! - [`seal`]: the end-to-end sealed envelope and its key derivation.
//! - [`creds`]: join tokens, TURN REST credentials, constant-time comparison.
//! - [`sas`]: the short authentication string read aloud by both peers.
//! - [`room`]: the consultation state machine (sans-IO: feed inputs, drain
//!   outputs, time passed in).
//!
//! Nothing here touches a socket, a clock or a random number generator:
//! time and randomness are passed in by the runtime.

pub mod creds;
pub mod msg;
pub mod room;
pub mod sas;
pub mod seal;

#[doc(hidden)]
pub mod fuzzing;

//! telenode's TURN relay core, pure and I/O-free (RFC 8656 over RFC 8489).
//!
//! - [`stun`]: STUN/TURN message codec and ChannelData framing, borrowing
//!   and allocation-free on the relay's hot path.
//! - [`policy`]: which peer addresses may be relayed to (deny by default).
//! - [`server`]: the TURN server state machine: authentication, allocation,
//!   permission and channel tables with lifetimes, quotas.
//!
//! Nothing here touches a socket, a clock or a random number generator:
//! time and randomness are passed in by the runtime (`src/turn/` in the
//! `telenode` crate).

pub mod policy;
pub mod server;
pub mod stun;

#[doc(hidden)]
pub mod fuzzing;

pub use policy::{Cidr, PeerPolicy};
pub use server::{
    AllocId, ClientAction, FiveTuple, Now, Output, PendingAllocation, Quotas, Server, ServerConfig,
    Transport,
};

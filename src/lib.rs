//! The telenode runtime: node server, metadata store, native peer, doctor client.
//!
//! What decides lives in `telenode-signaling` (pure); this crate does the I/O.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod doctor;
pub mod peer;
pub mod secret_file;
pub mod server;
pub mod store;
pub mod totp;
pub mod turn;

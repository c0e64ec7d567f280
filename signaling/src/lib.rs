//! telenode's signalling protocol, pure and I/O-free. See `docs/PROTOCOL.md`.

//! The telenode runtime: node server, metadata store, native peer, doctor client.

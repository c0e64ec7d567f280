//! Fuzz target `decode_client`: see `telenode_signaling::fuzzing::decode_client` for the
//! properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    telenode_signaling::fuzzing::decode_client(data);
});

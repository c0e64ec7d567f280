//! Fuzz target `decode_server`: see `telenode_signaling::fuzzing::decode_server` for the
//! properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    telenode_signaling::fuzzing::decode_server(data);
});

//! Fuzz target `open_envelope`: see `telenode_signaling::fuzzing::open_envelope` for the
//! properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    telenode_signaling::fuzzing::open_envelope(data);
});

//! Fuzz target `room`: see `telenode_signaling::fuzzing::room` for the
//! properties checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    telenode_signaling::fuzzing::room(data);
});

//! Fuzz target `server`: see `telenode_turn::fuzzing::server` for the properties
//! checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = telenode_turn::fuzzing::server(data);
});

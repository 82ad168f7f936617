//! Fuzz target `crops_message`: the `ddfr-protocol` crops parser and its validation, then every
//! crop decoded and checked against its declared size as the server does before using it.
//!
//! The logic is `ddfr_server::fuzzing::crops_message`, which the stable corpus replay test shares.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ddfr_server::fuzzing::crops_message(data);
});

//! Fuzz target `decode_frame`: a `/ws` binary message. A crops message, or a frame through
//! magic-byte sniffing, the byte, JPEG-scan and header-dimension checks and the decoder, under
//! the server's frame limits.
//!
//! The logic is `ddfr_server::fuzzing::decode_frame`, which the stable corpus replay test shares.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ddfr_server::fuzzing::decode_frame(data);
});

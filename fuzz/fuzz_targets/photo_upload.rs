//! Fuzz target `photo_upload`: a REST photo. The upload's format and size check and the decode
//! under the server's photo limits (EXIF orientation applied); refusals must be 413, 415 or 422.
//!
//! The logic is `ddfr_server::fuzzing::photo_upload`, which the stable corpus replay test shares.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ddfr_server::fuzzing::photo_upload(data);
});

//! Turning untrusted bytes into RGB pixels, safely.
//!
//! Only JPEG, PNG and WebP are accepted, recognised by their magic bytes before any decoder
//! runs; the declared dimensions are read from the header and checked (each side and the
//! pixel budget) before pixels are allocated; the decoder itself runs under `image`'s
//! allocation limits; a JPEG's scan count is capped; and the decoder reads its input through a
//! [`DeadlineReader`] that fails the decode once the per-decode time bound has passed.
//!
//! Decode time is bounded twice: by the work caps (pixels × scans: a JPEG decoder's work is
//! proportional to both, and JPEG decoders read their whole input before decoding), and by the
//! deadline, which interrupts the streaming decoders (PNG, lossy and lossless WebP) between two
//! reads of input — so a compressed stream that inflates slowly cannot hold a worker past it.

use std::io::{BufRead, Cursor, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::EngineError;

/// The formats ddfr decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
    Png,
    /// WebP (`RIFF????WEBP`).
    WebP,
}

impl FrameFormat {
    fn image_format(self) -> ImageFormat {
        match self {
            FrameFormat::Jpeg => ImageFormat::Jpeg,
            FrameFormat::Png => ImageFormat::Png,
            FrameFormat::WebP => ImageFormat::WebP,
        }
    }
}

/// Recognises JPEG, PNG and WebP by their magic bytes; anything else is `None`.
pub fn sniff_format(bytes: &[u8]) -> Option<FrameFormat> {
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(FrameFormat::Jpeg)
    } else if bytes.starts_with(PNG_MAGIC) {
        Some(FrameFormat::Png)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(FrameFormat::WebP)
    } else {
        None
    }
}

/// Limits applied to one decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Largest accepted declared width, in pixels.
    pub max_width: u32,
    /// Largest accepted declared height, in pixels.
    pub max_height: u32,
    /// Whether to apply the EXIF orientation (photos: yes; camera frames carry none).
    pub apply_orientation: bool,
    /// Most scans (start-of-scan markers) a JPEG may have: a baseline JPEG has one, a
    /// progressive one about ten; hundreds are a decode-time bomb.
    pub max_jpeg_scans: u32,
    /// Most declared pixels (`width * height`): the decoder's memory and time grow with it.
    pub max_pixels: u64,
    /// How long one decode may take before it is abandoned (see the module doc); `None`: no
    /// bound beyond the work caps.
    pub max_decode_time: Option<Duration>,
}

/// Bytes per decoded pixel the decoder may hold at most (RGBA f32 would be 16; 8 covers RGBA16).
const DECODER_BYTES_PER_PIXEL: u64 = 8;

impl DecodeLimits {
    /// Live frames on `/ws` (the server's defaults; `DDFR_WS_MAX_MESSAGE_BYTES`,
    /// `DDFR_MAX_FRAME_SIDE`, `DDFR_MAX_FRAME_PIXELS` and `DDFR_MAX_DECODE_MS` change them):
    /// up to 8 MiB — a 1920×1080 PNG (≤ 6.3 MB even of pure noise) or a 3840×2160 JPEG —, 4096
    /// pixels a side in either orientation and 4096×2304 pixels (UHD and DCI 4K), decoded in at
    /// most one second.
    pub const FRAME: DecodeLimits = DecodeLimits {
        max_bytes: 8 * 1024 * 1024,
        max_width: 4096,
        max_height: 4096,
        apply_orientation: false,
        max_jpeg_scans: 20,
        max_pixels: 4096 * 2304,
        max_decode_time: Some(Duration::from_secs(1)),
    };

    /// Enrollment and one-shot photos: up to 10 MiB and 4096×4096, decoded in at most two
    /// seconds.
    pub const PHOTO: DecodeLimits = DecodeLimits {
        max_bytes: 10 * 1024 * 1024,
        max_width: 4096,
        max_height: 4096,
        apply_orientation: true,
        max_jpeg_scans: 64,
        max_pixels: 4096 * 4096,
        max_decode_time: Some(Duration::from_secs(2)),
    };

    fn decoder_limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_pixels.saturating_mul(DECODER_BYTES_PER_PIXEL));
        limits
    }
}

/// The input of one decode: a cursor over the bytes that fails every read once `deadline` has
/// passed, which makes the decoder give up (the error is then reported as
/// [`EngineError::DecodeTimeout`]).
#[derive(Debug)]
pub struct DeadlineReader<'a> {
    inner: Cursor<&'a [u8]>,
    deadline: Option<Instant>,
}

impl<'a> DeadlineReader<'a> {
    /// Reads `bytes` until `deadline` (never fails for time with `None`).
    pub fn new(bytes: &'a [u8], deadline: Option<Instant>) -> Self {
        Self { inner: Cursor::new(bytes), deadline }
    }

    fn check(&self) -> std::io::Result<()> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "decode deadline passed"))
            }
            _ => Ok(()),
        }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.check().is_err()
    }
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl BufRead for DeadlineReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.check()?;
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

impl Seek for DeadlineReader<'_> {
    fn seek(&mut self, position: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(position)
    }
}

/// Counts start-of-scan markers (`FF DA`) in a JPEG, stopping once past `limit`. Entropy-coded
/// data stuffs every `FF` byte as `FF 00`, so `FF DA` only occurs as a marker (or inside an
/// embedded thumbnail, which then counts too).
fn count_jpeg_scans(bytes: &[u8], limit: u32) -> u32 {
    let mut scans = 0u32;
    for pair in bytes.windows(2) {
        if pair == [0xFF, 0xDA] {
            scans += 1;
            if scans > limit {
                break;
            }
        }
    }
    scans
}

/// Decodes `bytes` into 8-bit RGB after checking format, size, JPEG scan count and declared
/// dimensions.
pub fn decode_image(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, EngineError> {
    if bytes.len() > limits.max_bytes {
        return Err(EngineError::TooLarge { bytes: bytes.len(), limit: limits.max_bytes });
    }
    let format = sniff_format(bytes).ok_or(EngineError::UnsupportedFormat)?;
    if format == FrameFormat::Jpeg {
        let scans = count_jpeg_scans(bytes, limits.max_jpeg_scans);
        if scans > limits.max_jpeg_scans {
            return Err(EngineError::TooManyScans { scans, limit: limits.max_jpeg_scans });
        }
    }
    let (width, height) = declared_dimensions(bytes, format)?;
    if width > limits.max_width || height > limits.max_height || width == 0 || height == 0 {
        return Err(EngineError::DimensionsTooLarge {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(EngineError::TooManyPixels { width, height, pixels, limit: limits.max_pixels });
    }
    let deadline = deadline_after(limits.max_decode_time);
    let timed_out = |source: image::ImageError| match limits.max_decode_time {
        Some(bound) if deadline.is_some_and(|d| Instant::now() >= d) => {
            EngineError::DecodeTimeout {
                limit_ms: u64::try_from(bound.as_millis()).unwrap_or(u64::MAX),
            }
        }
        _ => EngineError::Decode { source },
    };
    let mut reader =
        ImageReader::with_format(DeadlineReader::new(bytes, deadline), format.image_format());
    reader.limits(limits.decoder_limits());
    let mut decoder = reader.into_decoder().map_err(timed_out)?;
    let orientation = if limits.apply_orientation { decoder.orientation().ok() } else { None };
    let mut image = DynamicImage::from_decoder(decoder).map_err(timed_out)?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    })
}

/// When a decode bounded by `bound` must end. `wasm32-unknown-unknown` has no clock in `std`
/// (`Instant::now` panics there): in the browser the bound is not enforced, the work caps are.
#[cfg(not(target_arch = "wasm32"))]
fn deadline_after(bound: Option<Duration>) -> Option<Instant> {
    bound.map(|bound| Instant::now() + bound)
}

#[cfg(target_arch = "wasm32")]
fn deadline_after(_bound: Option<Duration>) -> Option<Instant> {
    None
}

/// Reads only the header to learn the declared dimensions.
pub fn declared_dimensions(bytes: &[u8], format: FrameFormat) -> Result<(u32, u32), EngineError> {
    ImageReader::with_format(Cursor::new(bytes), format.image_format())
        .into_dimensions()
        .map_err(|source| EngineError::Decode { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb};
    use proptest::prelude::*;

    fn encode(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let img: RgbImage = ImageBuffer::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img).write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_the_three_formats() {
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            let bytes = encode(format, 33, 17);
            let img = decode_image(&bytes, &DecodeLimits::FRAME).unwrap();
            assert_eq!(img.dimensions(), (33, 17), "{format:?}");
        }
    }

    #[test]
    fn jpegs_with_too_many_scans_are_refused_before_decoding() {
        // A baseline JPEG has one scan and decodes.
        let baseline = encode(ImageFormat::Jpeg, 40, 30);
        assert_eq!(count_jpeg_scans(&baseline, 100), 1);
        assert!(decode_image(&baseline, &DecodeLimits::FRAME).is_ok());
        // 500 start-of-scan segments: refused at once, whatever follows.
        let mut bomb = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02];
        for _ in 0..500 {
            bomb.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34]);
        }
        let started = std::time::Instant::now();
        match decode_image(&bomb, &DecodeLimits::FRAME) {
            Err(EngineError::TooManyScans { scans, limit }) => {
                assert_eq!(limit, 20);
                assert_eq!(scans, 21, "counting stops past the limit");
            }
            other => panic!("expected TooManyScans, got {other:?}"),
        }
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        // Photos allow more (progressive photos from phones), still not hundreds.
        assert!(matches!(
            decode_image(&bomb, &DecodeLimits::PHOTO),
            Err(EngineError::TooManyScans { limit: 64, .. })
        ));
        // Stuffed bytes (FF 00) and other markers are not scans.
        assert_eq!(count_jpeg_scans(&[0xFF, 0x00, 0xDA, 0xFF, 0xD9, 0xFF, 0xDA], 10), 1);
    }

    #[test]
    fn rejects_other_formats_by_magic() {
        for prefix in [&b"GIF89a"[..], b"BM", b"II*\0", b"P6\n", b"%PDF-1.4", b"<svg", b""] {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(&[0u8; 64]);
            assert!(matches!(
                decode_image(&bytes, &DecodeLimits::FRAME),
                Err(EngineError::UnsupportedFormat)
            ));
        }
    }

    #[test]
    fn rejects_absurd_declared_dimensions_before_decoding() {
        // A PNG header declaring 50000x50000 followed by nothing: must fail fast, no allocation.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&50_000u32.to_be_bytes());
        png.extend_from_slice(&50_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let crc = crc32(&png[12..29]);
        png.extend_from_slice(&crc.to_be_bytes());
        // A tiny (empty) IDAT and IEND, so the header parses completely.
        for chunk in [&b"IDAT"[..], b"IEND"] {
            png.extend_from_slice(&0u32.to_be_bytes());
            png.extend_from_slice(chunk);
            png.extend_from_slice(&crc32(chunk).to_be_bytes());
        }
        let started = std::time::Instant::now();
        let err = decode_image(&png, &DecodeLimits::PHOTO).unwrap_err();
        assert!(matches!(err, EngineError::DimensionsTooLarge { width: 50_000, .. }), "{err:?}");
        assert!(started.elapsed() < std::time::Duration::from_millis(50));

        // A JPEG SOF0 declaring 65000x65000.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFD, 0xE8, 0xFD, 0xE8, 0x03, 0x01, 0x22,
            0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9,
        ];
        let err = decode_image(&jpeg, &DecodeLimits::PHOTO).unwrap_err();
        assert!(
            matches!(err, EngineError::DimensionsTooLarge { .. } | EngineError::Decode { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn the_pixel_budget_refuses_frames_whose_sides_each_pass() {
        let limits = DecodeLimits { max_pixels: 64 * 64, ..DecodeLimits::FRAME };
        assert!(decode_image(&encode(ImageFormat::Png, 64, 64), &limits).is_ok());
        let err = decode_image(&encode(ImageFormat::Png, 65, 64), &limits).unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::TooManyPixels { width: 65, height: 64, pixels: 4160, limit: 4096 }
            ),
            "{err:?}"
        );
        // The default frame limits take a UHD 4K frame and refuse one pixel row more than DCI.
        let uhd = encode(ImageFormat::Png, 3840, 2160);
        assert_eq!(decode_image(&uhd, &DecodeLimits::FRAME).unwrap().dimensions(), (3840, 2160));
        const { assert!(4096 * 2305 > DecodeLimits::FRAME.max_pixels) };
    }

    #[test]
    fn a_decode_past_its_deadline_is_abandoned() {
        // A PNG large enough to take more than a millisecond, with a bound of zero: the
        // streaming decoder's first read of image data fails.
        let bytes = encode(ImageFormat::Png, 1024, 768);
        let limits = DecodeLimits {
            max_decode_time: Some(std::time::Duration::ZERO),
            ..DecodeLimits::FRAME
        };
        let err = decode_image(&bytes, &limits).unwrap_err();
        assert!(matches!(err, EngineError::DecodeTimeout { limit_ms: 0 }), "{err:?}");
        // Without a bound, or with a generous one, the same bytes decode.
        let generous =
            DecodeLimits { max_decode_time: Some(std::time::Duration::from_secs(30)), ..limits };
        assert_eq!(decode_image(&bytes, &generous).unwrap().dimensions(), (1024, 768));
        let unbounded = DecodeLimits { max_decode_time: None, ..limits };
        assert!(decode_image(&bytes, &unbounded).is_ok());
        let mut reader = DeadlineReader::new(&bytes, Some(std::time::Instant::now()));
        assert!(reader.expired());
        assert!(reader.read(&mut [0u8; 4]).is_err());
    }

    #[test]
    fn rejects_oversized_input_by_bytes() {
        let bytes = vec![0xFFu8; DecodeLimits::FRAME.max_bytes + 1];
        assert!(matches!(
            decode_image(&bytes, &DecodeLimits::FRAME),
            Err(EngineError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            let bytes = encode(format, 64, 48);
            for cut in (0..bytes.len()).step_by(7) {
                let _ = decode_image(&bytes[..cut], &DecodeLimits::FRAME);
            }
        }
    }

    proptest! {
        #[test]
        fn mutated_images_never_panic(flips in prop::collection::vec((0usize..4096, any::<u8>()), 1..16), which in 0usize..3) {
            let format = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP][which];
            let mut bytes = encode(format, 40, 30);
            for (pos, val) in flips {
                let len = bytes.len();
                bytes[pos % len] = val;
            }
            let _ = decode_image(&bytes, &DecodeLimits::FRAME);
        }
    }

    /// PNG chunk CRC (IEEE), for building the hostile header above.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}

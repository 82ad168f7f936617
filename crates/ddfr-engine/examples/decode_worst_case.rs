//! Worst-case decode times under the decode caps (reliability IV-4): for frames
//! ([`DecodeLimits::FRAME`]) and photos ([`DecodeLimits::PHOTO`]), the largest images the
//! byte, pixel and scan caps let through, in each format, timed through `decode_image`.
//!
//! ```sh
//! cargo run --release -p ddfr-engine --example decode_worst_case [-- <runs>]
//! ```
//!
//! Cases (all made here, nothing read from disk):
//! - JPEG baseline, 4:4:4, pseudo-random pixels at the highest quality that fits the byte cap
//!   (the most entropy-coded data the cap allows);
//! - JPEG baseline, one flat colour: a small file that still costs a full-size IDCT;
//! - JPEG progressive with the most scans the cap allows (4:4:4, spectral selection: one DC
//!   scan and AC bands per component);
//! - PNG 16-bit RGBA, Adam7-interlaced, every row Paeth-filtered, all-zero residuals: about
//!   1/1000 of its decoded size on the wire, and the most bytes per pixel a PNG decodes to;
//! - WebP lossless of a textured image.
//!
//! Prints one line per case: bytes on the wire, scans, declared size, and the median and
//! maximum decode time over the runs (default 3), or the refusal.

use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use ddfr_engine::decode::{DecodeLimits, decode_image};
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, RgbImage};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A deterministic xorshift generator, so runs compare.
struct Noise(u64);

impl Noise {
    fn next_byte(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u8
    }
}

fn noise_image(side: u32) -> RgbImage {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    ImageBuffer::from_fn(side, side, |_, _| {
        Rgb([noise.next_byte(), noise.next_byte(), noise.next_byte()])
    })
}

/// Smooth gradients with fine texture: compresses, yet every block has AC energy.
fn textured_image(side: u32) -> RgbImage {
    let mut noise = Noise(42);
    ImageBuffer::from_fn(side, side, |x, y| {
        let n = noise.next_byte() / 16;
        Rgb([(x / 16) as u8 ^ n, (y / 16) as u8 ^ n, ((x + y) / 32) as u8 ^ n])
    })
}

fn jpeg(image: &RgbImage, quality: u8, progressive_scans: Option<u8>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    // 4:4:4 whatever the quality: the most blocks per pixel.
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::R_4_4_4);
    if let Some(scans) = progressive_scans {
        encoder.set_progressive_scans(scans);
    }
    let (w, h) = image.dimensions();
    encoder.encode(
        image.as_raw(),
        u16::try_from(w)?,
        u16::try_from(h)?,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

/// Baseline noise at the highest quality that fits `max_bytes`.
fn noisy_jpeg_within(side: u32, max_bytes: usize) -> Result<Vec<u8>> {
    let image = noise_image(side);
    for quality in [100u8, 95, 90, 80, 70, 60, 50, 40, 30, 20, 10] {
        let bytes = jpeg(&image, quality, None)?;
        if bytes.len() <= max_bytes {
            return Ok(bytes);
        }
    }
    Err("no quality fits the byte cap".into())
}

/// PNG chunk CRC (IEEE CRC-32, as zlib computes it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) -> Result<()> {
    out.extend_from_slice(&u32::try_from(data.len())?.to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    Ok(())
}

/// A `side`×`side` RGBA16 Adam7 PNG: each pass row is a Paeth filter byte and zero residuals.
fn interlaced_png(side: u32) -> Result<Vec<u8>> {
    const BYTES_PER_PIXEL: usize = 8;
    // (x0, y0, dx, dy) of the seven Adam7 passes.
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for (x0, y0, dx, dy) in PASSES {
        let (w, h) = (side.saturating_sub(x0).div_ceil(dx), side.saturating_sub(y0).div_ceil(dy));
        if w == 0 || h == 0 {
            continue;
        }
        let mut row = vec![0u8; 1 + w as usize * BYTES_PER_PIXEL];
        row[0] = 4;
        for _ in 0..h {
            zlib.write_all(&row)?;
        }
    }
    let idat = zlib.finish()?;
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = side.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 1]); // 16-bit RGBA, deflate, adaptive, Adam7
    png_chunk(&mut png, b"IHDR", &ihdr)?;
    png_chunk(&mut png, b"IDAT", &idat)?;
    png_chunk(&mut png, b"IEND", &[])?;
    Ok(png)
}

fn webp(image: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image.clone()).write_to(&mut out, ImageFormat::WebP)?;
    Ok(out.into_inner())
}

fn scans(bytes: &[u8]) -> usize {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        bytes.windows(2).filter(|pair| *pair == [0xFF, 0xDA]).count()
    } else {
        0
    }
}

fn time(name: &str, bytes: &[u8], limits: &DecodeLimits, runs: usize) {
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut outcome = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        let result = decode_image(bytes, limits);
        times.push(started.elapsed());
        outcome = match result {
            Ok(image) => format!("{}x{}", image.width(), image.height()),
            Err(error) => format!("refused: {error}"),
        };
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{name:<44} {:>9} B {:>3} scans  {outcome:<40} median {:>7.1} ms  max {:>7.1} ms",
            bytes.len(),
            scans(bytes),
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
        );
    }
}

fn main() -> Result<()> {
    let runs = std::env::args().nth(1).map(|n| n.parse()).transpose()?.unwrap_or(3usize);
    for (label, limits) in [("frame", DecodeLimits::FRAME), ("photo", DecodeLimits::PHOTO)] {
        let side = limits.max_width.min(limits.max_height);
        // Scans per component: 3 components, one DC scan each, the rest AC bands.
        let per_component = u8::try_from(limits.max_jpeg_scans / 3)?.clamp(2, 64);
        let textured = textured_image(side);
        let flat = ImageBuffer::from_pixel(side, side, Rgb([90u8, 120, 200]));
        let cases: Vec<(String, Vec<u8>)> = vec![
            (
                format!("{label} jpeg baseline noise {side}²"),
                noisy_jpeg_within(side, limits.max_bytes)?,
            ),
            (format!("{label} jpeg baseline flat {side}²"), jpeg(&flat, 100, None)?),
            (
                format!("{label} jpeg progressive {side}² q95"),
                jpeg(&textured, 95, Some(per_component))?,
            ),
            (
                format!("{label} jpeg progressive flat {side}²"),
                jpeg(&flat, 100, Some(per_component))?,
            ),
            (format!("{label} png rgba16 adam7 paeth {side}²"), interlaced_png(side)?),
            (format!("{label} webp lossless textured {side}²"), webp(&textured)?),
        ];
        for (name, bytes) in cases {
            time(&name, &bytes, &limits, runs);
        }
    }
    Ok(())
}

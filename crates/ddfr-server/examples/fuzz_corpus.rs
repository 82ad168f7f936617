//! Writes the seed corpus of the `cargo fuzz` targets: small valid and edge-case inputs made
//! here (tiny JPEG/PNG/WebP from the `image` crate, progressive JPEG from `jpeg-encoder`, crops
//! messages, truncated and hostile headers), never copies of test photos.
//!
//! ```sh
//! cargo run -p ddfr-server --example fuzz_corpus            # writes fuzz/corpus/<target>/
//! cargo run -p ddfr-server --example fuzz_corpus -- <dir>   # somewhere else
//! ```
//!
//! Seeds are named `ok-*` (the target must accept them) or `err-*` (it must refuse them); the
//! replay test in `src/fuzzing.rs` checks both. Other files in the corpus (regression inputs
//! that fuzzing found) are left alone.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ddfr_core::{BoundingBox, LandmarkScheme, Landmarks, Point};
use ddfr_protocol::{CropEncoding, CropRegion, CropsMessage, FaceCrop, encode_crops_message};
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, RgbImage, Rgba};

fn pattern(width: u32, height: u32) -> RgbImage {
    ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([(x * 37 + y * 11) as u8, (y * 23) as u8, ((x ^ y) * 5) as u8])
    })
}

fn encode(image: DynamicImage, format: ImageFormat) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format)?;
    Ok(out.into_inner())
}

fn rgb(width: u32, height: u32, format: ImageFormat) -> Result<Vec<u8>> {
    encode(DynamicImage::ImageRgb8(pattern(width, height)), format)
}

/// A progressive JPEG with `scans_per_component` scans per colour component (one DC scan and
/// the rest spectral bands of the AC coefficients): 3 × that many start-of-scan markers.
fn progressive_jpeg(width: u32, height: u32, scans_per_component: u8) -> Result<Vec<u8>> {
    let image = pattern(width, height);
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 85);
    encoder.set_progressive_scans(scans_per_component);
    encoder.encode(
        image.as_raw(),
        u16::try_from(width)?,
        u16::try_from(height)?,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

/// A baseline JPEG with an EXIF APP1 segment saying "rotate 90° clockwise" (orientation 6).
fn jpeg_with_exif_orientation() -> Result<Vec<u8>> {
    let jpeg = rgb(33, 17, ImageFormat::Jpeg)?;
    // TIFF header (big-endian), one IFD entry: 0x0112 Orientation, SHORT, 1 value: 6.
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    exif.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0x00, 0x06, 0, 0]);
    exif.extend_from_slice(&[0, 0, 0, 0]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(exif.len() + 2)?.to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    Ok(out)
}

/// PNG chunk CRC (IEEE CRC-32, as zlib computes it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

/// A PNG whose header declares `width`×`height` RGB pixels, followed by an empty IDAT.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for chunk in [ihdr, b"IDAT".to_vec(), b"IEND".to_vec()] {
        png.extend_from_slice(&u32::try_from(chunk.len() - 4).unwrap_or(0).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

/// A JPEG SOF0 declaring 65000×65000 pixels and nothing else.
fn jpeg_sof_huge() -> Vec<u8> {
    vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFD, 0xE8, 0xFD, 0xE8, 0x03, 0x01, 0x22, 0x00,
        0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9,
    ]
}

/// A JPEG with 500 start-of-scan segments (a decode-time bomb).
fn jpeg_scan_bomb() -> Vec<u8> {
    let mut bomb = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02];
    for _ in 0..500 {
        bomb.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34]);
    }
    bomb
}

fn half(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

/// One crop of `width`×`height` pixels cut from the frame rectangle at (`left`, `top`) of the
/// same size, encoded as `encoding`.
fn crop(left: f32, top: f32, width: u32, height: u32, encoding: CropEncoding) -> Result<FaceCrop> {
    let pixels = pattern(width, height);
    let data = match encoding {
        CropEncoding::Jpeg => encode(DynamicImage::ImageRgb8(pixels), ImageFormat::Jpeg)?,
        CropEncoding::Png => encode(DynamicImage::ImageRgb8(pixels), ImageFormat::Png)?,
        CropEncoding::Rgb8 => pixels.into_raw(),
    };
    let (w, h) = (width as f32, height as f32);
    Ok(FaceCrop {
        bbox: BoundingBox::new(left + 1.0, top + 1.0, left + w - 1.0, top + h - 1.0),
        landmarks: None,
        score: Some(0.9),
        region: CropRegion { left, top, width: w, height: h },
        width,
        height,
        encoding,
        data,
    })
}

fn crops(faces: Vec<FaceCrop>) -> Vec<u8> {
    encode_crops_message(&CropsMessage { frame_width: 640, frame_height: 480, faces })
}

/// The crops seeds: one message per encoding, with and without landmarks, several faces, no
/// face, and each way a message is refused (versions 0 and 2: this build reads version 1).
fn crops_seeds() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut with_landmarks = crop(100.0, 80.0, 16, 16, CropEncoding::Jpeg)?;
    with_landmarks.landmarks = Some(Landmarks {
        scheme: LandmarkScheme::ArcFace5,
        points: [(104.0, 85.0), (111.0, 85.0), (108.0, 89.0), (105.0, 92.0), (110.0, 92.0)]
            .iter()
            .map(|&(x, y)| Point::new(x, y))
            .collect(),
    });
    let v1 = crops(vec![crop(10.0, 20.0, 12, 10, CropEncoding::Jpeg)?]);
    let with_version = |version: u8| {
        let mut bytes = v1.clone();
        bytes[4] = version;
        bytes
    };
    let mut size_mismatch = crop(10.0, 20.0, 12, 10, CropEncoding::Jpeg)?;
    size_mismatch.width = 11;
    let mut short_rgb = crop(10.0, 20.0, 4, 4, CropEncoding::Rgb8)?;
    short_rgb.data.pop();
    let mut outside = crop(10.0, 20.0, 8, 8, CropEncoding::Rgb8)?;
    outside.region.left = 700.0;
    let too_many = (0..33).map(|i| crop(i as f32 * 10.0, 0.0, 2, 2, CropEncoding::Rgb8));
    let mut unknown_field = b"DDFC\x01".to_vec();
    let header = br#"{"frame_width":1,"frame_height":1,"faces":[],"x":1}"#;
    unknown_field.extend_from_slice(&u32::try_from(header.len())?.to_le_bytes());
    unknown_field.extend_from_slice(header);
    Ok(vec![
        ("ok-crops-v1-jpeg", v1.clone()),
        ("ok-crops-v1-png", crops(vec![crop(300.0, 200.0, 9, 7, CropEncoding::Png)?])),
        ("ok-crops-v1-rgb8", crops(vec![crop(0.0, 0.0, 5, 3, CropEncoding::Rgb8)?])),
        ("ok-crops-v1-landmarks", crops(vec![with_landmarks])),
        (
            "ok-crops-v1-three-faces",
            crops(vec![
                crop(0.0, 0.0, 6, 6, CropEncoding::Rgb8)?,
                crop(50.0, 50.0, 8, 8, CropEncoding::Jpeg)?,
                crop(600.0, 440.0, 40, 40, CropEncoding::Png)?,
            ]),
        ),
        ("ok-crops-v1-no-faces", crops(vec![])),
        ("err-crops-v0", with_version(0)),
        ("err-crops-v2", with_version(2)),
        ("err-crops-truncated", half(&v1)),
        ("err-crops-prefix-only", v1[..9].to_vec()),
        ("err-crops-extra-byte", [v1.as_slice(), &[0]].concat()),
        ("err-crops-size-mismatch", crops(vec![size_mismatch])),
        ("err-crops-rgb8-short", crops(vec![short_rgb])),
        ("err-crops-region-outside", crops(vec![outside])),
        ("err-crops-too-many-faces", crops(too_many.collect::<Result<_>>()?)),
        ("err-crops-unknown-field", unknown_field),
    ])
}

/// Seeds every image target shares: the three formats in several pixel layouts, and each way
/// an image is refused before or by its decoder.
fn image_seeds() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let jpeg = rgb(33, 17, ImageFormat::Jpeg)?;
    let png = rgb(33, 17, ImageFormat::Png)?;
    let webp = rgb(33, 17, ImageFormat::WebP)?;
    let gray = ImageBuffer::from_fn(9, 5, |x, y| Luma([(x * y) as u8]));
    let gray_alpha = ImageBuffer::from_fn(6, 6, |x, y| LumaA([(x * 40) as u8, (y * 40) as u8]));
    let rgba = ImageBuffer::from_fn(7, 3, |x, y| Rgba([x as u8, y as u8, 9, 128]));
    let rgba16: ImageBuffer<Rgba<u16>, Vec<u16>> =
        ImageBuffer::from_fn(4, 4, |x, y| Rgba([x as u16 * 9000, y as u16 * 9000, 7, 65535]));
    Ok(vec![
        ("ok-jpeg-33x17.jpg", jpeg.clone()),
        ("ok-jpeg-gray.jpg", encode(DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Jpeg)?),
        ("ok-jpeg-1x1.jpg", rgb(1, 1, ImageFormat::Jpeg)?),
        ("ok-jpeg-progressive-18-scans.jpg", progressive_jpeg(24, 16, 6)?),
        ("ok-png-33x17.png", png.clone()),
        ("ok-png-gray.png", encode(DynamicImage::ImageLuma8(gray), ImageFormat::Png)?),
        ("ok-png-gray-alpha.png", encode(DynamicImage::ImageLumaA8(gray_alpha), ImageFormat::Png)?),
        ("ok-png-rgba.png", encode(DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Png)?),
        ("ok-png-rgba16.png", encode(DynamicImage::ImageRgba16(rgba16), ImageFormat::Png)?),
        ("ok-webp-33x17.webp", webp.clone()),
        ("ok-webp-rgba.webp", encode(DynamicImage::ImageRgba8(rgba), ImageFormat::WebP)?),
        ("err-jpeg-truncated.jpg", half(&jpeg)),
        ("err-png-truncated.png", half(&png)),
        ("err-webp-truncated.webp", half(&webp)),
        ("err-jpeg-sof-65000x65000.jpg", jpeg_sof_huge()),
        ("err-png-ihdr-50000x50000.png", png_header_only(50_000, 50_000)),
        ("err-png-ihdr-0x10.png", png_header_only(0, 10)),
        ("err-jpeg-500-scans.jpg", jpeg_scan_bomb()),
        ("err-gif", b"GIF89a\x01\0\x01\0\0\0\0;".to_vec()),
        ("err-bmp", b"BM\x1e\0\0\0\0\0\0\0\x1a\0\0\0\x0c\0\0\0\x01\0\x01\0\x01\0\x18\0".to_vec()),
        ("err-empty", Vec::new()),
        ("err-jpeg-magic-only", vec![0xFF, 0xD8, 0xFF]),
        ("err-riff-not-webp", b"RIFF\x04\0\0\0WAVE".to_vec()),
    ])
}

fn write(dir: &Path, seeds: &[(&str, Vec<u8>)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    for (name, bytes) in seeds {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| path.display().to_string())?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus"));
    let images = image_seeds()?;
    let crops = crops_seeds()?;

    // /ws binary messages: frames (≤ 4096 px a side, ≤ 4096×2304 pixels, ≤ 20 scans) and one
    // crops message.
    let mut frames = images.clone();
    frames.extend([
        ("ok-jpeg-4096x1.jpg", rgb(4096, 1, ImageFormat::Jpeg)?),
        ("ok-crops-v1-jpeg", crops[0].1.clone()),
        ("err-png-4097x1.png", rgb(4097, 1, ImageFormat::Png)?),
        ("err-png-ihdr-4096x2305-over-the-pixel-budget.png", png_header_only(4096, 2305)),
        ("err-jpeg-progressive-24-scans.jpg", progressive_jpeg(24, 16, 8)?),
    ]);
    write(&root.join("decode_frame"), &frames)?;
    write(&root.join("crops_message"), &crops)?;

    // REST photos: ≤ 4096 px a side, ≤ 64 scans, EXIF orientation applied.
    let mut photos = images;
    photos.extend([
        ("ok-png-1921x1.png", rgb(1921, 1, ImageFormat::Png)?),
        ("ok-jpeg-progressive-24-scans.jpg", progressive_jpeg(24, 16, 8)?),
        ("ok-jpeg-progressive-63-scans.jpg", progressive_jpeg(24, 16, 21)?),
        ("ok-jpeg-exif-rotate90.jpg", jpeg_with_exif_orientation()?),
        ("err-png-4097x1.png", rgb(4097, 1, ImageFormat::Png)?),
        ("err-jpeg-progressive-66-scans.jpg", progressive_jpeg(24, 16, 22)?),
        ("err-crops-v1-jpeg", crops[0].1.clone()),
    ]);
    write(&root.join("photo_upload"), &photos)?;
    let total = frames.len() + crops.len() + photos.len();
    #[allow(clippy::print_stdout)]
    {
        println!("wrote {total} seeds under {}", root.display());
    }
    Ok(())
}

//! `ddfr recognize IMAGE...`: faces per image as JSON.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::engine::EngineArgs;
use crate::output::emit_json;

/// One face, with the WebSocket face object's box fields plus the detector score.
#[derive(Debug, Serialize)]
struct FaceOut {
    id: String,
    top: i32,
    right: i32,
    bottom: i32,
    left: i32,
    score: f32,
}

#[derive(Debug, Serialize)]
struct ImageOut {
    image: PathBuf,
    width: u32,
    height: u32,
    faces: Vec<FaceOut>,
}

pub fn run(engine: &EngineArgs, images: &[PathBuf]) -> Result<()> {
    let pack = engine.load_pack(1)?;
    let results = images
        .iter()
        .map(|path| {
            let frame = super::read_photo(path)?;
            let faces = pack
                .detect(&frame)?
                .into_iter()
                .map(|face| {
                    let b = face.bbox.to_pixels(frame.width(), frame.height());
                    FaceOut {
                        id: format!("{}_{}", b.top, b.left),
                        top: b.top,
                        right: b.right,
                        bottom: b.bottom,
                        left: b.left,
                        score: face.score,
                    }
                })
                .collect();
            Ok(ImageOut {
                image: Path::new(path).to_path_buf(),
                width: frame.width(),
                height: frame.height(),
                faces,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    emit_json(&results)
}

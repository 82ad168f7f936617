//! Criterion benchmarks of the pipeline stages on a real photo, for each available backend.
//! Needs `models/` (scripts/setup) and the test photos; prints SKIPPED otherwise.
//! `ddfr bench` prints the same stages as a report on composed 640×480 frames.

use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};

use ddfr_engine::decode::{DecodeLimits, decode_image};
use ddfr_engine::manifest::Manifest;
use ddfr_engine::pack::{ModelPack, PackOptions};
use ddfr_engine::runner::InferenceBackend;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ort_ready(models: &Path) -> bool {
    #[cfg(feature = "ort")]
    {
        std::fs::read_dir(models.join("lib"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .is_some_and(|lib| ddfr_engine::runner::init_ort(&lib).is_ok())
    }
    #[cfg(not(feature = "ort"))]
    {
        let _ = models;
        false
    }
}

fn stages(c: &mut Criterion) {
    let models = repo_root().join("models");
    let testdata = std::env::var_os("DDFR_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/testdata"));
    let photo = testdata.join("faces/barack_obama/barack_obama_04.jpg");
    let (Ok(manifest), Ok(jpeg)) = (Manifest::load(&models), std::fs::read(&photo)) else {
        #[allow(clippy::print_stdout)]
        {
            println!("SKIPPED: models/ or the test photo is missing");
        }
        return;
    };
    let ort = ort_ready(&models);
    for backend in
        InferenceBackend::compiled().into_iter().filter(|b| *b != InferenceBackend::Ort || ort)
    {
        let options = PackOptions { backend, ..PackOptions::default() };
        let Ok(pack) = ModelPack::load(&manifest, "default", &options) else { continue };
        let name = format!("{backend:?}").to_lowercase();
        c.bench_function(&format!("decode[jpeg=320x240,backend={name}]"), |b| {
            b.iter(|| decode_image(&jpeg, &DecodeLimits::FRAME).expect("decode"));
        });
        let Ok(frame) = decode_image(&jpeg, &DecodeLimits::FRAME) else { return };
        c.bench_function(&format!("detect[pack=default,backend={name}]"), |b| {
            b.iter(|| pack.detect(&frame).expect("detect"))
        });
        let Ok(faces) = pack.detect(&frame) else { return };
        c.bench_function(&format!("align[pack=default,faces=1,backend={name}]"), |b| {
            b.iter(|| pack.align(&frame, faces.clone()))
        });
        let chips: Vec<_> = pack.align(&frame, faces).into_iter().map(|(_, a)| a.chip).collect();
        c.bench_function(&format!("embed[pack=default,faces=1,backend={name}]"), |b| {
            b.iter(|| pack.embed(&chips).expect("embed"))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = stages
}
criterion_main!(benches);

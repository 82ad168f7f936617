//! Tier-4 tests: the real default models and the ArcFace-style fixture models on the real photos
//! of the developer test set. Each test prints `SKIPPED: ...` when models or photos are absent.

mod common;

use common::*;
use ddfr_engine::manifest::Manifest;
use ddfr_engine::pack::ModelPack;
use ddfr_engine::runner::InferenceBackend;

fn default_manifest() -> Option<Manifest> {
    let dir = models_dir()?;
    Some(Manifest::load(&dir).expect("models/manifest.toml"))
}

fn fixture_manifest(testdata: &std::path::Path) -> Manifest {
    let text = include_str!("fixtures/testdata_models.toml");
    Manifest::parse(text, &testdata.join("models")).expect("fixture manifest")
}

/// Every identity photo yields its labelled (largest) face, every group photo every face, and
/// no-face photos nothing.
fn check_detector(pack: &ModelPack, testdata: &std::path::Path) {
    let expected = expected_face_counts(testdata);
    let mut problems = Vec::new();
    for photo in identity_photos(testdata) {
        let faces = pack.detect(&read_photo(&photo.path)).expect("detect");
        if faces.is_empty() {
            problems.push(format!("{}: no face", photo.path.display()));
        }
    }
    for folder in ["group", "none"] {
        for path in folder_photos(testdata, folder) {
            let rel = format!(
                "faces/{folder}/{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or_default()
            );
            let want = expected.get(&rel).copied().unwrap_or(0);
            let got = pack.detect(&read_photo(&path)).expect("detect").len();
            if got != want {
                problems.push(format!("{rel}: {got} faces, expected {want}"));
            }
        }
    }
    assert!(problems.is_empty(), "pack {} on {:?}: {problems:#?}", pack.id, pack.backend);
}

/// All same-identity pairs above the pack's threshold, all different-identity pairs below.
fn check_separation(pack: &ModelPack, testdata: &std::path::Path) {
    let embeddings: Vec<_> = identity_photos(testdata)
        .into_iter()
        .map(|p| {
            let e = largest_face_embedding(pack, &read_photo(&p.path))
                .unwrap_or_else(|| panic!("no face in {}", p.path.display()));
            (p.label, e)
        })
        .collect();
    let stats = PairStats::of(&embeddings);
    stats.report(&format!("pack {} on {:?}", pack.id, pack.backend), pack.min_similarity);
    assert!(stats.min_same() >= pack.min_similarity, "a same-identity pair is below the threshold");
    assert!(
        stats.max_different() < pack.min_similarity,
        "a different-identity pair reaches the threshold"
    );
}

#[test]
fn default_pack_detects_every_labelled_face_and_nothing_else() {
    let (Some(manifest), Some(testdata)) = (default_manifest(), testdata()) else {
        return skip("models/ (run scripts/setup) or the test data is missing");
    };
    for backend in backends() {
        check_detector(&load_pack(&manifest, "default", backend), &testdata);
    }
}

#[test]
fn default_pack_separates_identities_at_its_threshold() {
    let (Some(manifest), Some(testdata)) = (default_manifest(), testdata()) else {
        return skip("models/ (run scripts/setup) or the test data is missing");
    };
    let backend = backends()[0];
    check_separation(&load_pack(&manifest, "default", backend), &testdata);
}

#[test]
fn arcface_fixture_packs_detect_and_separate_identities() {
    let Some(testdata) = testdata() else { return skip("the test data is missing") };
    let manifest = fixture_manifest(&testdata);
    let backend = backends()[0];
    let scrfd = load_pack(&manifest, "scrfd-mobilefacenet", backend);
    check_detector(&scrfd, &testdata);
    check_separation(&scrfd, &testdata);
    // YuNet (fixed 640x640 input, BGR, no normalisation): detection.
    check_detector(&load_pack(&manifest, "yunet-mobilefacenet", backend), &testdata);
}

#[test]
fn ort_and_tract_give_the_same_embeddings() {
    let (Some(manifest), Some(testdata)) = (default_manifest(), testdata()) else {
        return skip("models/ (run scripts/setup) or the test data is missing");
    };
    let backends = backends();
    if backends.len() < 2 {
        return skip("this build has only one usable backend");
    }
    let ort = load_pack(&manifest, "default", InferenceBackend::Ort);
    let tract = load_pack(&manifest, "default", InferenceBackend::Tract);
    let fixtures = fixture_manifest(&testdata);
    let ort_arc = load_pack(&fixtures, "scrfd-mobilefacenet", InferenceBackend::Ort);
    let tract_arc = load_pack(&fixtures, "scrfd-mobilefacenet", InferenceBackend::Tract);
    let mut worst = 1.0f32;
    for photo in identity_photos(&testdata).iter().step_by(4) {
        let frame = read_photo(&photo.path);
        for (a, b) in [(&ort, &tract), (&ort_arc, &tract_arc)] {
            let faces_a = a.detect(&frame).expect("detect");
            let faces_b = b.detect(&frame).expect("detect");
            assert_eq!(faces_a.len(), faces_b.len(), "{}: detections differ", photo.path.display());
            // Same detection, same chip: embed the ort detection with both backends.
            let chips: Vec<_> =
                a.align(&frame, faces_a).into_iter().map(|(_, al)| al.chip).collect();
            for (ea, eb) in
                a.embed(&chips).expect("embed").iter().zip(b.embed(&chips).expect("embed"))
            {
                worst = worst.min(ea.similarity(&eb));
            }
        }
    }
    println!("ort vs tract: worst embedding cosine {worst:.6}");
    assert!(worst >= 0.9999, "ort and tract embeddings differ: cosine {worst}");
}

//! The `ddfr` command line as a user runs it: JSON on stdout, one-line errors and exit status 1.

#![allow(clippy::print_stdout)] // SKIPPED notes go to the test output.

mod common;
use common::{ddfr, json, ready};

#[test]
fn recognize_prints_pixel_boxes_and_scores_per_image() {
    let Some(testdata) = ready() else { return };
    let photo = testdata.join("faces/group/kit_harington_and_rose_leslie.jpg");
    let nothing = testdata.join("faces/none/skimage_coins.png");
    let out = json(&ddfr(&["recognize", photo.to_str().unwrap(), nothing.to_str().unwrap()]));
    let images = out.as_array().expect("array of images");
    assert_eq!(images.len(), 2);
    let faces = images[0]["faces"].as_array().expect("faces");
    assert_eq!(faces.len(), 2, "two people in the photo");
    for face in faces {
        let (top, right, bottom, left) = (
            face["top"].as_i64().unwrap(),
            face["right"].as_i64().unwrap(),
            face["bottom"].as_i64().unwrap(),
            face["left"].as_i64().unwrap(),
        );
        assert!(left < right && top < bottom);
        assert_eq!(face["id"], format!("{top}_{left}"));
        let score = face["score"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&score));
    }
    assert_eq!(images[1]["faces"].as_array().unwrap().len(), 0);
}

#[test]
fn verify_matches_the_same_person_and_not_others() {
    let Some(testdata) = ready() else { return };
    let a = testdata.join("faces/katy_perry/katy_perry_01.jpg");
    let b = testdata.join("faces/katy_perry/katy_perry_02.jpg");
    let c = testdata.join("faces/sundar_pichai/sundar_pichai_01.jpg");
    let same = json(&ddfr(&["verify", a.to_str().unwrap(), b.to_str().unwrap()]));
    assert_eq!(same["match"], true, "{same}");
    let threshold = same["threshold"].as_f64().unwrap();
    assert!(same["similarity"].as_f64().unwrap() >= threshold);
    let different = json(&ddfr(&["verify", a.to_str().unwrap(), c.to_str().unwrap()]));
    assert_eq!(different["match"], false, "{different}");
    let strict =
        json(&ddfr(&["verify", "--threshold", "0.999", a.to_str().unwrap(), b.to_str().unwrap()]));
    assert_eq!(strict["match"], false);
    assert!((strict["threshold"].as_f64().unwrap() - 0.999).abs() < 1e-6);
}

#[test]
fn bad_input_is_one_line_on_stderr_and_exit_status_1() {
    let Some(testdata) = ready() else { return };
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.jpg");
    std::fs::write(&garbage, b"GIF89a definitely not a jpeg").unwrap();
    let truncated = dir.path().join("truncated.jpg");
    let real = std::fs::read(testdata.join("faces/barack_obama/barack_obama_04.jpg")).unwrap();
    std::fs::write(&truncated, &real[..real.len() / 3]).unwrap();
    let no_face = testdata.join("faces/none/skimage_coffee.png");
    let cases: Vec<Vec<String>> = vec![
        vec!["recognize".into(), garbage.display().to_string()],
        vec!["recognize".into(), dir.path().join("missing.png").display().to_string()],
        vec!["verify".into(), no_face.display().to_string(), no_face.display().to_string()],
        vec!["--pack".into(), "nope".into(), "recognize".into(), no_face.display().to_string()],
        vec!["--backend".into(), "cuda".into(), "recognize".into(), no_face.display().to_string()],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ddfr(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("ddfr: error: "), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    // A truncated JPEG either decodes partially (the decoder pads) or fails cleanly; never a crash.
    let out = ddfr(&["recognize", truncated.to_str().unwrap()]);
    assert!(matches!(out.status.code(), Some(0 | 1)));
}

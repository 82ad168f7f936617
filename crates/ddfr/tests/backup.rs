//! `ddfr backup` and `ddfr restore` as an operator runs them, on a real SQLite data dir.

// Test code outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

use ddfr_core::{Embedding, ModelId, PixelBox};
use ddfr_protocol::{PersonFields, Relationship, Role};
use ddfr_store::{NewFace, PersonStore, SQLITE_FILE_NAME, SqliteStore};

mod common;
use common::{ddfr, json};

fn failed_with(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(needle), "stderr {stderr:?} lacks {needle:?}");
}

fn fields(name: &str) -> PersonFields {
    PersonFields {
        name: name.to_owned(),
        surname: "Backup".to_owned(),
        birthday: "1985-03-04".parse().unwrap(),
        relationship: Relationship::Famiglia,
        role: Role::User,
    }
}

/// Two persons, one face sample, in `dir`'s database.
fn populate(dir: &Path) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open_in_dir(dir).await.unwrap();
        let ada = store.create_person(&fields("Ada")).await.unwrap();
        store.create_person(&fields("Bob")).await.unwrap();
        let embedding = Embedding::from_raw((0..128).map(|i| (i as f32).sin()).collect()).unwrap();
        let face = NewFace {
            embedding,
            model: ModelId::new("dlib-resnet-v1"),
            bbox: PixelBox { top: 1, right: 50, bottom: 60, left: 2 },
            crop_jpeg: vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3],
        };
        store.add_face(ada.id, &face).await.unwrap();
        store.close().await;
    });
}

fn names(dir: &Path) -> Vec<String> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open_in_dir(dir).await.unwrap();
        let names = store.all_persons().await.unwrap().into_iter().map(|p| p.name).collect();
        store.close().await;
        names
    })
}

#[test]
fn backup_then_restore_round_trips_and_never_overwrites_silently() {
    let root = tempfile::tempdir().unwrap();
    let (data, other) = (root.path().join("data"), root.path().join("other"));
    std::fs::create_dir_all(&data).unwrap();
    populate(&data);
    let dest = root.path().join("ddfr-backup.db");
    let dest_arg = dest.to_str().unwrap();

    let backup = json(&ddfr(&["backup", dest_arg, "--data-dir", data.to_str().unwrap()]));
    assert_eq!((backup["persons"].as_u64(), backup["faces"].as_u64()), (Some(2), Some(1)));
    assert!(backup["bytes"].as_u64().unwrap() > 0);
    failed_with(&ddfr(&["backup", dest_arg, "--data-dir", data.to_str().unwrap()]), "exists");
    failed_with(
        &ddfr(&["backup", "x.db", "--data-dir", root.path().join("none").to_str().unwrap()]),
        "no database",
    );

    // Into an empty data dir.
    let restored = json(&ddfr(&["restore", dest_arg, "--data-dir", other.to_str().unwrap()]));
    assert_eq!(restored["persons"], 2);
    assert!(restored.get("replaced").is_none());
    assert_eq!(names(&other), vec!["Ada", "Bob"]);

    // Over an existing database: refused without --force; with it, the old one is kept aside.
    failed_with(&ddfr(&["restore", dest_arg, "--data-dir", data.to_str().unwrap()]), "--force");
    let forced =
        json(&ddfr(&["restore", dest_arg, "--data-dir", data.to_str().unwrap(), "--force"]));
    let aside = forced["replaced"].as_str().unwrap();
    assert!(Path::new(aside).is_file(), "{aside}");
    assert_eq!(names(&data), vec!["Ada", "Bob"]);

    // A file that is not a database is refused and the existing one is untouched.
    let garbage = root.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database, just bytes".repeat(200)).unwrap();
    failed_with(
        &ddfr(&[
            "restore",
            garbage.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--force",
        ]),
        "not a usable ddfr database",
    );
    assert_eq!(names(&data), vec!["Ada", "Bob"]);
    assert!(!data.join(format!("{SQLITE_FILE_NAME}.restoring")).exists());
}

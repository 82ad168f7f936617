//! `ddfr backup` and `ddfr restore` as an operator runs them, on a real SQLite data dir.

// Test code outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

use ddfr_core::{Embedding, ModelId, PixelBox};
use ddfr_protocol::{PersonFields, Relationship, Role};
use ddfr_store::{
    EncryptionKey, NewFace, PersonStore, SQLITE_FILE_NAME, SqliteStore, StoreOptions,
};

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

/// The crop [`populate`] stores.
const CROP: [u8; 16] = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

/// Two persons, one face sample, in `dir`'s database (encrypted with `key`, if any).
fn populate(dir: &Path) {
    populate_with(dir, &StoreOptions::default());
}

fn populate_with(dir: &Path, options: &StoreOptions) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open_in_dir_with_options(dir, options).await.unwrap();
        let ada = store.create_person(&fields("Ada")).await.unwrap();
        store.create_person(&fields("Bob")).await.unwrap();
        let embedding = Embedding::from_raw((0..128).map(|i| (i as f32).sin()).collect()).unwrap();
        let face = NewFace {
            embedding,
            model: ModelId::new("dlib-resnet-v1"),
            bbox: PixelBox { top: 1, right: 50, bottom: 60, left: 2 },
            crop_jpeg: CROP.to_vec(),
        };
        store.add_face(ada.id, &face).await.unwrap();
        store.close().await;
    });
}

fn names(dir: &Path) -> Vec<String> {
    names_with(dir, &StoreOptions::default())
}

fn names_with(dir: &Path, options: &StoreOptions) -> Vec<String> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open_in_dir_with_options(dir, options).await.unwrap();
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
    let manifest_path = format!("{dest_arg}.manifest.json");
    assert_eq!(backup["manifest"], manifest_path.as_str());
    let manifest = read_json(Path::new(&manifest_path));
    assert_eq!((manifest["persons"].as_u64(), manifest["faces"].as_u64()), (Some(2), Some(1)));
    assert_eq!(manifest["database"]["sha256"], sha256(&std::fs::read(&dest).unwrap()));
    assert_eq!(manifest["crops"][0]["sha256"], sha256(&CROP));
    failed_with(&ddfr(&["backup", dest_arg, "--data-dir", data.to_str().unwrap()]), "exists");
    failed_with(
        &ddfr(&["backup", "x.db", "--data-dir", root.path().join("none").to_str().unwrap()]),
        "no database",
    );

    // Into an empty data dir.
    let restored = json(&ddfr(&["restore", dest_arg, "--data-dir", other.to_str().unwrap()]));
    assert_eq!(restored["persons"], 2);
    assert_eq!(restored["manifest"], manifest_path.as_str());
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

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Copies a backup (and, with `manifest`, its manifest) to `name` beside it.
fn copy_backup(dest: &Path, name: &str, manifest: Option<serde_json::Value>) -> String {
    let copy = dest.with_file_name(name);
    std::fs::copy(dest, &copy).unwrap();
    if let Some(manifest) = manifest {
        std::fs::write(format!("{}.manifest.json", copy.display()), manifest.to_string()).unwrap();
    }
    copy.to_str().unwrap().to_owned()
}

#[test]
fn the_manifest_refuses_a_damaged_or_incomplete_backup() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    populate(&data);
    let dest = root.path().join("b.db");
    json(&ddfr(&["backup", dest.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]));
    let manifest = read_json(&root.path().join("b.db.manifest.json"));
    let restore = |src: &str, into: &str| {
        ddfr(&["restore", src, "--data-dir", root.path().join(into).to_str().unwrap()])
    };

    // One byte of the file changed (past the header, in the data pages).
    let damaged = copy_backup(&dest, "damaged.db", Some(manifest.clone()));
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    failed_with(&restore(&damaged, "d1"), "does not match its manifest");
    assert!(!root.path().join("d1").exists(), "nothing is written before the check");

    // An intact file whose content differs from what the manifest lists: a changed crop
    // digest, and a face the manifest lists but the backup lacks.
    let mut changed = manifest.clone();
    changed["crops"][0]["sha256"] = serde_json::json!(sha256(b"another crop"));
    let altered = copy_backup(&dest, "altered.db", Some(changed));
    failed_with(&restore(&altered, "d2"), "differs from the manifest");
    assert!(!root.path().join("d2").join(SQLITE_FILE_NAME).exists());
    let mut extra = manifest.clone();
    let mut ghost = manifest["crops"][0].clone();
    ghost["face"] = serde_json::json!(999);
    extra["crops"].as_array_mut().unwrap().push(ghost);
    extra["faces"] = serde_json::json!(2);
    let short = copy_backup(&dest, "short.db", Some(extra));
    failed_with(&restore(&short, "d3"), "1 faces");

    // A manifest in another format is refused; no manifest at all restores, unverified.
    let mut future = manifest.clone();
    future["format"] = serde_json::json!("ddfr-backup-manifest/9");
    failed_with(&restore(&copy_backup(&dest, "future.db", Some(future)), "d4"), "format");
    let bare = json(&restore(&copy_backup(&dest, "bare.db", None), "d5"));
    assert_eq!((bare["persons"].as_u64(), bare["manifest"].is_null()), (Some(2), true));
    assert_eq!(names(&root.path().join("d5")), vec!["Ada", "Bob"]);
}

/// Writes a key file (hex) with `mode`.
fn key_file(path: &Path, byte: u8, mode: u32) -> EncryptionKey {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{}\n", hex::encode([byte; 32]))).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    EncryptionKey::from_bytes([byte; 32])
}

#[test]
fn an_encrypted_database_backs_up_and_restores_with_its_key_and_refuses_others() {
    let root = tempfile::tempdir().unwrap();
    let (data, other) = (root.path().join("data"), root.path().join("other"));
    std::fs::create_dir_all(&data).unwrap();
    let (key_path, wrong_path) = (root.path().join("key"), root.path().join("wrong"));
    let key = key_file(&key_path, 0x11, 0o600);
    key_file(&wrong_path, 0x22, 0o600);
    let encrypted = StoreOptions::encrypted(key);
    populate_with(&data, &encrypted);
    let (data_arg, key_arg) = (data.to_str().unwrap(), key_path.to_str().unwrap());
    let dest = root.path().join("ddfr-backup.db");
    let dest_arg = dest.to_str().unwrap();

    // Without the key, or with another one, nothing is written.
    failed_with(&ddfr(&["backup", dest_arg, "--data-dir", data_arg]), "DDFR_ENCRYPTION_KEY_FILE");
    let wrong = ["backup", dest_arg, "--data-dir", data_arg, "--encryption-key-file"];
    failed_with(&ddfr(&[&wrong[..], &[wrong_path.to_str().unwrap()]].concat()), "does not match");
    assert!(!dest.exists());
    assert!(!root.path().join("ddfr-backup.db.manifest.json").exists());

    let backup = json(&ddfr(&[
        "backup",
        dest_arg,
        "--data-dir",
        data_arg,
        "--encryption-key-file",
        key_arg,
    ]));
    assert_eq!((backup["persons"].as_u64(), backup["encrypted"].as_bool()), (Some(2), Some(true)));
    let bytes = std::fs::read(&dest).unwrap();
    assert!(!bytes.windows(CROP.len()).any(|w| w == CROP), "the backup holds the crop in clear");

    let other_arg = other.to_str().unwrap();
    failed_with(&ddfr(&["restore", dest_arg, "--data-dir", other_arg]), "DDFR_ENCRYPTION_KEY_FILE");
    assert!(!other.join(SQLITE_FILE_NAME).exists());
    let restored = json(&ddfr(&[
        "restore",
        dest_arg,
        "--data-dir",
        other_arg,
        "--encryption-key-file",
        key_arg,
    ]));
    assert_eq!(
        (restored["faces"].as_u64(), restored["encrypted"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(names_with(&other, &encrypted), vec!["Ada", "Bob"]);

    // `ddfr serve` refuses to start without the key or with another one, and a key file
    // other users can read.
    let serve = ["serve", "--port", "0", "--data-dir", other_arg];
    failed_with(&ddfr(&serve), "DDFR_ENCRYPTION_KEY_FILE");
    let with_wrong =
        [&serve[..], &["--encryption-key-file", wrong_path.to_str().unwrap()]].concat();
    failed_with(&ddfr(&with_wrong), "does not match");
    key_file(&wrong_path, 0x11, 0o644);
    failed_with(&ddfr(&with_wrong), "chmod 600");
    assert_eq!(names_with(&other, &encrypted), vec!["Ada", "Bob"]);
}

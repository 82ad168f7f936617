//! Online backup and restore, black box (`docs/reliability.md` DU-4), on the real `ddfr serve`:
//! `ddfr backup` runs while two clients keep enrolling, the backup is restored into an empty data
//! dir, and the restored service is checked: SQLite `integrity_check`, counts and every crop's
//! SHA-256 against the backup's manifest, the counts between what was acknowledged before the
//! backup started and after it ended, and a person enrolled before the backup is recognized on a
//! photo the service never saw.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ddfr_e2e::{Server, ServerOptions, add_face, create_person, ddfr_binary, identity_photos};
use ddfr_store::{PersonStore, SqliteStore};
use serde_json::Value;
use sha2::Digest;

/// Writers running during the backup.
const WRITERS: usize = 2;

/// Creates persons and enrolls `photo` for each until `stop`; counts acknowledged enrollments.
async fn write_loop(
    server: Arc<Server>,
    photo: Vec<u8>,
    stop: Arc<AtomicBool>,
    enrolled: Arc<AtomicU64>,
) -> Result<()> {
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let person = create_person(&server, None, "Writer", &format!("Round{round}")).await?;
        let (status, body) = add_face(&server, None, person, photo.clone()).await?;
        ensure!(status == 201, "enroll during backup: {status} {body}");
        enrolled.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

fn ddfr(args: &[&str]) -> Result<Value> {
    let output =
        Command::new(ddfr_binary()?).args(args).env_remove("DDFR_DATABASE_URL").output()?;
    if !output.status.success() {
        bail!("ddfr {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// Two identities with at least two photos each: (enrolled photo, unseen photo) per identity.
fn pick_photos(data: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut picked = Vec::new();
    for identity in ["barack_obama", "katy_perry"] {
        let photos = identity_photos(data, identity)?;
        ensure!(photos.len() >= 2, "{identity} needs two photos");
        picked.push((photos[0].clone(), photos[1].clone()));
    }
    Ok(picked)
}

#[tokio::test]
async fn a_backup_taken_while_enrolling_restores_into_a_working_service() -> Result<()> {
    let Some(data) = ddfr_e2e::testdata() else {
        println!("SKIPPED: $DDFR_TESTDATA not found");
        return Ok(());
    };
    let photos = pick_photos(&data)?;
    let server = Arc::new(Server::start().await?);
    let known = create_person(&server, None, "Barack", "Known").await?;
    let (status, body) = add_face(&server, None, known, std::fs::read(&photos[0].0)?).await?;
    ensure!(status == 201, "enroll the known person: {status} {body}");

    let stop = Arc::new(AtomicBool::new(false));
    let enrolled = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let photo = std::fs::read(&photos[1].0)?;
            Ok(tokio::spawn(write_loop(
                Arc::clone(&server),
                photo,
                Arc::clone(&stop),
                Arc::clone(&enrolled),
            )))
        })
        .collect::<Result<_>>()?;
    // Let the writers get going, then back up while they write.
    while enrolled.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let root = tempfile::tempdir()?;
    let dest = root.path().join("ddfr-backup.db");
    let before = enrolled.load(Ordering::SeqCst);
    let started = Instant::now();
    let data_dir = server.data_dir.clone();
    let dest_arg = arg(&dest).to_owned();
    let backup = tokio::task::spawn_blocking(move || {
        ddfr(&["backup", &dest_arg, "--data-dir", arg(&data_dir)])
    })
    .await??;
    let took = started.elapsed();
    // Writes that were in flight when the backup ended are acknowledged within a round trip.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = enrolled.load(Ordering::SeqCst);
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await??;
    }
    // The known person plus one person and one face per acknowledged enrollment, give or take
    // the writes in flight around the backup.
    let faces = backup["faces"].as_u64().context("faces")?;
    ensure!(
        (1 + before..=1 + after + WRITERS as u64).contains(&faces),
        "the backup holds {faces} faces; {before} were acknowledged before it began, {after} soon after it ended"
    );
    println!(
        "backup of {faces} faces in {took:.0?} while {WRITERS} clients enrolled ({} enrollments meanwhile)",
        after - before
    );

    // Restore into an empty data dir.
    let restored_dir = root.path().join("restored");
    let restored = ddfr(&["restore", arg(&dest), "--data-dir", arg(&restored_dir)])?;
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(format!(
        "{}.manifest.json",
        dest.display()
    ))?)?;
    ensure!(restored["manifest"].is_string(), "the restore was not verified: {restored}");
    for field in ["persons", "faces"] {
        ensure!(restored[field] == manifest[field], "{field}: {restored} vs manifest {manifest}");
    }

    // Independently of the restore's own check: integrity, counts and crop digests.
    let store = SqliteStore::open_in_dir(&restored_dir).await?;
    store.check_integrity().await?;
    let mut digests = Vec::new();
    for person in store.all_persons().await? {
        for face in store.faces(person.id).await? {
            let crop = store.face_crop(person.id, face.id).await?;
            digests.push((person.id.0, face.id.0, hex::encode(sha2::Sha256::digest(&crop))));
        }
    }
    store.close().await;
    let listed: Vec<(i64, i64, String)> = manifest["crops"]
        .as_array()
        .context("crops")?
        .iter()
        .map(|c| {
            (
                c["person"].as_i64().unwrap_or(-1),
                c["face"].as_i64().unwrap_or(-1),
                c["sha256"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    ensure!(digests == listed, "restored crops differ from the manifest");
    ensure!(digests.len() as u64 == faces, "{} crops for {faces} faces", digests.len());

    // The restored service recognizes the person enrolled before the backup on a new photo.
    drop(server);
    let options = ServerOptions { data_dir: Some(restored_dir), ..Default::default() };
    let restored_server = Server::start_with(options).await?;
    let named = ddfr_e2e::recognized_ids(&restored_server, &photos[0].1).await?;
    ensure!(named == vec![known], "expected person {known}, got {named:?}");
    Ok(())
}

//! The manifest `ddfr backup` writes beside a backup (`<backup>.manifest.json`) and `ddfr
//! restore` verifies: the database file's size and SHA-256, the schema version, the counts, and
//! the size and SHA-256 of every stored face crop (of its JPEG bytes as the API serves them, so
//! the digests are the same whether or not the database is encrypted at rest).
//!
//! It proves a restore complete, not just readable: a truncated or altered backup file fails the
//! file digest, a backup that lost or changed a crop fails the crop list.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ddfr_store::{PersonStore, SCHEMA_VERSION, SqliteStore, VisitorStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `format` of the manifests this version writes and reads.
pub const FORMAT: &str = "ddfr-backup-manifest/1";

/// Where the manifest of `backup` lives.
pub fn path_for(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// A file's size and SHA-256 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// The file's name (no directory: a backup may be moved with its manifest).
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

impl FileDigest {
    /// Reads `path` through SHA-256.
    pub fn of(path: &Path) -> Result<Self> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            bytes += read as u64;
        }
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self { file, bytes, sha256: hex::encode(hasher.finalize()) })
    }
}

/// One stored face crop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropDigest {
    /// The person's id.
    pub person: i64,
    /// The face sample's id.
    pub face: i64,
    /// The crop's size in bytes.
    pub bytes: u64,
    /// SHA-256 of the crop's JPEG bytes.
    pub sha256: String,
}

/// What a database holds, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contents {
    /// Number of persons.
    pub persons: u64,
    /// Number of face samples.
    pub faces: u64,
    /// Number of recurring unknown visitors.
    pub unknown_visitors: u64,
    /// Every face crop, by person then face id.
    pub crops: Vec<CropDigest>,
}

impl Contents {
    /// Counts `store` and digests every crop it holds.
    pub async fn of(store: &SqliteStore) -> Result<Self> {
        let mut crops = Vec::new();
        for person in store.all_persons().await? {
            for face in store.faces(person.id).await? {
                let crop = store.face_crop(person.id, face.id).await?;
                crops.push(CropDigest {
                    person: person.id.0,
                    face: face.id.0,
                    bytes: crop.len() as u64,
                    sha256: hex::encode(Sha256::digest(&crop)),
                });
            }
        }
        Ok(Self {
            persons: store.count_persons().await?,
            faces: store.count_faces().await?,
            unknown_visitors: store.visitors().await?.len() as u64,
            crops,
        })
    }

    /// The first difference from `expected`, in words; `None` when they agree.
    pub fn difference(&self, expected: &Self) -> Option<String> {
        let counts = |c: &Self| (c.persons, c.faces, c.unknown_visitors);
        if counts(self) != counts(expected) {
            let (p, f, v) = counts(self);
            let (ep, ef, ev) = counts(expected);
            return Some(format!(
                "{p} persons, {f} faces, {v} visitors where the manifest lists {ep}, {ef}, {ev}"
            ));
        }
        let key = |c: &CropDigest| (c.person, c.face);
        let found: BTreeMap<_, _> = self.crops.iter().map(|c| (key(c), c)).collect();
        for crop in &expected.crops {
            match found.get(&key(crop)) {
                None => {
                    return Some(format!(
                        "face {} of person {} is missing",
                        crop.face, crop.person
                    ));
                }
                Some(actual) if *actual != crop => {
                    return Some(format!(
                        "the crop of face {} of person {} differs from the manifest",
                        crop.face, crop.person
                    ));
                }
                Some(_) => {}
            }
        }
        (self.crops.len() != expected.crops.len())
            .then(|| "the backup holds faces the manifest does not list".to_owned())
    }
}

/// The manifest file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The ddfr version that wrote it.
    pub ddfr_version: String,
    /// When, in seconds since the Unix epoch.
    pub created_unix: u64,
    /// The backup's schema version.
    pub schema_version: i64,
    /// Whether crops and embeddings in the backup are encrypted at rest.
    pub encrypted: bool,
    /// The backup file.
    pub database: FileDigest,
    /// What it holds.
    #[serde(flatten)]
    pub contents: Contents,
}

impl Manifest {
    /// A manifest for `backup` (closed, checkpointed) holding `contents`.
    pub fn new(backup: &Path, encrypted: bool, contents: Contents) -> Result<Self> {
        let created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Self {
            format: FORMAT.to_owned(),
            ddfr_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_unix,
            schema_version: SCHEMA_VERSION,
            encrypted,
            database: FileDigest::of(backup)?,
            contents,
        })
    }

    /// Writes it to `path` atomically (a temporary file, synced, then renamed), never over an
    /// existing file.
    pub fn write(&self, path: &Path) -> Result<()> {
        if path.exists() {
            bail!("{} exists; a backup never overwrites a file", path.display());
        }
        let partial = PathBuf::from(format!("{}.partial", path.display()));
        let mut file = std::fs::File::create(&partial)
            .with_context(|| format!("writing {}", partial.display()))?;
        serde_json::to_writer_pretty(&mut file, self)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Reads the manifest at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the manifest {}", path.display()))?;
        let manifest: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a backup manifest", path.display()))?;
        if manifest.format != FORMAT {
            bail!("{} has format {:?}, not {FORMAT:?}", path.display(), manifest.format);
        }
        Ok(manifest)
    }

    /// Checks that `backup` is byte for byte the file the manifest describes.
    pub fn check_file(&self, backup: &Path) -> Result<()> {
        let actual = FileDigest::of(backup)?;
        if (actual.bytes, &actual.sha256) != (self.database.bytes, &self.database.sha256) {
            bail!(
                "{} does not match its manifest ({} bytes, SHA-256 {} where the manifest has {} \
                 bytes, {}): the backup is damaged or not the one the manifest describes",
                backup.display(),
                actual.bytes,
                actual.sha256,
                self.database.bytes,
                self.database.sha256
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crop(person: i64, face: i64, sha: &str) -> CropDigest {
        CropDigest { person, face, bytes: 3, sha256: sha.to_owned() }
    }

    fn contents(crops: Vec<CropDigest>) -> Contents {
        Contents { persons: 2, faces: crops.len() as u64, unknown_visitors: 0, crops }
    }

    #[test]
    fn differences_are_named() {
        let expected = contents(vec![crop(1, 1, "aa"), crop(2, 2, "bb")]);
        assert_eq!(expected.difference(&expected), None);
        let changed = contents(vec![crop(1, 1, "aa"), crop(2, 2, "cc")]);
        assert!(changed.difference(&expected).unwrap().contains("face 2 of person 2 differs"));
        let moved = contents(vec![crop(1, 1, "aa"), crop(1, 2, "bb")]);
        assert!(moved.difference(&expected).unwrap().contains("face 2 of person 2 is missing"));
        let fewer = contents(vec![crop(1, 1, "aa")]);
        assert!(fewer.difference(&expected).unwrap().contains("1 faces"));
    }

    #[test]
    fn the_file_digest_catches_one_changed_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        std::fs::write(&path, b"0123456789").unwrap();
        let contents = contents(Vec::new());
        let manifest = Manifest::new(&path, false, contents).unwrap();
        assert_eq!(manifest.database.file, "b.db");
        manifest.check_file(&path).unwrap();
        std::fs::write(&path, b"0123456780").unwrap();
        assert!(manifest.check_file(&path).unwrap_err().to_string().contains("does not match"));
        let written = path_for(&path);
        manifest.write(&written).unwrap();
        assert_eq!(Manifest::read(&written).unwrap().database, manifest.database);
        assert!(manifest.write(&written).is_err(), "never overwrites");
    }
}

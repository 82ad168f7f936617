//! The per-person export archive (`GET /api/persons/{id}/export`): one ZIP file with
//! everything stored about the person, and a manifest of every file's SHA-256 and size.
//!
//! | file | content |
//! |---|---|
//! | `person.json` | the person's fields as `GET /api/persons/{id}` shows them |
//! | `faces.json` | every face sample: id, box in the enrolled photo, enrollment time |
//! | `faces/<face id>.jpg` | each stored aligned face chip, byte-identical to the crop route |
//! | `embeddings.json` | every stored embedding: face id, model, dimension, vector |
//! | `consent.json` | the person's consent records |
//! | `audit.json` | every audit entry concerning the person, oldest first, this export's own included |
//! | `manifest.json` | format, version, time, person id, and path, size and SHA-256 of every other file |
//!
//! JSON files are deflated; chips are stored as they are (JPEG does not compress further).

use std::io::{Cursor, Write};

use ddfr_protocol::{
    ArchivedEmbedding, AuditView, ConsentView, EXPORT_ARCHIVE_VERSION, EXPORT_FORMAT,
    ExportManifest, FaceView, ManifestFile, PersonView, Timestamp,
};
use sha2::{Digest, Sha256};
use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

/// Everything an archive holds, gathered from the store.
#[derive(Debug, Clone)]
pub struct ExportParts {
    /// When the export was made.
    pub exported_at: Timestamp,
    /// The person.
    pub person: PersonView,
    /// Each face sample with its stored chip.
    pub faces: Vec<(FaceView, Vec<u8>)>,
    /// Every stored embedding.
    pub embeddings: Vec<ArchivedEmbedding>,
    /// The consent records.
    pub consents: Vec<ConsentView>,
    /// The audit entries.
    pub audit: Vec<AuditView>,
}

/// Why an archive could not be written (only a bug or memory exhaustion can cause it).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The ZIP writer failed.
    #[error("writing the export archive")]
    Zip(#[from] zip::result::ZipError),
    /// Writing into the in-memory buffer failed.
    #[error("writing the export archive")]
    Io(#[from] std::io::Error),
    /// A JSON file could not be serialised.
    #[error("serialising an export file")]
    Json(#[from] serde_json::Error),
}

/// The archive's file name for the `Content-Disposition` header.
pub fn archive_name(person: i64) -> String {
    format!("ddfr-person-{person}.zip")
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes the archive (see the module documentation) into memory.
pub fn build_archive(parts: &ExportParts) -> Result<Vec<u8>, ExportError> {
    let mut files: Vec<(String, Vec<u8>, bool)> = vec![
        ("person.json".to_owned(), pretty(&parts.person)?, true),
        (
            "faces.json".to_owned(),
            pretty(&parts.faces.iter().map(|(face, _)| face).collect::<Vec<_>>())?,
            true,
        ),
    ];
    for (face, jpeg) in &parts.faces {
        files.push((format!("faces/{}.jpg", face.id), jpeg.clone(), false));
    }
    files.push(("embeddings.json".to_owned(), pretty(&parts.embeddings)?, true));
    files.push(("consent.json".to_owned(), pretty(&parts.consents)?, true));
    files.push(("audit.json".to_owned(), pretty(&parts.audit)?, true));
    let manifest = ExportManifest {
        format: EXPORT_FORMAT.to_owned(),
        version: EXPORT_ARCHIVE_VERSION,
        exported_at: parts.exported_at,
        person_id: parts.person.id,
        files: files
            .iter()
            .map(|(path, bytes, _)| ManifestFile {
                path: path.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    files.push(("manifest.json".to_owned(), pretty(&manifest)?, true));

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (path, bytes, deflate) in &files {
        let method = if *deflate { CompressionMethod::Deflated } else { CompressionMethod::Stored };
        let options =
            SimpleFileOptions::default().compression_method(method).unix_permissions(0o600);
        zip.start_file(path.as_str(), options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

fn pretty<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use ddfr_protocol::{Relationship, Role};

    use super::*;

    fn parts() -> ExportParts {
        let at = Timestamp::from_unix_millis(1_700_000_000_000);
        let face = |id| FaceView { id, top: 1, right: 2, bottom: 3, left: 4, created_at: at };
        ExportParts {
            exported_at: at,
            person: PersonView {
                id: 7,
                name: "Anna".into(),
                surname: "Rossi".into(),
                birthday: "1990-05-17".parse().unwrap(),
                age: 34,
                relationship: Relationship::Famiglia,
                role: Role::User,
                faces: 2,
                created_at: at,
                updated_at: at,
                retain_until: Some("2027-01-01".parse().unwrap()),
            },
            faces: vec![
                (face(11), vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]),
                (face(12), vec![0xFF, 0xD8, 0xFF, 9]),
            ],
            embeddings: vec![ArchivedEmbedding {
                face_id: 11,
                model: "m".into(),
                dim: 2,
                vector: vec![0.6, 0.8],
            }],
            consents: Vec::new(),
            audit: Vec::new(),
        }
    }

    #[test]
    fn the_archive_holds_every_file_and_the_manifest_hashes_them() {
        let bytes = build_archive(&parts()).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = archive.file_names().map(str::to_owned).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "audit.json",
                "consent.json",
                "embeddings.json",
                "faces.json",
                "faces/11.jpg",
                "faces/12.jpg",
                "manifest.json",
                "person.json"
            ]
        );
        let mut read = |name: &str| {
            let mut file = archive.by_name(name).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            bytes
        };
        assert_eq!(read("faces/11.jpg"), [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
        let manifest: ExportManifest = serde_json::from_slice(&read("manifest.json")).unwrap();
        assert_eq!((manifest.person_id, manifest.files.len()), (7, 7));
        for file in &manifest.files {
            let bytes = read(&file.path);
            assert_eq!(file.size, bytes.len() as u64, "{}", file.path);
            assert_eq!(file.sha256, sha256_hex(&bytes), "{}", file.path);
        }
        let person: PersonView = serde_json::from_slice(&read("person.json")).unwrap();
        assert_eq!(person, parts().person);
    }

    #[test]
    fn sha256_matches_the_fips_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

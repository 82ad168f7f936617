//! Test helpers shared by the store's integration tests: deterministic persons, embeddings and
//! crops, and a byte search over a SQLite database and its write-ahead log.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ddfr_core::{Embedding, ModelId, PixelBox};
use ddfr_protocol::{PersonFields, Relationship, Role};
use ddfr_store::{EncryptionKey, NewFace, SQLITE_FILE_NAME};

/// ArcFace's embedding size, used for realistic vectors.
pub const DIM: usize = 512;

/// A deterministic xorshift stream, so the tests need no random-number crate.
pub struct Bytes(pub u64);

impl Bytes {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn take(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 24) as u8).collect()
    }
}

pub fn fields(name: &str) -> PersonFields {
    PersonFields {
        name: name.to_owned(),
        surname: "Rossi".to_owned(),
        birthday: "1990-05-17".parse().unwrap(),
        relationship: Relationship::Amico,
        role: Role::Guest,
    }
}

pub fn embedding(seed: u64, dim: usize) -> Embedding {
    let mut bytes = Bytes(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    Embedding::from_raw((0..dim).map(|_| (bytes.next() % 2001) as f32 / 1000.0 - 1.0).collect())
        .unwrap()
}

/// A JPEG-looking crop: the JPEG/JFIF magic then `n` pseudo-random bytes.
pub fn crop(seed: u64, n: usize) -> Vec<u8> {
    let mut data = vec![0xFF, 0xD8, 0xFF, 0xE0];
    data.extend(Bytes(seed | 1).take(n));
    data
}

pub fn new_face(seed: u64, model: &ModelId, dim: usize) -> NewFace {
    NewFace {
        embedding: embedding(seed, dim),
        model: model.clone(),
        bbox: PixelBox { top: 10, right: 120, bottom: 140, left: 20 + seed as i32 },
        crop_jpeg: crop(seed, 2048),
    }
}

pub fn unique_suffix() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// A key whose 32 bytes are all `byte`.
pub fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::from_bytes([byte; 32])
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Reads the database and its write-ahead log (absent counts as empty).
pub fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join(SQLITE_FILE_NAME)).unwrap();
    bytes.extend(std::fs::read(dir.join(format!("{SQLITE_FILE_NAME}-wal"))).unwrap_or_default());
    bytes
}

/// Creates an empty database next to the one `url` names (the user needs CREATEDB) and returns
/// its URL and name; drop it with [`drop_pg_database`].
#[cfg(feature = "postgres")]
pub async fn fresh_pg_database(url: &str, label: &str) -> (ddfr_store::DatabaseUrl, String) {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let server = &base[..base.rfind('/').unwrap()];
    let name = format!("ddfr_{label}_{}", unique_suffix());
    let admin = sqlx::postgres::PgPool::connect(url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.unwrap();
    admin.close().await;
    let fresh = if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    };
    (ddfr_store::DatabaseUrl::new(fresh), name)
}

/// Drops a database [`fresh_pg_database`] created.
#[cfg(feature = "postgres")]
pub async fn drop_pg_database(url: &str, name: &str) {
    let admin = sqlx::postgres::PgPool::connect(url).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)")).execute(&admin).await.unwrap();
    admin.close().await;
}

//! Encryption at rest (optional) of the biometric values: face crops and embeddings of enrolled
//! faces, and centroids, embeddings and chips of unknown visitors.
//!
//! Each value is sealed on its own with XChaCha20-Poly1305 under one 256-bit key: a fresh
//! random 192-bit nonce per value, and the value's place in the database (table, column, the
//! row's primary key and the person or visitor it belongs to) as associated data, so a
//! ciphertext copied onto another row, column or person fails to open. A sealed value is
//! `[ENVELOPE_VERSION] ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)`: [`ENVELOPE_OVERHEAD`]
//! bytes longer than the plaintext.
//!
//! Whether a database is encrypted is recorded in the database itself (`store_meta`, schema
//! v4): the row [`KEY_CHECK`] holds a known text sealed under the key. Opening checks it before
//! anything is written: a wrong key or a missing key refuses to open. There is no per-value
//! flag; in an encrypted database every such value is sealed, and one that fails to open is an
//! error ([`StoreError::Decryption`]), never skipped.
//!
//! Everything else (names, birthdays, boxes, timestamps, the audit log) stays in the clear.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::StoreError;

/// First byte of every sealed value; a later format gets a new number.
const ENVELOPE_VERSION: u8 = 1;
/// XChaCha20's nonce length.
const NONCE_LEN: usize = 24;
/// Poly1305's tag length.
const TAG_LEN: usize = 16;
/// How much longer a sealed value is than its plaintext (version byte, nonce, tag).
pub const ENVELOPE_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// Length of a key in bytes (256 bits).
pub const KEY_LEN: usize = 32;
/// The `store_meta` key of the key check.
pub(crate) const KEY_CHECK: &str = "encryption_key_check";
/// The known text sealed as the key check.
const KEY_CHECK_TEXT: &[u8] = b"ddfr encryption at rest, key check v1";
/// Prefix of every value's associated data.
const AAD_PREFIX: &str = "ddfr-at-rest/1/";

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the encryption key file {path}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Group or other users may access the file.
    #[error(
        "the encryption key file {path} is accessible to other users (mode {mode:o}); \
         run `chmod 600` on it"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The contents are not a 256-bit key.
    #[error(
        "the encryption key file {path} must hold a 256-bit key: 64 hex digits or 44 base64 \
         characters (e.g. `openssl rand -hex 32`)"
    )]
    Format {
        /// The key file.
        path: PathBuf,
    },
}

/// A 256-bit key for encryption at rest. `Debug` never shows it; dropped keys are zeroed.
#[derive(Clone)]
pub struct EncryptionKey(Zeroizing<[u8; KEY_LEN]>);

impl EncryptionKey {
    /// A key from its raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses a key written as 64 hex digits or as standard base64 of 32 bytes (44 characters,
    /// padded); surrounding whitespace is ignored. `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if text.len() == 2 * KEY_LEN && hex::decode_to_slice(text, bytes.as_mut_slice()).is_ok() {
            return Some(Self(bytes));
        }
        let decoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(text).ok()?);
        if decoded.len() != KEY_LEN {
            return None;
        }
        bytes.copy_from_slice(&decoded);
        Some(Self(bytes))
    }

    /// Reads a key file (see [`EncryptionKey::parse`]). On Unix the file must not be
    /// accessible to group or other users (mode 600 or 400), like an SSH private key.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let read_error = |source| KeyError::Read { path: path.to_owned(), source };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(read_error)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions { path: path.to_owned(), mode: mode & 0o7777 });
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(read_error)?);
        Self::parse(&text).ok_or_else(|| KeyError::Format { path: path.to_owned() })
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(***)")
    }
}

/// Which stored value a ciphertext belongs to: its associated data. Every variant names the
/// row's primary key and its owner, so a value moved to another row or person fails to open.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field<'a> {
    /// The key check in `store_meta`.
    KeyCheck,
    /// `face_crops.jpeg`.
    FaceCrop {
        /// The face's person.
        person: i64,
        /// The face.
        face: i64,
    },
    /// `embeddings.vector`.
    Embedding {
        /// The face's person.
        person: i64,
        /// The face.
        face: i64,
        /// The embedding model (part of the primary key).
        model: &'a str,
    },
    /// `visitors.centroid`.
    VisitorCentroid {
        /// The visitor.
        visitor: i64,
    },
    /// `visitor_samples.vector`.
    VisitorVector {
        /// The visitor.
        visitor: i64,
        /// The sample.
        sample: i64,
    },
    /// `visitor_samples.jpeg`.
    VisitorJpeg {
        /// The visitor.
        visitor: i64,
        /// The sample.
        sample: i64,
    },
}

impl Field<'_> {
    fn aad(&self) -> String {
        let place = match *self {
            Field::KeyCheck => "store_meta/key_check".to_owned(),
            Field::FaceCrop { person, face } => {
                format!("face_crops.jpeg/person={person}/face={face}")
            }
            Field::Embedding { person, face, model } => {
                format!("embeddings.vector/person={person}/face={face}/model={model}")
            }
            Field::VisitorCentroid { visitor } => format!("visitors.centroid/visitor={visitor}"),
            Field::VisitorVector { visitor, sample } => {
                format!("visitor_samples.vector/visitor={visitor}/sample={sample}")
            }
            Field::VisitorJpeg { visitor, sample } => {
                format!("visitor_samples.jpeg/visitor={visitor}/sample={sample}")
            }
        };
        format!("{AAD_PREFIX}{place}")
    }

    /// What an error message calls the value (ids only, no personal data).
    fn describe(&self) -> String {
        match *self {
            Field::KeyCheck => "the key check".to_owned(),
            Field::FaceCrop { face, .. } => format!("the crop of face {face}"),
            Field::Embedding { face, model, .. } => {
                format!("the {model} embedding of face {face}")
            }
            Field::VisitorCentroid { visitor } => format!("the centroid of visitor {visitor}"),
            Field::VisitorVector { sample, .. } => {
                format!("the embedding of visitor sample {sample}")
            }
            Field::VisitorJpeg { sample, .. } => format!("the chip of visitor sample {sample}"),
        }
    }
}

/// A store's values at rest: sealed under a key, or (no key) stored as they are.
#[derive(Clone, Default)]
pub(crate) struct AtRest {
    cipher: Option<XChaCha20Poly1305>,
}

impl fmt::Debug for AtRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtRest").field("encrypted", &self.is_encrypted()).finish()
    }
}

impl AtRest {
    /// Values sealed under `key`, or in the clear without one.
    pub fn new(key: Option<&EncryptionKey>) -> Self {
        Self { cipher: key.map(|key| XChaCha20Poly1305::new(&(*key.0).into())) }
    }

    /// True when values are sealed.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The value to store for `plaintext` at `field`.
    pub fn seal(&self, field: Field<'_>, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some(cipher) = &self.cipher else {
            return Ok(plaintext.to_vec());
        };
        let nonce = XNonce::try_generate().map_err(|error| StoreError::Encryption {
            message: format!("no random nonce from the operating system: {error}"),
        })?;
        let aad = field.aad();
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: aad.as_bytes() })
            .map_err(|_| StoreError::Encryption {
                message: format!("cannot encrypt {}", field.describe()),
            })?;
        let mut value = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        value.push(ENVELOPE_VERSION);
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&sealed);
        Ok(value)
    }

    /// The plaintext of the stored `value` at `field`; [`StoreError::Decryption`] when it is
    /// not a value sealed under this key for this place.
    pub fn open(&self, field: Field<'_>, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some(cipher) = &self.cipher else {
            return Ok(value.to_vec());
        };
        let failed = || StoreError::Decryption { value: field.describe() };
        if value.len() < ENVELOPE_OVERHEAD || value[0] != ENVELOPE_VERSION {
            return Err(failed());
        }
        let nonce = XNonce::try_from(&value[1..=NONCE_LEN]).map_err(|_| failed())?;
        let aad = field.aad();
        cipher
            .decrypt(&nonce, Payload { msg: &value[1 + NONCE_LEN..], aad: aad.as_bytes() })
            .map_err(|_| failed())
    }

    /// The key check to record in a database this key encrypts.
    pub fn key_check(&self) -> Result<Vec<u8>, StoreError> {
        self.seal(Field::KeyCheck, KEY_CHECK_TEXT)
    }

    /// Compares the database's recorded key check (`None`: the database is not encrypted) with
    /// this store's key: refuses a missing or wrong key. A plaintext database with a key is
    /// fine here: the caller encrypts it.
    pub fn verify(&self, recorded: Option<&[u8]>) -> Result<(), StoreError> {
        match (recorded, self.is_encrypted()) {
            (None, _) => Ok(()),
            (Some(_), false) => Err(StoreError::EncryptionKeyRequired),
            (Some(check), true) => match self.open(Field::KeyCheck, check) {
                Ok(text) if text == KEY_CHECK_TEXT => Ok(()),
                _ => Err(StoreError::WrongEncryptionKey),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes([byte; KEY_LEN])
    }

    #[test]
    fn values_round_trip_and_are_bound_to_their_place() {
        let at_rest = AtRest::new(Some(&key(7)));
        let field = Field::Embedding { person: 1, face: 2, model: "arcface" };
        let sealed = at_rest.seal(field, b"vector bytes").unwrap();
        assert_eq!(sealed.len(), b"vector bytes".len() + ENVELOPE_OVERHEAD);
        assert_eq!(at_rest.open(field, &sealed).unwrap(), b"vector bytes");
        // A fresh nonce each time: the same value never seals to the same bytes.
        assert_ne!(at_rest.seal(field, b"vector bytes").unwrap(), sealed);
        for other in [
            Field::Embedding { person: 9, face: 2, model: "arcface" },
            Field::Embedding { person: 1, face: 3, model: "arcface" },
            Field::Embedding { person: 1, face: 2, model: "dlib" },
            Field::FaceCrop { person: 1, face: 2 },
        ] {
            assert!(matches!(at_rest.open(other, &sealed), Err(StoreError::Decryption { .. })));
        }
        assert!(AtRest::new(Some(&key(8))).open(field, &sealed).is_err(), "another key");
        for cut in [0, 1, 25, ENVELOPE_OVERHEAD - 1, sealed.len() - 1] {
            assert!(at_rest.open(field, &sealed[..cut]).is_err(), "truncated to {cut}");
        }
        for index in [0, 5, 30, sealed.len() - 1] {
            let mut flipped = sealed.clone();
            flipped[index] ^= 0x01;
            assert!(at_rest.open(field, &flipped).is_err(), "bit flipped at {index}");
        }
    }

    #[test]
    fn without_a_key_values_are_stored_as_they_are() {
        let plain = AtRest::new(None);
        let field = Field::FaceCrop { person: 1, face: 1 };
        assert_eq!(plain.seal(field, b"jpeg").unwrap(), b"jpeg");
        assert_eq!(plain.open(field, b"jpeg").unwrap(), b"jpeg");
    }

    #[test]
    fn the_key_check_tells_right_wrong_and_missing_keys_apart() {
        let right = AtRest::new(Some(&key(1)));
        let check = right.key_check().unwrap();
        right.verify(Some(&check)).unwrap();
        right.verify(None).unwrap();
        assert!(matches!(
            AtRest::new(Some(&key(2))).verify(Some(&check)),
            Err(StoreError::WrongEncryptionKey)
        ));
        assert!(matches!(
            AtRest::new(None).verify(Some(&check)),
            Err(StoreError::EncryptionKeyRequired)
        ));
        AtRest::new(None).verify(None).unwrap();
    }

    #[test]
    fn keys_parse_from_hex_or_base64_only() {
        let hex_text = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
        let from_hex = EncryptionKey::parse(hex_text).unwrap();
        assert_eq!(from_hex.0[1], 0x11);
        let base64_text = base64::engine::general_purpose::STANDARD.encode(*from_hex.0);
        assert_eq!(base64_text.len(), 44);
        assert_eq!(*EncryptionKey::parse(&format!("  {base64_text}\n")).unwrap().0, *from_hex.0);
        for bad in ["", "00", &hex_text[..62], "zz".repeat(32).as_str(), "aGVsbG8=", "password"] {
            assert!(EncryptionKey::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(format!("{from_hex:?}"), "EncryptionKey(***)");
    }

    #[cfg(unix)]
    #[test]
    fn key_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = EncryptionKey::from_file(&path).unwrap_err();
        assert!(matches!(error, KeyError::Permissions { mode: 0o644, .. }), "{error}");
        assert!(error.to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(*EncryptionKey::from_file(&path).unwrap().0, [0xAB; KEY_LEN]);
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(EncryptionKey::from_file(&path), Err(KeyError::Format { .. })));
        let missing = EncryptionKey::from_file(&dir.path().join("none")).unwrap_err();
        assert!(matches!(missing, KeyError::Read { .. }));
    }
}

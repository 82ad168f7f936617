//! `SqliteStore`: the default backend, one SQLite file in the data dir.
//!
//! Every connection runs with `journal_mode=WAL`, `synchronous=FULL` (an acknowledged write
//! survives power loss), `foreign_keys=ON`, `busy_timeout=5000` and `secure_delete=ON` (freed
//! pages are zeroed). Opening runs `PRAGMA quick_check` before the migrations and refuses a
//! corrupt file. Deletes end with `PRAGMA wal_checkpoint(TRUNCATE)` so the deleted bytes do not
//! linger in the write-ahead log.
//!
//! Opening then checks the encryption key against the database's key check (see
//! [`crate::crypt`]) before anything is written, copies an existing database aside before a
//! migration changes it ([`crate::schema`]), migrates, and, when a key is given for a plaintext
//! database, encrypts it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ddfr_core::{Embedding, FaceId, ModelId, PersonId};
use ddfr_protocol::{PersonChanges, PersonFields};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Executor, QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::crypt::{AtRest, Field};
use crate::model::{
    FaceRow, PersonRow, check_single_dim, decode_embedding, decode_face_embedding, dim_column, now,
};
use crate::{
    EmbeddingModelCount, FaceEmbedding, FaceSample, NewFace, Person, PersonStore, StoreError,
    StoreOptions, StoredEmbedding, schema, sql,
};

/// The database file's name inside the data dir.
pub const SQLITE_FILE_NAME: &str = "ddfr.db";
/// Connections in the pool. SQLite serialises writers anyway; a few readers are plenty for a
/// two-core home server.
const MAX_CONNECTIONS: u32 = 4;
/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
/// Ids per `IN (...)` list, well under SQLite's bound-parameter limit.
const IDS_PER_QUERY: usize = 500;
/// Longest quick_check report quoted in an error.
const MAX_CHECK_LINES: usize = 5;

/// The SQLite migrations, embedded in the binary.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite backend of [`PersonStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    at_rest: AtRest,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path_or_url`: a file path, or a URL such
    /// as `sqlite:/data/ddfr.db` or `sqlite://ddfr.db?mode=rwc`. The file is checked with
    /// `PRAGMA quick_check` and migrated; a corrupt file is refused with
    /// [`StoreError::Integrity`].
    pub async fn open(path_or_url: &str) -> Result<Self, StoreError> {
        Self::open_with_options(path_or_url, &StoreOptions::default()).await
    }

    /// [`SqliteStore::open`] with options: an encryption key (a wrong or missing key for an
    /// encrypted database is refused before anything is written; a plaintext database opened
    /// with a key is encrypted), and how many pre-migration copies to keep.
    pub async fn open_with_options(
        path_or_url: &str,
        store_options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        Self::open_with(connect_options(path_or_url)?, store_options).await
    }

    /// Opens `ddfr.db` in `data_dir`, which must exist.
    pub async fn open_in_dir(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_in_dir_with_options(data_dir, &StoreOptions::default()).await
    }

    /// [`SqliteStore::open_in_dir`] with options (see [`SqliteStore::open_with_options`]).
    pub async fn open_in_dir_with_options(
        data_dir: &Path,
        store_options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new().filename(data_dir.join(SQLITE_FILE_NAME));
        Self::open_with(options, store_options).await
    }

    async fn open_with(
        options: SqliteConnectOptions,
        store_options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let at_rest = AtRest::new(store_options.encryption_key.as_ref());
        verify_key_read_only(&options, &at_rest).await?;
        let pool = connect(options).await?;
        let mut store = Self { pool, at_rest };
        if let Err(error) = store.prepare(store_options).await {
            store.pool.close().await;
            return Err(error);
        }
        tracing::debug!(path = %store.path().display(), "SQLite store open");
        Ok(store)
    }

    /// After connecting: the key check (before anything is written), the pre-migration copy,
    /// the migrations, and encrypting a plaintext database opened with a key.
    async fn prepare(&mut self, store_options: &StoreOptions) -> Result<(), StoreError> {
        let recorded = self.recorded_key_check().await?;
        self.at_rest.verify(recorded.as_deref())?;
        if recorded.is_none() && !store_options.encrypt_plaintext {
            self.at_rest = AtRest::new(None);
        }
        let applied = schema::sqlite_applied_version(&self.pool).await?;
        if let Some(from) = applied
            && from < schema::SCHEMA_VERSION
        {
            schema::sqlite_backup_before_migration(
                &self.pool,
                &self.path(),
                from,
                schema::SCHEMA_VERSION,
                store_options.migration_backups,
            )
            .await?;
        }
        MIGRATOR.run(&self.pool).await?;
        if self.at_rest.is_encrypted() && recorded.is_none() {
            let started = std::time::Instant::now();
            let sealed = self.encrypt_existing().await?;
            // The plaintext's pages were freed (and zeroed: secure_delete); the log goes too.
            self.purge_wal().await;
            tracing::info!(
                crops = sealed.crops,
                embeddings = sealed.embeddings,
                visitors = sealed.visitors,
                visitor_samples = sealed.visitor_samples,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "encryption at rest turned on: every stored crop and embedding is now encrypted"
            );
        }
        Ok(())
    }

    /// Moves the database at `path_or_url` to schema version `target` (up or down), for
    /// operators and the migration tests; a database opened by [`SqliteStore::open`] is always
    /// at [`crate::SCHEMA_VERSION`]. An existing database is first copied aside as on open
    /// (`keep_backups` copies kept), and the copy's path returned. Going down removes what the
    /// older schema cannot hold (e.g. below v3 the audit log), and an encrypted database cannot
    /// go below v4.
    pub async fn migrate_to(
        path_or_url: &str,
        target: i64,
        keep_backups: usize,
    ) -> Result<Option<PathBuf>, StoreError> {
        let options = connect_options(path_or_url)?;
        let pool = connect(options).await?;
        let result = async {
            let applied = schema::sqlite_applied_version(&pool).await?;
            let path = pool.connect_options().get_filename().to_path_buf();
            let backup = match applied {
                Some(from) if from != target => {
                    schema::sqlite_backup_before_migration(&pool, &path, from, target, keep_backups)
                        .await?
                }
                _ => None,
            };
            if applied.unwrap_or(0) <= target {
                schema::migrator_up_to(&MIGRATOR, target).run(&pool).await?;
            } else {
                MIGRATOR.undo(&pool, target).await?;
            }
            Ok(backup)
        }
        .await;
        pool.close().await;
        result
    }

    /// True when the store encrypts crops and embeddings at rest.
    pub fn is_encrypted(&self) -> bool {
        self.at_rest.is_encrypted()
    }

    pub(crate) fn at_rest(&self) -> &AtRest {
        &self.at_rest
    }
}

/// Connect options for a file path or a `sqlite:` URL.
fn connect_options(path_or_url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(if path_or_url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(path_or_url)?
    } else {
        SqliteConnectOptions::new().filename(path_or_url)
    })
}

/// Checks the key against an existing database's key check over one read-only connection,
/// before any read-write connection exists: a refused key leaves the files exactly as they
/// were (closing a read-write connection may checkpoint a log an earlier run left behind).
async fn verify_key_read_only(
    options: &SqliteConnectOptions,
    at_rest: &AtRest,
) -> Result<(), StoreError> {
    let path = options.get_filename();
    if !path.is_file() {
        return Ok(());
    }
    let refuse = |error: StoreError| match error {
        StoreError::Integrity { message } => StoreError::Integrity {
            message: format!("{} is corrupt, refusing to open it: {message}", path.display()),
        },
        other => other,
    };
    let read_only = options.clone().read_only(true).busy_timeout(BUSY_TIMEOUT);
    let mut connection =
        sqlx::ConnectOptions::connect(&read_only).await.map_err(|error| refuse(error.into()))?;
    let recorded = async {
        let has_meta: i64 =
            sqlx::query_scalar(crate::at_rest::SQLITE_HAS_META).fetch_one(&mut connection).await?;
        if has_meta == 0 {
            return Ok::<Option<Vec<u8>>, StoreError>(None);
        }
        Ok(sqlx::query_scalar(sql::KEY_CHECK_VALUE)
            .bind(crate::crypt::KEY_CHECK)
            .fetch_optional(&mut connection)
            .await?)
    }
    .await;
    let _ = connection.close().await;
    at_rest.verify(recorded.map_err(refuse)?.as_deref())
}

/// A pool with the pragmas of the module documentation, on a file that passed `quick_check`.
async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .pragma("secure_delete", "ON");
    let path = options.get_filename().display().to_string();
    let refuse = |error: StoreError| match error {
        StoreError::Integrity { message } => StoreError::Integrity {
            message: format!("{path} is corrupt, refusing to open it: {message}"),
        },
        other => other,
    };
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .after_release(|connection, _| Box::pin(outside_transaction(connection)))
        .connect_with(options)
        .await
        .map_err(|error| refuse(error.into()))?;
    // Check before migrating: a migration must never write into a damaged file.
    if let Err(error) = quick_check(&pool).await {
        pool.close().await;
        return Err(refuse(error));
    }
    Ok(pool)
}

/// Whether a released connection may go back to the pool. After a failed write SQLite may
/// roll the whole transaction back by itself (`SQLITE_FULL` on a full disk, `SQLITE_IOERR`);
/// sqlx's own `ROLLBACK` then fails and the connection still counts itself inside a
/// transaction, refusing every later `BEGIN IMMEDIATE`. Such a connection is closed instead.
async fn outside_transaction(connection: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    // Queued behind the rollback of a dropped transaction: the depth read next is final.
    connection.ping().await?;
    let reusable = !connection.is_in_transaction();
    if !reusable {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Ok(reusable)
}

impl SqliteStore {
    /// The database file's path.
    pub fn path(&self) -> PathBuf {
        self.pool.connect_options().get_filename().to_path_buf()
    }

    /// The connection pool, for diagnostics and tests (e.g. reading pragmas). Every connection
    /// has the pragmas listed in the module documentation.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Writes a consistent copy of the database to `target` (which must not exist) with
    /// `VACUUM INTO`, safe while the service is writing. The copy holds live rows only.
    pub async fn backup_to(&self, target: &Path) -> Result<(), StoreError> {
        let target = target.to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO $1").bind(target).execute(&self.pool).await?;
        Ok(())
    }

    /// Copies every write-ahead-log frame into the database and truncates the log to zero
    /// bytes. Returns false when a reader kept the checkpoint from completing (within the busy
    /// timeout); the log then still holds old frames.
    pub async fn checkpoint_truncate(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await?;
        let busy: i64 = row.try_get(0)?;
        Ok(busy == 0)
    }

    /// A write transaction (`BEGIN IMMEDIATE`: takes the write lock up front).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'_, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with(BEGIN_WRITE).await
    }

    /// What follows every committed delete: [`SqliteStore::purge_wal`].
    pub(crate) async fn after_delete(&self) {
        self.purge_wal().await;
    }

    /// After a delete: empty the write-ahead log so deleted bytes do not linger in it. The
    /// delete itself has committed, so a failure here is logged rather than returned.
    async fn purge_wal(&self) {
        match self.checkpoint_truncate().await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "WAL checkpoint after a delete was blocked by a reader; deleted bytes stay in \
                 the WAL until the next checkpoint"
            ),
            Err(error) => tracing::warn!(%error, "WAL checkpoint after a delete failed"),
        }
    }
}

fn person_from_row(row: &SqliteRow) -> Result<Person, StoreError> {
    PersonRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        surname: row.try_get(2)?,
        birthday: row.try_get(3)?,
        relationship: row.try_get(4)?,
        role: row.try_get(5)?,
        created_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
        n_faces: row.try_get(8)?,
    }
    .into_person()
}

fn face_from_row(row: &SqliteRow) -> Result<FaceSample, StoreError> {
    FaceRow {
        id: row.try_get(0)?,
        person_id: row.try_get(1)?,
        top: row.try_get(2)?,
        right: row.try_get(3)?,
        bottom: row.try_get(4)?,
        left: row.try_get(5)?,
        created_at: row.try_get(6)?,
    }
    .into_sample()
}

async fn fetch_person<'e>(
    executor: impl Executor<'e, Database = Sqlite>,
    id: PersonId,
) -> Result<Person, StoreError> {
    let row = sqlx::query(sql::PERSON_BY_ID).bind(id.0).fetch_optional(executor).await?;
    row.as_ref().map(person_from_row).unwrap_or(Err(StoreError::PersonNotFound(id)))
}

async fn person_exists<'e>(
    executor: impl Executor<'e, Database = Sqlite>,
    id: PersonId,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(sql::PERSON_EXISTS).bind(id.0).fetch_optional(executor).await?.is_some())
}

/// Fails with [`StoreError::ModelMismatch`] when `model` already has vectors of another size.
async fn check_model_dim<'e>(
    executor: impl Executor<'e, Database = Sqlite>,
    model: &ModelId,
    embedding: &Embedding,
) -> Result<(), StoreError> {
    let stored: Option<i64> =
        sqlx::query_scalar(sql::MODEL_DIM).bind(model.as_str()).fetch_optional(executor).await?;
    match stored {
        Some(dim) if dim != dim_column(embedding) => Err(StoreError::ModelMismatch {
            model: model.clone(),
            expected_dim: usize::try_from(dim).unwrap_or(0),
            found_dim: embedding.dim(),
        }),
        _ => Ok(()),
    }
}

/// `PRAGMA quick_check`: [`StoreError::Integrity`] with the first lines of its report.
async fn quick_check(pool: &SqlitePool) -> Result<(), StoreError> {
    let report: Vec<String> = sqlx::query_scalar("PRAGMA quick_check").fetch_all(pool).await?;
    if report.len() == 1 && report[0] == "ok" {
        return Ok(());
    }
    let mut message: Vec<&str> = report.iter().take(MAX_CHECK_LINES).map(String::as_str).collect();
    if report.len() > MAX_CHECK_LINES {
        message.push("...");
    }
    Err(StoreError::integrity(format!("PRAGMA quick_check: {}", message.join("; "))))
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Write transactions take the write lock up front (`BEGIN IMMEDIATE`): a deferred
/// transaction that reads first and writes later can fail with `SQLITE_BUSY` instead of
/// waiting when another writer got in between.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

#[async_trait]
impl PersonStore for SqliteStore {
    async fn create_person(&self, fields: &PersonFields) -> Result<Person, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let id: i64 = sqlx::query_scalar(sql::INSERT_PERSON)
            .bind(&fields.name)
            .bind(&fields.surname)
            .bind(fields.birthday.to_string())
            .bind(fields.relationship.as_str())
            .bind(fields.role.as_str())
            .bind(now().unix_millis())
            .fetch_one(&mut *tx)
            .await?;
        let person = fetch_person(&mut *tx, PersonId(id)).await?;
        tx.commit().await?;
        Ok(person)
    }

    async fn person(&self, id: PersonId) -> Result<Person, StoreError> {
        fetch_person(&self.pool, id).await
    }

    async fn list_persons(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<Person>, u64), StoreError> {
        // One read transaction, so the page and the total come from the same snapshot.
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(sql::PERSON_PAGE)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&mut *tx)
            .await?;
        let total: i64 = sqlx::query_scalar(sql::COUNT_PERSONS).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        let persons = rows.iter().map(person_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok((persons, count(total)))
    }

    async fn all_persons(&self) -> Result<Vec<Person>, StoreError> {
        let rows = sqlx::query(sql::ALL_PERSONS).fetch_all(&self.pool).await?;
        rows.iter().map(person_from_row).collect()
    }

    async fn persons_by_ids(&self, ids: &[PersonId]) -> Result<Vec<Person>, StoreError> {
        let mut persons = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let mut query = QueryBuilder::<Sqlite>::new(sql::PERSONS_WHERE_ID_IN);
            query.push("(");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            query.push(")");
            let rows = query.build().fetch_all(&self.pool).await?;
            for row in &rows {
                persons.push(person_from_row(row)?);
            }
        }
        persons.sort_by_key(|person| person.id);
        persons.dedup_by_key(|person| person.id);
        Ok(persons)
    }

    async fn update_person(
        &self,
        id: PersonId,
        changes: &PersonChanges,
    ) -> Result<Person, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let person = fetch_person(&mut *tx, id).await?;
        if changes.is_empty() {
            tx.commit().await?;
            return Ok(person);
        }
        let fields = changes.apply_to(&person.fields());
        sqlx::query(sql::UPDATE_PERSON)
            .bind(&fields.name)
            .bind(&fields.surname)
            .bind(fields.birthday.to_string())
            .bind(fields.relationship.as_str())
            .bind(fields.role.as_str())
            .bind(now().unix_millis().max(person.updated_at.unix_millis()))
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let person = fetch_person(&mut *tx, id).await?;
        tx.commit().await?;
        Ok(person)
    }

    async fn delete_person(&self, id: PersonId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        for statement in [
            sql::DELETE_PERSON_EMBEDDINGS,
            sql::DELETE_PERSON_CROPS,
            sql::DELETE_PERSON_FACES,
            sql::DELETE_PERSON_CONSENTS,
            sql::DELETE_PERSON_RETENTION,
        ] {
            sqlx::query(statement).bind(id.0).execute(&mut *tx).await?;
        }
        let deleted = sqlx::query(sql::DELETE_PERSON).bind(id.0).execute(&mut *tx).await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::PersonNotFound(id));
        }
        tx.commit().await?;
        self.purge_wal().await;
        Ok(())
    }

    async fn add_face(&self, person: PersonId, face: &NewFace) -> Result<FaceSample, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        if !person_exists(&mut *tx, person).await? {
            return Err(StoreError::PersonNotFound(person));
        }
        check_model_dim(&mut *tx, &face.model, &face.embedding).await?;
        let created_at = now();
        let id: i64 = sqlx::query_scalar(sql::INSERT_FACE)
            .bind(person.0)
            .bind(i64::from(face.bbox.top))
            .bind(i64::from(face.bbox.right))
            .bind(i64::from(face.bbox.bottom))
            .bind(i64::from(face.bbox.left))
            .bind(created_at.unix_millis())
            .fetch_one(&mut *tx)
            .await?;
        let crop =
            self.at_rest.seal(Field::FaceCrop { person: person.0, face: id }, &face.crop_jpeg)?;
        let field = Field::Embedding { person: person.0, face: id, model: face.model.as_str() };
        let vector = self.at_rest.seal(field, &face.embedding.to_le_bytes())?;
        sqlx::query(sql::INSERT_CROP).bind(id).bind(crop).execute(&mut *tx).await?;
        sqlx::query(sql::UPSERT_EMBEDDING)
            .bind(id)
            .bind(face.model.as_str())
            .bind(dim_column(&face.embedding))
            .bind(vector)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(FaceSample { id: FaceId(id), person, bbox: face.bbox, created_at })
    }

    async fn faces(&self, person: PersonId) -> Result<Vec<FaceSample>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !person_exists(&mut *tx, person).await? {
            return Err(StoreError::PersonNotFound(person));
        }
        let rows = sqlx::query(sql::FACES_OF_PERSON).bind(person.0).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter().map(face_from_row).collect()
    }

    async fn face_crop(&self, person: PersonId, face: FaceId) -> Result<Vec<u8>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let crop: Option<Vec<u8>> = sqlx::query_scalar(sql::FACE_CROP)
            .bind(face.0)
            .bind(person.0)
            .fetch_optional(&mut *tx)
            .await?;
        match crop {
            Some(crop) => {
                self.at_rest.open(Field::FaceCrop { person: person.0, face: face.0 }, &crop)
            }
            None if person_exists(&mut *tx, person).await? => Err(StoreError::FaceNotFound(face)),
            None => Err(StoreError::PersonNotFound(person)),
        }
    }

    async fn delete_face(&self, person: PersonId, face: FaceId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        for statement in [sql::DELETE_FACE_EMBEDDINGS, sql::DELETE_FACE_CROP] {
            sqlx::query(statement).bind(face.0).bind(person.0).execute(&mut *tx).await?;
        }
        let deleted =
            sqlx::query(sql::DELETE_FACE).bind(face.0).bind(person.0).execute(&mut *tx).await?;
        if deleted.rows_affected() == 0 {
            return Err(if person_exists(&mut *tx, person).await? {
                StoreError::FaceNotFound(face)
            } else {
                StoreError::PersonNotFound(person)
            });
        }
        tx.commit().await?;
        self.purge_wal().await;
        Ok(())
    }

    async fn person_embeddings(&self, person: PersonId) -> Result<Vec<FaceEmbedding>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !person_exists(&mut *tx, person).await? {
            return Err(StoreError::PersonNotFound(person));
        }
        let rows =
            sqlx::query(sql::EMBEDDINGS_OF_PERSON).bind(person.0).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let (face, model): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
                let field = Field::Embedding { person: person.0, face, model: &model };
                let vector = self.at_rest.open(field, row.try_get(3)?)?;
                decode_face_embedding(face, model, row.try_get(2)?, &vector)
            })
            .collect()
    }

    async fn embeddings(&self, model: &ModelId) -> Result<Vec<StoredEmbedding>, StoreError> {
        let rows = sqlx::query(sql::EMBEDDINGS_OF_MODEL)
            .bind(model.as_str())
            .fetch_all(&self.pool)
            .await?;
        let embeddings = rows
            .iter()
            .map(|row| {
                let (face, person): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                let field = Field::Embedding { person, face, model: model.as_str() };
                let vector = self.at_rest.open(field, row.try_get(3)?)?;
                decode_embedding(face, person, row.try_get(2)?, &vector)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        check_single_dim(model, &embeddings)?;
        Ok(embeddings)
    }

    async fn set_embedding(
        &self,
        face: FaceId,
        model: &ModelId,
        embedding: &Embedding,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let person: Option<i64> =
            sqlx::query_scalar(sql::FACE_PERSON).bind(face.0).fetch_optional(&mut *tx).await?;
        let Some(person) = person else {
            return Err(StoreError::FaceNotFound(face));
        };
        check_model_dim(&mut *tx, model, embedding).await?;
        let field = Field::Embedding { person, face: face.0, model: model.as_str() };
        let vector = self.at_rest.seal(field, &embedding.to_le_bytes())?;
        sqlx::query(sql::UPSERT_EMBEDDING)
            .bind(face.0)
            .bind(model.as_str())
            .bind(dim_column(embedding))
            .bind(vector)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn embedding_models(&self) -> Result<Vec<EmbeddingModelCount>, StoreError> {
        let rows: Vec<(String, i64, i64)> =
            sqlx::query_as(sql::EMBEDDING_MODELS).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(model, dim, n)| EmbeddingModelCount {
                model: ModelId::new(model),
                dim: usize::try_from(dim).unwrap_or(0),
                n_embeddings: count(n),
            })
            .collect())
    }

    async fn faces_without_embedding(
        &self,
        model: &ModelId,
    ) -> Result<Vec<(FaceId, PersonId)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(sql::FACES_WITHOUT_EMBEDDING)
            .bind(model.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(face, person)| (FaceId(face), PersonId(person))).collect())
    }

    async fn count_persons(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(sql::COUNT_PERSONS).fetch_one(&self.pool).await?;
        Ok(count(n))
    }

    async fn count_faces(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(sql::COUNT_FACES).fetch_one(&self.pool).await?;
        Ok(count(n))
    }

    async fn check_integrity(&self) -> Result<(), StoreError> {
        quick_check(&self.pool).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

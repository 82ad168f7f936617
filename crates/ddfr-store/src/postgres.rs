//! `PgStore`: the PostgreSQL backend (feature `postgres`), same contract as `SqliteStore`.
//!
//! Deletes remove the rows in one transaction; PostgreSQL keeps dead tuples until `VACUUM`
//! and does not zero them, so unlike SQLite this backend makes no byte-level promise about
//! deleted crops and embeddings (see the crate documentation).

use async_trait::async_trait;
use ddfr_core::{Embedding, FaceId, ModelId, PersonId};
use ddfr_protocol::{PersonChanges, PersonFields};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, Postgres, QueryBuilder, Row};

use crate::crypt::{AtRest, Field};
use crate::model::{
    FaceRow, PersonRow, check_single_dim, decode_embedding, decode_face_embedding, dim_column, now,
};
use crate::{
    DatabaseUrl, EmbeddingModelCount, FaceEmbedding, FaceSample, NewFace, Person, PersonStore,
    StoreError, StoreOptions, StoredEmbedding, schema, sql,
};

/// Connections in the pool; the server's REST traffic is light and never on the frame path.
const MAX_CONNECTIONS: u32 = 8;
/// Ids per `IN (...)` list.
const IDS_PER_QUERY: usize = 500;

/// The PostgreSQL migrations, embedded in the binary.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL backend of [`PersonStore`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    at_rest: AtRest,
}

impl PgStore {
    /// Connects to `url` (`postgres://...`) and applies the migrations.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, StoreError> {
        Self::connect_with_options(url, &StoreOptions::default()).await
    }

    /// [`PgStore::connect`] with options: the encryption key is checked against the
    /// database's key check before anything is written, and a plaintext database connected
    /// with a key is encrypted (as `SqliteStore`). PostgreSQL takes no pre-migration copy (use
    /// `pg_dump`); `migration_backups` is ignored.
    pub async fn connect_with_options(
        url: &DatabaseUrl,
        store_options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let pool =
            PgPoolOptions::new().max_connections(MAX_CONNECTIONS).connect(url.expose()).await?;
        let mut store = Self { pool, at_rest: AtRest::new(store_options.encryption_key.as_ref()) };
        if let Err(error) = store.prepare(store_options).await {
            store.pool.close().await;
            return Err(error);
        }
        tracing::debug!(url = %url, "PostgreSQL store open");
        Ok(store)
    }

    /// The key check (before anything is written), the migrations, and encrypting a plaintext
    /// database connected with a key.
    async fn prepare(&mut self, store_options: &StoreOptions) -> Result<(), StoreError> {
        let recorded = self.recorded_key_check().await?;
        self.at_rest.verify(recorded.as_deref())?;
        if recorded.is_none() && !store_options.encrypt_plaintext {
            self.at_rest = AtRest::new(None);
        }
        MIGRATOR.run(&self.pool).await?;
        if self.at_rest.is_encrypted() && recorded.is_none() {
            let sealed = self.encrypt_existing().await?;
            tracing::info!(
                crops = sealed.crops,
                embeddings = sealed.embeddings,
                visitors = sealed.visitors,
                visitor_samples = sealed.visitor_samples,
                "encryption at rest turned on: every stored crop and embedding is now encrypted \
                 (PostgreSQL keeps the old row versions until VACUUM)"
            );
        }
        Ok(())
    }

    /// Moves the database at `url` to schema version `target` (up or down), as
    /// `SqliteStore::migrate_to` but without a copy (use `pg_dump` first).
    pub async fn migrate_to(url: &DatabaseUrl, target: i64) -> Result<(), StoreError> {
        let pool = PgPoolOptions::new().max_connections(1).connect(url.expose()).await?;
        let result = async {
            let has_table: i64 = sqlx::query_scalar(
                "SELECT CAST(CASE WHEN to_regclass('_sqlx_migrations') IS NULL THEN 0 ELSE 1 END \
                 AS BIGINT)",
            )
            .fetch_one(&pool)
            .await?;
            let applied: Option<i64> = if has_table == 0 {
                None
            } else {
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&pool)
                    .await?
            };
            if applied.unwrap_or(0) <= target {
                schema::migrator_up_to(&MIGRATOR, target).run(&pool).await?;
            } else {
                MIGRATOR.undo(&pool, target).await?;
            }
            Ok(())
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

    /// The connection pool, for diagnostics and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// What follows a committed delete: nothing (PostgreSQL leaves dead tuples to VACUUM; see
    /// the crate documentation).
    pub(crate) async fn after_delete(&self) {}
}

fn person_from_row(row: &PgRow) -> Result<Person, StoreError> {
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

fn face_from_row(row: &PgRow) -> Result<FaceSample, StoreError> {
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
    executor: impl Executor<'e, Database = Postgres>,
    id: PersonId,
) -> Result<Person, StoreError> {
    let row = sqlx::query(sql::PERSON_BY_ID).bind(id.0).fetch_optional(executor).await?;
    row.as_ref().map(person_from_row).unwrap_or(Err(StoreError::PersonNotFound(id)))
}

async fn person_exists<'e>(
    executor: impl Executor<'e, Database = Postgres>,
    id: PersonId,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(sql::PERSON_EXISTS).bind(id.0).fetch_optional(executor).await?.is_some())
}

/// Fails with [`StoreError::ModelMismatch`] when `model` already has vectors of another size.
async fn check_model_dim<'e>(
    executor: impl Executor<'e, Database = Postgres>,
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

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[async_trait]
impl PersonStore for PgStore {
    async fn create_person(&self, fields: &PersonFields) -> Result<Person, StoreError> {
        let mut tx = self.pool.begin().await?;
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
            let mut query = QueryBuilder::<Postgres>::new(sql::PERSONS_WHERE_ID_IN);
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
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
        Ok(())
    }

    async fn add_face(&self, person: PersonId, face: &NewFace) -> Result<FaceSample, StoreError> {
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
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
        // PostgreSQL checks its own pages; a round trip shows the server answers.
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

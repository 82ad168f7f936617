//! SQL text shared by both backends. `$N` placeholders are understood by PostgreSQL and by
//! sqlx's SQLite driver alike, so each statement is written once.

/// Columns of a person plus its face count; `p` is `persons`.
macro_rules! person_select {
    () => {
        "SELECT p.id, p.name, p.surname, p.birthday, p.relationship, p.role, p.created_at, \
         p.updated_at, (SELECT COUNT(*) FROM faces f WHERE f.person_id = p.id) AS n_faces \
         FROM persons p "
    };
}

pub const INSERT_PERSON: &str = "INSERT INTO persons \
     (name, surname, birthday, relationship, role, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";
pub const PERSON_BY_ID: &str = concat!(person_select!(), "WHERE p.id = $1");
pub const PERSON_PAGE: &str = concat!(person_select!(), "ORDER BY p.id LIMIT $1 OFFSET $2");
pub const ALL_PERSONS: &str = concat!(person_select!(), "ORDER BY p.id");
/// Followed by a parenthesised id list built with `QueryBuilder`.
pub const PERSONS_WHERE_ID_IN: &str = concat!(person_select!(), "WHERE p.id IN ");
pub const COUNT_PERSONS: &str = "SELECT COUNT(*) FROM persons";
pub const PERSON_EXISTS: &str = "SELECT 1 FROM persons WHERE id = $1";
pub const UPDATE_PERSON: &str = "UPDATE persons SET name = $1, surname = $2, birthday = $3, \
     relationship = $4, role = $5, updated_at = $6 WHERE id = $7";

/// Deleting a person deletes, in order, its embeddings, crops, face rows and the person row,
/// explicitly rather than through `ON DELETE CASCADE` alone, so the removal does not depend on
/// a pragma being in force.
pub const DELETE_PERSON_EMBEDDINGS: &str =
    "DELETE FROM embeddings WHERE face_id IN (SELECT id FROM faces WHERE person_id = $1)";
pub const DELETE_PERSON_CROPS: &str =
    "DELETE FROM face_crops WHERE face_id IN (SELECT id FROM faces WHERE person_id = $1)";
pub const DELETE_PERSON_FACES: &str = "DELETE FROM faces WHERE person_id = $1";
pub const DELETE_PERSON: &str = "DELETE FROM persons WHERE id = $1";

pub const INSERT_FACE: &str = "INSERT INTO faces \
     (person_id, box_top, box_right, box_bottom, box_left, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
pub const INSERT_CROP: &str = "INSERT INTO face_crops (face_id, jpeg) VALUES ($1, $2)";
pub const UPSERT_EMBEDDING: &str = "INSERT INTO embeddings (face_id, model, dim, vector) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (face_id, model) DO UPDATE SET dim = excluded.dim, vector = excluded.vector";
pub const MODEL_DIM: &str = "SELECT dim FROM embeddings WHERE model = $1 LIMIT 1";
pub const FACES_OF_PERSON: &str = "SELECT id, person_id, box_top, box_right, box_bottom, \
     box_left, created_at FROM faces WHERE person_id = $1 ORDER BY id";
pub const FACE_PERSON: &str = "SELECT person_id FROM faces WHERE id = $1";
pub const FACE_CROP: &str = "SELECT c.jpeg FROM face_crops c JOIN faces f ON f.id = c.face_id \
     WHERE f.id = $1 AND f.person_id = $2";
pub const DELETE_FACE_EMBEDDINGS: &str = "DELETE FROM embeddings WHERE face_id = \
     (SELECT id FROM faces WHERE id = $1 AND person_id = $2)";
pub const DELETE_FACE_CROP: &str = "DELETE FROM face_crops WHERE face_id = \
     (SELECT id FROM faces WHERE id = $1 AND person_id = $2)";
pub const DELETE_FACE: &str = "DELETE FROM faces WHERE id = $1 AND person_id = $2";
pub const COUNT_FACES: &str = "SELECT COUNT(*) FROM faces";
pub const EMBEDDINGS_OF_MODEL: &str = "SELECT e.face_id, f.person_id, e.dim, e.vector \
     FROM embeddings e JOIN faces f ON f.id = e.face_id WHERE e.model = $1 ORDER BY e.face_id";
pub const EMBEDDING_MODELS: &str =
    "SELECT model, dim, COUNT(*) FROM embeddings GROUP BY model, dim ORDER BY model, dim";
pub const FACES_WITHOUT_EMBEDDING: &str = "SELECT f.id, f.person_id FROM faces f \
     WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.face_id = f.id AND e.model = $1) \
     ORDER BY f.id";

/// Unknown visitors (schema v2).
pub const INSERT_VISITOR: &str = "INSERT INTO visitors \
     (id, model, dim, centroid, sightings, first_seen, last_seen) \
     VALUES ($1, $2, $3, $4, $5, $6, $6)";
pub const UPDATE_VISITOR: &str =
    "UPDATE visitors SET centroid = $1, sightings = $2, last_seen = $3 WHERE id = $4";
/// Inserted with empty values first: the sample's id is part of its sealed values' associated
/// data, so they are written by [`UPDATE_VISITOR_SAMPLE`] once the id is known.
pub const INSERT_VISITOR_SAMPLE: &str = "INSERT INTO visitor_samples \
     (visitor_id, vector, jpeg, created_at) VALUES ($1, $2, $3, $4) RETURNING id";
pub const UPDATE_VISITOR_SAMPLE: &str =
    "UPDATE visitor_samples SET vector = $1, jpeg = $2 WHERE id = $3";
pub const ALL_VISITORS: &str = "SELECT v.id, v.model, v.dim, v.centroid, v.sightings, \
     v.first_seen, v.last_seen, \
     (SELECT COUNT(*) FROM visitor_samples s WHERE s.visitor_id = v.id) AS n_samples \
     FROM visitors v ORDER BY v.last_seen DESC, v.id";
pub const VISITOR_SAMPLES: &str = "SELECT vector, jpeg, created_at, id FROM visitor_samples \
     WHERE visitor_id = $1 ORDER BY id";
pub const DELETE_VISITOR_SAMPLES: &str = "DELETE FROM visitor_samples WHERE visitor_id = $1";
pub const DELETE_VISITOR: &str = "DELETE FROM visitors WHERE id = $1";
pub const DELETE_STALE_VISITOR_SAMPLES: &str = "DELETE FROM visitor_samples WHERE visitor_id IN \
     (SELECT id FROM visitors WHERE last_seen < $1)";
pub const DELETE_STALE_VISITORS: &str = "DELETE FROM visitors WHERE last_seen < $1";

/// The append-only audit log (schema v3). No UPDATE or DELETE statement exists for it.
pub const INSERT_AUDIT: &str = "INSERT INTO audit_log \
     (at, actor, action, target_kind, target_id, person_id, result, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
pub const AUDIT_PAGE: &str = "SELECT id, at, actor, action, target_kind, target_id, person_id, \
     result, detail FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2";
pub const COUNT_AUDIT: &str = "SELECT COUNT(*) FROM audit_log";
pub const AUDIT_OF_PERSON: &str = "SELECT id, at, actor, action, target_kind, target_id, \
     person_id, result, detail FROM audit_log WHERE person_id = $1 ORDER BY id";

/// A person's embeddings of every model, for their export.
pub const EMBEDDINGS_OF_PERSON: &str = "SELECT e.face_id, e.model, e.dim, e.vector \
     FROM embeddings e JOIN faces f ON f.id = e.face_id WHERE f.person_id = $1 \
     ORDER BY e.face_id, e.model";

/// Encryption at rest (schema v4): the key check, and the pages an existing plaintext database
/// is encrypted in (each page starts after the last key of the previous one).
pub const KEY_CHECK_VALUE: &str = "SELECT value FROM store_meta WHERE key = $1";
pub const INSERT_KEY_CHECK: &str = "INSERT INTO store_meta (key, value) VALUES ($1, $2)";
pub const CROPS_PAGE: &str = "SELECT c.face_id, f.person_id, c.jpeg FROM face_crops c \
     JOIN faces f ON f.id = c.face_id WHERE c.face_id > $1 ORDER BY c.face_id LIMIT $2";
pub const UPDATE_CROP: &str = "UPDATE face_crops SET jpeg = $1 WHERE face_id = $2";
pub const EMBEDDINGS_PAGE: &str = "SELECT e.face_id, f.person_id, e.model, e.vector \
     FROM embeddings e JOIN faces f ON f.id = e.face_id \
     WHERE e.face_id > $1 OR (e.face_id = $1 AND e.model > $2) \
     ORDER BY e.face_id, e.model LIMIT $3";
pub const UPDATE_EMBEDDING_VECTOR: &str =
    "UPDATE embeddings SET vector = $1 WHERE face_id = $2 AND model = $3";
pub const VISITORS_PAGE: &str =
    "SELECT id, centroid FROM visitors WHERE id > $1 ORDER BY id LIMIT $2";
pub const UPDATE_VISITOR_CENTROID: &str = "UPDATE visitors SET centroid = $1 WHERE id = $2";
pub const VISITOR_SAMPLES_PAGE: &str = "SELECT id, visitor_id, vector, jpeg \
     FROM visitor_samples WHERE id > $1 ORDER BY id LIMIT $2";

/// Consent records and retention (schema v5).
pub const INSERT_CONSENT: &str = "INSERT INTO consents (person_id, subject, given_at, method, \
     notice_version, purpose, retention_term, recorded_by, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
pub const CONSENTS_OF_PERSON: &str = "SELECT id, person_id, subject, given_at, method, \
     notice_version, purpose, retention_term, recorded_by, recorded_at FROM consents \
     WHERE person_id = $1 ORDER BY id";
macro_rules! retention_select {
    () => {
        "SELECT p.id, p.created_at, r.retain_until, r.last_matched_at FROM persons p \
         LEFT JOIN person_retention r ON r.person_id = p.id "
    };
}
pub const RETENTION_OF_PERSON: &str = concat!(retention_select!(), "WHERE p.id = $1");
pub const ALL_RETENTIONS: &str = concat!(retention_select!(), "ORDER BY p.id");
pub const UPSERT_RETAIN_UNTIL: &str = "INSERT INTO person_retention (person_id, retain_until) \
     VALUES ($1, $2) ON CONFLICT (person_id) DO UPDATE SET retain_until = excluded.retain_until";
/// Keeps the later of the stored and the new time; skips a person deleted meanwhile.
pub const UPSERT_LAST_MATCH: &str = "INSERT INTO person_retention (person_id, last_matched_at) \
     SELECT id, CAST($2 AS BIGINT) FROM persons WHERE id = $1 \
     ON CONFLICT (person_id) DO UPDATE SET last_matched_at = CASE \
     WHEN person_retention.last_matched_at IS NULL \
       OR person_retention.last_matched_at < excluded.last_matched_at \
     THEN excluded.last_matched_at ELSE person_retention.last_matched_at END";
/// Deleting a person also deletes these, explicitly (see [`DELETE_PERSON_EMBEDDINGS`]).
pub const DELETE_PERSON_CONSENTS: &str = "DELETE FROM consents WHERE person_id = $1";
pub const DELETE_PERSON_RETENTION: &str = "DELETE FROM person_retention WHERE person_id = $1";

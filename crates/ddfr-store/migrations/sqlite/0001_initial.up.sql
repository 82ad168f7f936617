-- ddfr schema v1 (SQLite). The store is the truth; the in-memory index is rebuilt from it.
-- AUTOINCREMENT keeps ids from ever being reused, so a stale index entry or a client holding an
-- old id can never point at a different person or face.

CREATE TABLE persons (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    surname      TEXT    NOT NULL CHECK (length(surname) BETWEEN 1 AND 100),
    birthday     TEXT    NOT NULL CHECK (birthday GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    relationship TEXT    NOT NULL CHECK (relationship IN ('famiglia', 'partner', 'amico', 'collega', 'conoscente', 'altro')),
    role         TEXT    NOT NULL CHECK (role IN ('user', 'guest')),
    created_at   INTEGER NOT NULL, -- Unix milliseconds, UTC
    updated_at   INTEGER NOT NULL
) STRICT;

-- One enrolled photo of a person: the face box in that photo.
CREATE TABLE faces (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id  INTEGER NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    box_top    INTEGER NOT NULL,
    box_right  INTEGER NOT NULL,
    box_bottom INTEGER NOT NULL,
    box_left   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX faces_by_person ON faces (person_id);

-- The face crop as JPEG, kept so embeddings can be recomputed when the face model changes.
CREATE TABLE face_crops (
    face_id INTEGER PRIMARY KEY REFERENCES faces (id) ON DELETE CASCADE,
    jpeg    BLOB    NOT NULL
) STRICT;

-- Embeddings are little-endian f32 vectors tagged with their model: vectors of different
-- models are never compared, and one face may have an embedding per model.
CREATE TABLE embeddings (
    face_id INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    model   TEXT    NOT NULL CHECK (length(model) > 0),
    dim     INTEGER NOT NULL CHECK (dim > 0),
    vector  BLOB    NOT NULL CHECK (length(vector) = 4 * dim),
    PRIMARY KEY (face_id, model)
) STRICT;

CREATE INDEX embeddings_by_model ON embeddings (model);

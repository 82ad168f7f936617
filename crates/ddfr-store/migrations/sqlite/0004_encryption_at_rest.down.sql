-- Undoes ddfr schema v4 (SQLite). An encrypted database is refused: schema v3 has no key
-- check, and its code would read sealed values as plaintext. The refusal is a named CHECK
-- failure, which rolls the whole downgrade back.

CREATE TEMP TABLE downgrade_guard (
    encrypted INTEGER
        CONSTRAINT an_encrypted_database_cannot_be_downgraded_below_v4 CHECK (encrypted = 0)
);
INSERT INTO downgrade_guard (encrypted)
    SELECT 1 FROM store_meta WHERE key = 'encryption_key_check';
DROP TABLE downgrade_guard;

CREATE TABLE embeddings_v3 (
    face_id INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    model   TEXT    NOT NULL CHECK (length(model) > 0),
    dim     INTEGER NOT NULL CHECK (dim > 0),
    vector  BLOB    NOT NULL CHECK (length(vector) = 4 * dim),
    PRIMARY KEY (face_id, model)
) STRICT;
INSERT INTO embeddings_v3 (face_id, model, dim, vector)
    SELECT face_id, model, dim, vector FROM embeddings;
DROP TABLE embeddings;
ALTER TABLE embeddings_v3 RENAME TO embeddings;
CREATE INDEX embeddings_by_model ON embeddings (model);

CREATE TABLE visitors_v3 (
    id         INTEGER PRIMARY KEY,
    model      TEXT    NOT NULL CHECK (length(model) > 0),
    dim        INTEGER NOT NULL CHECK (dim > 0),
    centroid   BLOB    NOT NULL CHECK (length(centroid) = 4 * dim),
    sightings  INTEGER NOT NULL CHECK (sightings > 0),
    first_seen INTEGER NOT NULL, -- Unix milliseconds, UTC
    last_seen  INTEGER NOT NULL
) STRICT;
INSERT INTO visitors_v3 (id, model, dim, centroid, sightings, first_seen, last_seen)
    SELECT id, model, dim, centroid, sightings, first_seen, last_seen FROM visitors;

CREATE TABLE visitor_samples_v3 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor_id INTEGER NOT NULL REFERENCES visitors_v3 (id) ON DELETE CASCADE,
    vector     BLOB    NOT NULL,
    jpeg       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO visitor_samples_v3 (id, visitor_id, vector, jpeg, created_at)
    SELECT id, visitor_id, vector, jpeg, created_at FROM visitor_samples;
DELETE FROM sqlite_sequence WHERE name = 'visitor_samples_v3';
UPDATE sqlite_sequence SET name = 'visitor_samples_v3' WHERE name = 'visitor_samples';

DROP TABLE visitor_samples;
DROP TABLE visitors;
ALTER TABLE visitors_v3 RENAME TO visitors;
ALTER TABLE visitor_samples_v3 RENAME TO visitor_samples;
CREATE INDEX visitors_by_last_seen ON visitors (last_seen);
CREATE INDEX visitor_samples_by_visitor ON visitor_samples (visitor_id);

DROP TABLE store_meta;

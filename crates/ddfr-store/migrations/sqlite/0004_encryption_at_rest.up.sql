-- ddfr schema v4 (SQLite): optional encryption at rest of crops and embeddings.
-- `store_meta` records facts about the database itself; its row `encryption_key_check` (a known
-- text sealed under the key) marks an encrypted database and lets a wrong key be refused before
-- anything is read or written.
-- A sealed vector is 41 bytes longer than its plaintext (version byte, 24-byte nonce, 16-byte
-- tag; see src/crypt.rs), so the length checks of `embeddings.vector` and `visitors.centroid`
-- accept both lengths. SQLite cannot change a CHECK in place: both tables are rebuilt with
-- every row, the visitor samples with them (they reference the visitors), keeping ids and
-- the sample id sequence.

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 64),
    value BLOB NOT NULL
) STRICT;

CREATE TABLE embeddings_v4 (
    face_id INTEGER NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    model   TEXT    NOT NULL CHECK (length(model) > 0),
    dim     INTEGER NOT NULL CHECK (dim > 0),
    vector  BLOB    NOT NULL CHECK (length(vector) IN (4 * dim, 4 * dim + 41)),
    PRIMARY KEY (face_id, model)
) STRICT;
INSERT INTO embeddings_v4 (face_id, model, dim, vector)
    SELECT face_id, model, dim, vector FROM embeddings;
DROP TABLE embeddings;
ALTER TABLE embeddings_v4 RENAME TO embeddings;
CREATE INDEX embeddings_by_model ON embeddings (model);

CREATE TABLE visitors_v4 (
    id         INTEGER PRIMARY KEY,
    model      TEXT    NOT NULL CHECK (length(model) > 0),
    dim        INTEGER NOT NULL CHECK (dim > 0),
    centroid   BLOB    NOT NULL CHECK (length(centroid) IN (4 * dim, 4 * dim + 41)),
    sightings  INTEGER NOT NULL CHECK (sightings > 0),
    first_seen INTEGER NOT NULL, -- Unix milliseconds, UTC
    last_seen  INTEGER NOT NULL
) STRICT;
INSERT INTO visitors_v4 (id, model, dim, centroid, sightings, first_seen, last_seen)
    SELECT id, model, dim, centroid, sightings, first_seen, last_seen FROM visitors;

CREATE TABLE visitor_samples_v4 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor_id INTEGER NOT NULL REFERENCES visitors_v4 (id) ON DELETE CASCADE,
    vector     BLOB    NOT NULL,
    jpeg       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO visitor_samples_v4 (id, visitor_id, vector, jpeg, created_at)
    SELECT id, visitor_id, vector, jpeg, created_at FROM visitor_samples;
-- The id sequence moves with the table, so a deleted sample's id is never handed out again.
DELETE FROM sqlite_sequence WHERE name = 'visitor_samples_v4';
UPDATE sqlite_sequence SET name = 'visitor_samples_v4' WHERE name = 'visitor_samples';

-- Children first: dropping a parent with foreign keys on would cascade into its children.
DROP TABLE visitor_samples;
DROP TABLE visitors;
ALTER TABLE visitors_v4 RENAME TO visitors;
ALTER TABLE visitor_samples_v4 RENAME TO visitor_samples;
CREATE INDEX visitors_by_last_seen ON visitors (last_seen);
CREATE INDEX visitor_samples_by_visitor ON visitor_samples (visitor_id);

-- ddfr schema v1 (PostgreSQL). Same tables and meaning as migrations/sqlite/0001_initial.sql.
-- Integers are BIGINT throughout so both backends decode the same Rust types.

CREATE TABLE persons (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT   NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    surname      TEXT   NOT NULL CHECK (char_length(surname) BETWEEN 1 AND 100),
    birthday     TEXT   NOT NULL CHECK (birthday ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'),
    relationship TEXT   NOT NULL CHECK (relationship IN ('famiglia', 'partner', 'amico', 'collega', 'conoscente', 'altro')),
    role         TEXT   NOT NULL CHECK (role IN ('user', 'guest')),
    created_at   BIGINT NOT NULL, -- Unix milliseconds, UTC
    updated_at   BIGINT NOT NULL
);

CREATE TABLE faces (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id  BIGINT NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    box_top    BIGINT NOT NULL,
    box_right  BIGINT NOT NULL,
    box_bottom BIGINT NOT NULL,
    box_left   BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX faces_by_person ON faces (person_id);

CREATE TABLE face_crops (
    face_id BIGINT PRIMARY KEY REFERENCES faces (id) ON DELETE CASCADE,
    jpeg    BYTEA  NOT NULL
);

CREATE TABLE embeddings (
    face_id BIGINT NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    model   TEXT   NOT NULL CHECK (char_length(model) > 0),
    dim     BIGINT NOT NULL CHECK (dim > 0),
    vector  BYTEA  NOT NULL CHECK (octet_length(vector) = 4 * dim),
    PRIMARY KEY (face_id, model)
);

CREATE INDEX embeddings_by_model ON embeddings (model);

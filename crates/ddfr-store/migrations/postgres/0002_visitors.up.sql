-- ddfr schema v2 (PostgreSQL): recurring unknown visitors. Same tables and meaning as
-- migrations/sqlite/0002_visitors.sql.

CREATE TABLE visitors (
    id         BIGINT PRIMARY KEY,
    model      TEXT   NOT NULL CHECK (char_length(model) > 0),
    dim        BIGINT NOT NULL CHECK (dim > 0),
    centroid   BYTEA  NOT NULL CHECK (octet_length(centroid) = 4 * dim),
    sightings  BIGINT NOT NULL CHECK (sightings > 0),
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);

CREATE INDEX visitors_by_last_seen ON visitors (last_seen);

CREATE TABLE visitor_samples (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    visitor_id BIGINT NOT NULL REFERENCES visitors (id) ON DELETE CASCADE,
    vector     BYTEA  NOT NULL,
    jpeg       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX visitor_samples_by_visitor ON visitor_samples (visitor_id);

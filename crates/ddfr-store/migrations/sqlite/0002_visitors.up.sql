-- ddfr schema v2 (SQLite): recurring unknown visitors, kept only when the owner turns the
-- feature on (DDFR_UNKNOWN_VISITORS) and only for the retention period. Never raw frames: an
-- unknown visitor is an averaged embedding plus a few aligned face chips.
-- Ids are random 48-bit integers chosen by the server, so an anonymous id never reveals how
-- many visitors were seen and is never reused.

CREATE TABLE visitors (
    id         INTEGER PRIMARY KEY,
    model      TEXT    NOT NULL CHECK (length(model) > 0),
    dim        INTEGER NOT NULL CHECK (dim > 0),
    centroid   BLOB    NOT NULL CHECK (length(centroid) = 4 * dim),
    sightings  INTEGER NOT NULL CHECK (sightings > 0),
    first_seen INTEGER NOT NULL, -- Unix milliseconds, UTC
    last_seen  INTEGER NOT NULL
) STRICT;

CREATE INDEX visitors_by_last_seen ON visitors (last_seen);

-- A few aligned face chips of a visitor with their embeddings, for the UI and for promotion.
CREATE TABLE visitor_samples (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor_id INTEGER NOT NULL REFERENCES visitors (id) ON DELETE CASCADE,
    vector     BLOB    NOT NULL,
    jpeg       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX visitor_samples_by_visitor ON visitor_samples (visitor_id);

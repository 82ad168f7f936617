-- ddfr schema v3 (SQLite): the append-only audit log (who changed what, and when).
-- Entries name persons, faces and visitors by id only, never by name, and never hold images,
-- embeddings or tokens, so deleting a person keeps their audit trail without keeping their
-- data. No foreign keys: an entry outlives the row it is about.
-- The triggers make the table append-only for every writer, not only for the API.

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL, -- Unix milliseconds, UTC
    actor       TEXT    NOT NULL CHECK (length(actor) BETWEEN 1 AND 32),
    action      TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 32),
    target_kind TEXT    CHECK (target_kind IS NULL OR length(target_kind) BETWEEN 1 AND 32),
    target_id   INTEGER,
    person_id   INTEGER, -- the person the entry concerns, for their export
    result      TEXT    NOT NULL CHECK (result IN ('success', 'failure')),
    detail      TEXT    CHECK (detail IS NULL OR length(detail) <= 1000)
) STRICT;

CREATE INDEX audit_log_by_person ON audit_log (person_id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

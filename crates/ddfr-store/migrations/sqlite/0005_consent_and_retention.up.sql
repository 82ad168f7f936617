-- ddfr schema v5 (SQLite): consent records and per-person retention.
-- `consents`: one row per consent given for a person (who gave it, when, how, under which
-- notice, for what purpose and for how long, and who recorded it). Withdrawing consent deletes
-- the person, and these rows with them; the audit log keeps the fact (by id only).
-- `person_retention`: an explicit `retain_until` date set on the person (NULL: the default
-- rule, DDFR_RETENTION_DAYS after the last match or the creation) and the last time the person
-- was recognised (flushed from memory in batches, never written per frame).
-- Both reference the person with ON DELETE CASCADE; deletes also remove them explicitly.

CREATE TABLE consents (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id      INTEGER NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    subject        TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    given_at       INTEGER NOT NULL, -- Unix milliseconds, UTC
    method         TEXT    NOT NULL CHECK (method IN ('written', 'electronic', 'verbal', 'other')),
    notice_version TEXT    NOT NULL CHECK (length(notice_version) BETWEEN 1 AND 64),
    purpose        TEXT    NOT NULL CHECK (length(purpose) BETWEEN 1 AND 500),
    retention_term TEXT    NOT NULL CHECK (length(retention_term) BETWEEN 1 AND 200),
    recorded_by    TEXT    NOT NULL CHECK (length(recorded_by) BETWEEN 1 AND 100),
    recorded_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX consents_by_person ON consents (person_id);

CREATE TABLE person_retention (
    person_id       INTEGER PRIMARY KEY REFERENCES persons (id) ON DELETE CASCADE,
    retain_until    TEXT    CHECK (retain_until IS NULL
                                   OR retain_until GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    last_matched_at INTEGER -- Unix milliseconds, UTC
) STRICT;

-- ddfr schema v5 (PostgreSQL): consent records and per-person retention. Same tables and
-- meaning as migrations/sqlite/0005_consent_and_retention.up.sql.

CREATE TABLE consents (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id      BIGINT NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    subject        TEXT   NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 200),
    given_at       BIGINT NOT NULL,
    method         TEXT   NOT NULL CHECK (method IN ('written', 'electronic', 'verbal', 'other')),
    notice_version TEXT   NOT NULL CHECK (char_length(notice_version) BETWEEN 1 AND 64),
    purpose        TEXT   NOT NULL CHECK (char_length(purpose) BETWEEN 1 AND 500),
    retention_term TEXT   NOT NULL CHECK (char_length(retention_term) BETWEEN 1 AND 200),
    recorded_by    TEXT   NOT NULL CHECK (char_length(recorded_by) BETWEEN 1 AND 100),
    recorded_at    BIGINT NOT NULL
);

CREATE INDEX consents_by_person ON consents (person_id);

CREATE TABLE person_retention (
    person_id       BIGINT PRIMARY KEY REFERENCES persons (id) ON DELETE CASCADE,
    retain_until    TEXT   CHECK (retain_until IS NULL OR retain_until ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'),
    last_matched_at BIGINT
);

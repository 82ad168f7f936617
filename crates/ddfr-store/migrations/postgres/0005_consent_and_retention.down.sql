-- Undoes ddfr schema v5 (PostgreSQL). Same meaning as
-- migrations/sqlite/0005_consent_and_retention.down.sql.

DROP TABLE person_retention;
DROP TABLE consents;

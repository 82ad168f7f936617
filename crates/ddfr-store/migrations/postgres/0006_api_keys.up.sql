-- ddfr schema v6 (PostgreSQL): API keys. Same table and meaning as
-- migrations/sqlite/0006_api_keys.up.sql.

CREATE TABLE api_keys (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT   NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    role          TEXT   NOT NULL CHECK (role IN ('admin', 'operator', 'recognizer')),
    secret_sha256 BYTEA  NOT NULL UNIQUE CHECK (octet_length(secret_sha256) = 32),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT
);

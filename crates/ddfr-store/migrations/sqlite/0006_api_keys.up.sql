-- ddfr schema v6 (SQLite): API keys the admin creates, each with a role, an optional expiry and
-- a revocation time. Only the SHA-256 of a key's secret is stored (the secret itself is shown
-- once, when the key is created); a revoked key's row stays, so the list and the audit log
-- keep naming it.

CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'operator', 'recognizer')),
    secret_sha256 BLOB    NOT NULL UNIQUE CHECK (length(secret_sha256) = 32),
    created_at    INTEGER NOT NULL, -- Unix milliseconds, UTC
    expires_at    INTEGER,          -- NULL: never
    revoked_at    INTEGER           -- NULL: not revoked
) STRICT;

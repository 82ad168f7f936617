-- Undoes ddfr schema v6 (SQLite): removes the API keys (v5 has no keys; the environment
-- tokens keep working).

DROP TABLE api_keys;
DELETE FROM sqlite_sequence WHERE name = 'api_keys';

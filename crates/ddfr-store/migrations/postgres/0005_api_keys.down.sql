-- Undoes ddfr schema v5 (PostgreSQL): removes the API keys.

DROP TABLE api_keys;

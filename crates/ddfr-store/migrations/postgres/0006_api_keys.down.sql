-- Undoes ddfr schema v6 (PostgreSQL): removes the API keys.

DROP TABLE api_keys;

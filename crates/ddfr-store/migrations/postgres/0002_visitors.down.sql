-- Undoes ddfr schema v2 (PostgreSQL). Same meaning as migrations/sqlite/0002_visitors.down.sql.

DROP TABLE visitor_samples;
DROP TABLE visitors;

-- Undoes ddfr schema v1 (PostgreSQL). Same meaning as migrations/sqlite/0001_initial.down.sql.

DROP TABLE embeddings;
DROP TABLE face_crops;
DROP TABLE faces;
DROP TABLE persons;

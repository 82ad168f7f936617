-- Undoes ddfr schema v1 (SQLite): removes every table, so every person, face sample, crop and
-- embedding. Only ever run by a deliberate downgrade (the store takes a backup first).

DROP TABLE embeddings;
DROP TABLE face_crops;
DROP TABLE faces;
DROP TABLE persons;

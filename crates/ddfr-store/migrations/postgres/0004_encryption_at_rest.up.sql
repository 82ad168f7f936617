-- ddfr schema v4 (PostgreSQL): optional encryption at rest. Same meaning as
-- migrations/sqlite/0004_encryption_at_rest.up.sql; PostgreSQL changes the length checks in
-- place. Their names were chosen by PostgreSQL in v1/v2, so they are looked up.

CREATE TABLE store_meta (
    key   TEXT  PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 64),
    value BYTEA NOT NULL
);

DO $$
DECLARE
    name TEXT;
BEGIN
    FOR name IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'embeddings'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%octet_length(vector)%'
    LOOP
        EXECUTE format('ALTER TABLE embeddings DROP CONSTRAINT %I', name);
    END LOOP;
    FOR name IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'visitors'::regclass AND contype = 'c'
          AND pg_get_constraintdef(oid) LIKE '%octet_length(centroid)%'
    LOOP
        EXECUTE format('ALTER TABLE visitors DROP CONSTRAINT %I', name);
    END LOOP;
END;
$$;

ALTER TABLE embeddings ADD CONSTRAINT embeddings_vector_length
    CHECK (octet_length(vector) IN (4 * dim, 4 * dim + 41));
ALTER TABLE visitors ADD CONSTRAINT visitors_centroid_length
    CHECK (octet_length(centroid) IN (4 * dim, 4 * dim + 41));

-- Undoes ddfr schema v4 (PostgreSQL). Same meaning as
-- migrations/sqlite/0004_encryption_at_rest.down.sql: an encrypted database is refused.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM store_meta WHERE key = 'encryption_key_check') THEN
        RAISE EXCEPTION 'an encrypted database cannot be downgraded below schema v4';
    END IF;
END;
$$;

ALTER TABLE embeddings DROP CONSTRAINT embeddings_vector_length;
ALTER TABLE embeddings ADD CONSTRAINT embeddings_vector_length
    CHECK (octet_length(vector) = 4 * dim);
ALTER TABLE visitors DROP CONSTRAINT visitors_centroid_length;
ALTER TABLE visitors ADD CONSTRAINT visitors_centroid_length
    CHECK (octet_length(centroid) = 4 * dim);
DROP TABLE store_meta;

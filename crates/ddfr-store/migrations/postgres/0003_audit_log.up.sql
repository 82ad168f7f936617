-- ddfr schema v3 (PostgreSQL): the append-only audit log. Same table and meaning as
-- migrations/sqlite/0003_audit_log.sql.

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL CHECK (char_length(actor) BETWEEN 1 AND 32),
    action      TEXT   NOT NULL CHECK (char_length(action) BETWEEN 1 AND 32),
    target_kind TEXT   CHECK (target_kind IS NULL OR char_length(target_kind) BETWEEN 1 AND 32),
    target_id   BIGINT,
    person_id   BIGINT,
    result      TEXT   NOT NULL CHECK (result IN ('success', 'failure')),
    detail      TEXT   CHECK (detail IS NULL OR char_length(detail) <= 1000)
);

CREATE INDEX audit_log_by_person ON audit_log (person_id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Undoes ddfr schema v3 (PostgreSQL). Same meaning as migrations/sqlite/0003_audit_log.down.sql.

DROP TRIGGER audit_log_no_change ON audit_log;
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();

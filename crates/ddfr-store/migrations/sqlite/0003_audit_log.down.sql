-- Undoes ddfr schema v3 (SQLite): removes the audit log (v2 cannot hold it). The triggers go
-- first so nothing refuses the drop.

DROP TRIGGER audit_log_no_update;
DROP TRIGGER audit_log_no_delete;
DROP TABLE audit_log;

-- Undoes ddfr schema v2 (SQLite): removes the unknown visitors (v1 cannot hold them).

DROP TABLE visitor_samples;
DROP TABLE visitors;

-- Undoes ddfr schema v5 (SQLite): removes consent records and retention dates (v4 cannot hold
-- them; persons fall back to being kept until deleted).

DROP TABLE person_retention;
DROP TABLE consents;

-- Whether a case's due rests on estimated calendar days (a year without official
-- data, or an unconfirmed row).
ALTER TABLE cases ADD COLUMN calendar_estimated INTEGER NOT NULL DEFAULT 0;

-- When a case ended and how it stands in Decision 766 indicator 2.1 (SPEC §4.7), so
-- the period metrics and reports count finished cases without reading their documents.
ALTER TABLE cases ADD COLUMN ended_at TEXT;
ALTER TABLE cases ADD COLUMN on_time INTEGER;
CREATE INDEX cases_ended ON cases (ended_at) WHERE is_open = 0;

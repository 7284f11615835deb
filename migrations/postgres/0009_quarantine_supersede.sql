-- A quarantined record is resolved automatically once a valid version of the same
-- case with a later or equal change time is ingested: its change time (when it could
-- be read) and why it was resolved.
ALTER TABLE quarantine ADD COLUMN changed_at TIMESTAMPTZ;
ALTER TABLE quarantine ADD COLUMN resolution TEXT;
CREATE INDEX quarantine_case ON quarantine (source, case_id) WHERE NOT resolved;

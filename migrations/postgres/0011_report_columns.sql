-- The channel (KenhThucHien) and field (lĩnh vực) of a case as columns, so a report
-- reads an ended case from its columns without decoding its document.
ALTER TABLE cases ADD COLUMN channel TEXT;
ALTER TABLE cases ADD COLUMN field_code TEXT;
UPDATE cases SET channel = doc->>'channel', field_code = doc->>'field_code';

-- The alert each queued message announces (with its source, case and rule): a message
-- still waiting when its alert resolves, or when the unit acknowledges it, is
-- cancelled rather than sent late.
ALTER TABLE outbox ADD COLUMN level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN due_key TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_waiting ON outbox (source, case_id) WHERE status = 'pending';

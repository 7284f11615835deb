-- Cases are looked up by id across sources (API, `slawatch explain`): index the id.
-- Nothing queries by unit and state in the store (open cases are served from memory),
-- so that index only slowed writes.
CREATE INDEX cases_id ON cases (case_id);
DROP INDEX cases_unit;

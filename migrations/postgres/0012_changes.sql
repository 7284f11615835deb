-- The change feed: one row per committed batch that touched cases or quarantine
-- (a poll's page, a push, a quarantine retry), numbered in commit order, so every
-- replica brings its memory up to what the others committed. `case_ids` is a JSON
-- array of the batch's case ids; `writer` the process that committed it. `xid` is the
-- committing transaction: a reader takes only rows of transactions older than every
-- one still running, so a row committed late under a smaller number is never skipped.
CREATE TABLE changes (
    seq       BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    writer    TEXT NOT NULL,
    source    TEXT NOT NULL,
    case_ids  TEXT NOT NULL,
    xid       XID8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX changes_xid ON changes (xid);
CREATE INDEX changes_at ON changes (at);

-- Alert state (SPEC §10): one row per (case, rule, level, due version), fired once,
-- resolved when the case leaves the state.
CREATE TABLE alerts (
    source      TEXT    NOT NULL,
    case_id     TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    level       INTEGER NOT NULL,
    due_key     TEXT    NOT NULL,
    unit_code   TEXT,
    fired_at    TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    PRIMARY KEY (source, case_id, rule, level, due_key)
);
CREATE INDEX alerts_open ON alerts (source, case_id) WHERE resolved_at IS NULL;

-- Messages to send, written in the same transaction as the alerts they announce.
-- `item` is the template context of the alert, rendered when sent (so messages to one
-- recipient can be bundled); `message_id` is stable per alert and recipient.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    message_id      TEXT    NOT NULL UNIQUE,
    channel         TEXT    NOT NULL,
    rule            TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    case_id         TEXT    NOT NULL,
    to_addr         TEXT    NOT NULL,
    to_name         TEXT    NOT NULL,
    cc              TEXT    NOT NULL,
    lang            TEXT    NOT NULL,
    item            TEXT    NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    status          TEXT    NOT NULL DEFAULT 'pending',
    claimed_until   TIMESTAMPTZ,
    last_error      TEXT,
    sent_at         TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

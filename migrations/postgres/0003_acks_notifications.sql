-- Acknowledgements of a case's alert (SPEC §10): stop repeats of that rule for that due.
CREATE TABLE acknowledgements (
    id       BIGSERIAL PRIMARY KEY,
    source   TEXT        NOT NULL,
    case_id  TEXT        NOT NULL,
    rule     TEXT        NOT NULL,
    due_at   TIMESTAMPTZ,
    note     TEXT        NOT NULL,
    by_whom  TEXT        NOT NULL,
    at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX acknowledgements_case ON acknowledgements (source, case_id);

-- Who was notified of what and when, per case.
CREATE TABLE notification_log (
    id         BIGSERIAL PRIMARY KEY,
    source     TEXT        NOT NULL,
    case_id    TEXT        NOT NULL,
    rule       TEXT        NOT NULL,
    level      INTEGER     NOT NULL DEFAULT 0,
    recipient  TEXT        NOT NULL,
    channel    TEXT        NOT NULL,
    status     TEXT        NOT NULL,
    message_id TEXT,
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX notification_log_case ON notification_log (source, case_id, id);

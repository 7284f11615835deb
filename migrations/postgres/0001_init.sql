-- slawatch schema, PostgreSQL. Same tables as migrations/sqlite, in step.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE cases (
    source           TEXT        NOT NULL,
    case_id          TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    status           SMALLINT    NOT NULL,
    is_open          BOOLEAN     NOT NULL,
    unit_code        TEXT,
    unit_name        TEXT,
    procedure_code   TEXT,
    received_at      TIMESTAMPTZ,
    due_at           TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ,
    doc              JSONB       NOT NULL,
    state            TEXT,
    outcome          TEXT,
    flags            TEXT        NOT NULL DEFAULT '',
    stuck            BOOLEAN     NOT NULL DEFAULT FALSE,
    effective_due    TIMESTAMPTZ,
    overdue_workdays INTEGER     NOT NULL DEFAULT 0,
    evaluated_at     TIMESTAMPTZ,
    calendar_version TEXT,
    PRIMARY KEY (source, case_id)
);
CREATE INDEX cases_open ON cases (is_open, source);
CREATE INDEX cases_unit ON cases (unit_code, state);
CREATE INDEX cases_unmatched ON cases (unit_name) WHERE unit_code IS NULL;

CREATE TABLE case_versions (
    source  TEXT        NOT NULL,
    case_id TEXT        NOT NULL,
    hash    TEXT        NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    body    JSONB       NOT NULL,
    PRIMARY KEY (source, case_id, hash)
);

CREATE TABLE pending_steps (
    source  TEXT        NOT NULL,
    case_id TEXT        NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    body    JSONB       NOT NULL,
    PRIMARY KEY (source, case_id, body)
);

CREATE TABLE cursors (
    source     TEXT PRIMARY KEY,
    cursor     TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    source      TEXT        NOT NULL,
    case_id     TEXT,
    received_at TIMESTAMPTZ NOT NULL,
    reason      TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    hash        TEXT        NOT NULL,
    retried_at  TIMESTAMPTZ,
    resolved    BOOLEAN     NOT NULL DEFAULT FALSE
);
CREATE INDEX quarantine_source ON quarantine (source, resolved);
-- The same bad record polled again is one row.
CREATE UNIQUE INDEX quarantine_body ON quarantine (source, hash);

CREATE TABLE job_runs (
    id          BIGSERIAL PRIMARY KEY,
    job         TEXT        NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL,
    ok          BOOLEAN     NOT NULL,
    message     TEXT        NOT NULL
);
CREATE INDEX job_runs_job ON job_runs (job, id);

CREATE TABLE seen_files (
    source  TEXT        NOT NULL,
    path    TEXT        NOT NULL,
    sha256  TEXT        NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, path, sha256)
);

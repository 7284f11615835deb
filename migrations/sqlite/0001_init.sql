-- slawatch schema, SQLite. Instants are stored as RFC 3339 text in UTC.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per case: the canonical case with its history as a JSON document, the
-- columns the daemon and the API filter on, and the latest evaluation.
CREATE TABLE cases (
    source           TEXT    NOT NULL,
    case_id          TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    status           INTEGER NOT NULL,
    is_open          INTEGER NOT NULL,
    unit_code        TEXT,
    unit_name        TEXT,
    procedure_code   TEXT,
    received_at      TEXT,
    due_at           TEXT,
    updated_at       TEXT,
    doc              TEXT    NOT NULL,
    state            TEXT,
    outcome          TEXT,
    flags            TEXT    NOT NULL DEFAULT '',
    stuck            INTEGER NOT NULL DEFAULT 0,
    effective_due    TEXT,
    overdue_workdays INTEGER NOT NULL DEFAULT 0,
    evaluated_at     TEXT,
    calendar_version TEXT,
    PRIMARY KEY (source, case_id)
);
CREATE INDEX cases_open ON cases (is_open, source);
CREATE INDEX cases_unit ON cases (unit_code, state);
CREATE INDEX cases_unmatched ON cases (unit_name) WHERE unit_code IS NULL;

-- Every distinct version of a record as the source sent it.
CREATE TABLE case_versions (
    source  TEXT NOT NULL,
    case_id TEXT NOT NULL,
    hash    TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (source, case_id, hash)
);

-- Steps that arrived before their case.
CREATE TABLE pending_steps (
    source  TEXT NOT NULL,
    case_id TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (source, case_id, body)
);

CREATE TABLE cursors (
    source     TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    case_id     TEXT,
    received_at TEXT NOT NULL,
    reason      TEXT NOT NULL,
    body        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    retried_at  TEXT,
    resolved    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX quarantine_source ON quarantine (source, resolved);
-- The same bad record polled again is one row.
CREATE UNIQUE INDEX quarantine_body ON quarantine (source, hash);

CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    finished_at TEXT    NOT NULL,
    ok          INTEGER NOT NULL,
    message     TEXT    NOT NULL
);
CREATE INDEX job_runs_job ON job_runs (job, id);

-- Files the file source has read (never read twice).
CREATE TABLE seen_files (
    source  TEXT NOT NULL,
    path    TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (source, path, sha256)
);

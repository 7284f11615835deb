-- Singleton work shared by several daemons on one database (the alert pass): one
-- holder at a time, taken over when its lease runs out.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);

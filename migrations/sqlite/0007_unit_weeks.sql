-- Weeks (their Monday, local date as YYYY-MM-DD) in which a unit had an overdue case at
-- some moment, with the most seen at once: the weekly report's "regularly late".
CREATE TABLE unit_weeks (
    unit        TEXT    NOT NULL,
    week        TEXT    NOT NULL,
    max_overdue INTEGER NOT NULL,
    PRIMARY KEY (unit, week)
);

-- OmniQ SQLite schema, version 3: schedules.
--
-- One row per schedule, keyed by its id. The record itself (omniq.models.Schedule) is stored
-- whole as msgpack bytes, so new fields need no migration; next_run_at and paused are columns
-- because the scheduler looks for due, unpaused schedules, and fire_schedule compares
-- next_run_at in its UPDATE (the exactly-once commit of a tick).

CREATE TABLE IF NOT EXISTS omniq_schedules (
    id          TEXT NOT NULL PRIMARY KEY,
    next_run_at REAL,
    paused      INTEGER NOT NULL DEFAULT 0,
    record      BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS omniq_schedules_due_idx ON omniq_schedules (next_run_at)
    WHERE paused = 0;

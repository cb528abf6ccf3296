-- OmniQ SQLite schema, version 5: structured events (issue 6).
--
-- task_id becomes optional (worker events: worker_started, circuit_opened, …), and events carry
-- the run's duration and the error's type and message. SQLite cannot drop a NOT NULL
-- constraint, so the table is rebuilt (inside the migration's transaction) and its rows copied.
-- An event's level is derived from its type, so it is not stored.
-- (Version 4 is the dependencies migration; the runner applies every missing version.)

CREATE TABLE omniq_events_v5 (
    id            TEXT    NOT NULL PRIMARY KEY,
    task_id       TEXT,
    type          TEXT    NOT NULL,
    at            REAL    NOT NULL,
    queue         TEXT    NOT NULL,
    worker_id     TEXT,
    attempt       INTEGER NOT NULL,
    detail        TEXT    NOT NULL,
    duration      REAL,
    error_type    TEXT,
    error_message TEXT
) STRICT, WITHOUT ROWID;

INSERT INTO omniq_events_v5 (id, task_id, type, at, queue, worker_id, attempt, detail)
SELECT id, task_id, type, at, queue, worker_id, attempt, detail FROM omniq_events;

DROP TABLE omniq_events;

ALTER TABLE omniq_events_v5 RENAME TO omniq_events;

CREATE INDEX IF NOT EXISTS omniq_events_task_idx ON omniq_events (task_id, at, id);
CREATE INDEX IF NOT EXISTS omniq_events_at_idx ON omniq_events (at, id);

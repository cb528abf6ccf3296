-- OmniQ SQLite schema, version 1.
--
-- Applied by omniq_sqlite._schema inside one BEGIN IMMEDIATE transaction together with the row
-- recording it in omniq_schema_version, so a crash leaves either nothing or all of it. Statements
-- are also written with IF NOT EXISTS so a re-run is harmless.
--
-- Tables are STRICT (SQLite >= 3.37): a value of the wrong type is refused at write time, so a
-- row read back always has the column types the decoder expects.

-- One row per omniq.models.Task; one column per field. The error is stored as three columns,
-- headers as a JSON object (NULL when empty), payload and func_bytes as opaque BLOBs.
CREATE TABLE IF NOT EXISTS omniq_tasks (
    id               TEXT    NOT NULL PRIMARY KEY,
    func             TEXT    NOT NULL,
    func_bytes       BLOB,
    payload          BLOB    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    executor         TEXT,
    state            TEXT    NOT NULL CHECK (state IN (
                         'pending', 'scheduled', 'waiting', 'running',
                         'success', 'failed', 'cancelled')),
    run_at           REAL    NOT NULL,
    created_at       REAL    NOT NULL,
    attempt          INTEGER NOT NULL,
    max_retries      INTEGER NOT NULL,
    retry_delay      REAL,
    timeout          REAL,
    result_ttl       REAL,
    idempotency_key  TEXT,
    worker_id        TEXT,
    lease_expires_at REAL,
    started_at       REAL,
    finished_at      REAL,
    error_type       TEXT,
    error_message    TEXT,
    error_traceback  TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    headers          TEXT,
    released         INTEGER NOT NULL DEFAULT 0
) STRICT;

-- claim: due tasks of one queue in claim order; the partial predicate keeps the index to the
-- claimable rows only (the claim query repeats it word for word so the planner can use it).
CREATE INDEX IF NOT EXISTS omniq_tasks_claim_idx
    ON omniq_tasks (queue, priority DESC, run_at, id)
    WHERE state IN ('pending', 'scheduled');

-- requeue_expired: running tasks by lease end.
CREATE INDEX IF NOT EXISTS omniq_tasks_lease_idx
    ON omniq_tasks (lease_expires_at)
    WHERE state = 'running';

-- idempotent enqueue: at most one task per non-null key (NULL keys are not indexed).
CREATE UNIQUE INDEX IF NOT EXISTS omniq_tasks_idempotency_key_idx
    ON omniq_tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- purge: terminal tasks by finish time.
CREATE INDEX IF NOT EXISTS omniq_tasks_finished_idx
    ON omniq_tasks (finished_at)
    WHERE state IN ('success', 'failed', 'cancelled');

-- Encoded return values of successful tasks.
CREATE TABLE IF NOT EXISTS omniq_results (
    task_id    TEXT NOT NULL PRIMARY KEY,
    data       BLOB NOT NULL,
    stored_at  REAL NOT NULL,
    expires_at REAL
) STRICT;

CREATE INDEX IF NOT EXISTS omniq_results_expires_idx
    ON omniq_results (expires_at)
    WHERE expires_at IS NOT NULL;

-- Task events (omniq.models.TaskEvent).
CREATE TABLE IF NOT EXISTS omniq_events (
    id        TEXT    NOT NULL PRIMARY KEY,
    task_id   TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    at        REAL    NOT NULL,
    queue     TEXT    NOT NULL,
    worker_id TEXT,
    attempt   INTEGER NOT NULL,
    detail    TEXT    NOT NULL
) STRICT, WITHOUT ROWID;

-- WITHOUT ROWID: the table is its primary-key B-tree, one B-tree less to update per event.
-- Event ids are UUIDv7 (creation order), so purge_events' scan in key order meets old events
-- first and stops after one batch.
CREATE INDEX IF NOT EXISTS omniq_events_task_idx ON omniq_events (task_id, at, id);
CREATE INDEX IF NOT EXISTS omniq_events_at_idx ON omniq_events (at, id);

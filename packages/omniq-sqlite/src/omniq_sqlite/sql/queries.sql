-- Named queries of the OmniQ SQLite backend (loaded by omniq_sqlite._queries).
--
-- Each query starts with a "-- name: <identifier>" line and runs until the next one. Other lines
-- starting with "--" are comments and are dropped. Placeholders in braces are filled in once, at
-- load time: {task_columns} and {task_placeholders} (the omniq_tasks columns in decoding order),
-- {queue_filter} (one queue: "queue = :queue", several: a json_each() list). Placeholders
-- {due}, {parts}, {i} and {where} are filled per call (see omniq_sqlite._queries). List arguments
-- are passed as one JSON array text and read with json_each(), so statement texts stay few and
-- stay in the statement cache.

-- ---------------------------------------------------------------------------------------------
-- schema

-- name: create_schema_version_table
CREATE TABLE IF NOT EXISTS omniq_schema_version (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at REAL    NOT NULL
) STRICT

-- name: schema_version_table_exists
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'omniq_schema_version'

-- name: schema_version
SELECT coalesce(max(version), 0) FROM omniq_schema_version

-- name: applied_versions
SELECT version FROM omniq_schema_version ORDER BY version

-- name: record_schema_version
INSERT INTO omniq_schema_version (version, name, applied_at) VALUES (:version, :name, :applied_at)

-- ---------------------------------------------------------------------------------------------
-- enqueue

-- name: insert_task
INSERT INTO omniq_tasks ({task_columns}) VALUES ({task_placeholders})
ON CONFLICT DO NOTHING

-- name: get_task_by_id
SELECT {task_columns} FROM omniq_tasks WHERE id = ?

-- name: get_task_by_key
SELECT {task_columns} FROM omniq_tasks WHERE idempotency_key = ?

-- name: get_tasks
SELECT {task_columns} FROM omniq_tasks WHERE id IN (SELECT value FROM json_each(:ids))

-- ---------------------------------------------------------------------------------------------
-- claim: a cheap read first, so idle pollers never take the write lock

-- name: claim_probe
SELECT 1 FROM omniq_tasks
WHERE state IN ('pending', 'scheduled')
  AND {queue_filter}
  AND run_at <= :now
  AND (:executors IS NULL OR (executor IS NULL AND :unrouted)
       OR executor IN (SELECT value FROM json_each(:executors)))
LIMIT 1

-- name: claim
UPDATE omniq_tasks
SET state = 'running',
    attempt = attempt + 1,
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at
WHERE rowid IN ({due})
RETURNING {task_columns}

-- name: claim_due
-- {due} of claim. For one queue (queue = :queue) it walks omniq_tasks_claim_idx in claim order
-- and stops at :limit. The json_each() variant sorts every due task of the queues; it is used
-- only beyond MAX_UNION_QUEUES queues.
SELECT rowid FROM omniq_tasks
WHERE state IN ('pending', 'scheduled')
  AND {queue_filter}
  AND run_at <= :now
  AND (:executors IS NULL OR (executor IS NULL AND :unrouted)
       OR executor IN (SELECT value FROM json_each(:executors)))
ORDER BY priority DESC, run_at, id
LIMIT :limit

-- name: claim_due_union
-- {due} of claim for several queues: the best :limit of each queue (one claim_due_union_part per
-- queue, joined by UNION ALL), then the best :limit of those; no sort of the whole backlog.
SELECT rid FROM ({parts}) ORDER BY priority DESC, run_at, id LIMIT :limit

-- name: claim_due_union_part
SELECT * FROM (
    SELECT rowid AS rid, priority, run_at, id FROM omniq_tasks
    WHERE state IN ('pending', 'scheduled')
      AND queue = :queue_{i}
      AND run_at <= :now
      AND (:executors IS NULL OR (executor IS NULL AND :unrouted)
           OR executor IN (SELECT value FROM json_each(:executors)))
    ORDER BY priority DESC, run_at, id
    LIMIT :limit
)

-- name: fail_undecodable
UPDATE omniq_tasks
SET state = 'failed',
    finished_at = :now,
    lease_expires_at = NULL,
    error_type = :error_type,
    error_message = :error_message,
    error_traceback = ''
WHERE id = :task_id

-- ---------------------------------------------------------------------------------------------
-- leases and outcomes; every write is fenced by (state = 'running', attempt)

-- name: extend_lease
UPDATE omniq_tasks SET lease_expires_at = :lease_expires_at
WHERE id = :task_id AND state = 'running' AND attempt = :attempt
RETURNING cancel_requested

-- name: finish_terminal
UPDATE omniq_tasks
SET state = :state,
    finished_at = :finished_at,
    lease_expires_at = NULL,
    error_type = :error_type,
    error_message = :error_message,
    error_traceback = :error_traceback
WHERE id = :task_id AND state = 'running' AND attempt = :attempt

-- name: finish_retry
-- A task whose cancellation was requested while it ran is never retried: it ends cancelled.
UPDATE omniq_tasks
SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'scheduled' END,
    finished_at = CASE WHEN cancel_requested THEN :finished_at ELSE finished_at END,
    run_at = :retry_at,
    lease_expires_at = NULL,
    error_type = :error_type,
    error_message = :error_message,
    error_traceback = :error_traceback
WHERE id = :task_id AND state = 'running' AND attempt = :attempt

-- name: put_result
INSERT OR REPLACE INTO omniq_results (task_id, data, stored_at, expires_at)
VALUES (?, ?, ?, ?)

-- name: release_task
UPDATE omniq_tasks
SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested THEN :now ELSE finished_at END,
    released = released + 1,
    lease_expires_at = NULL,
    run_at = min(run_at, :now)
WHERE id = :task_id AND state = 'running' AND attempt = :attempt

-- name: select_expired
SELECT id, attempt, released, max_retries, worker_id, lease_expires_at, cancel_requested
FROM omniq_tasks
WHERE state = 'running' AND lease_expires_at < :now
ORDER BY lease_expires_at
LIMIT :limit

-- name: requeue_task
UPDATE omniq_tasks
SET state = :state,
    lease_expires_at = NULL,
    finished_at = :finished_at,
    run_at = min(run_at, :now),
    error_type = :error_type,
    error_message = :error_message,
    error_traceback = ''
WHERE id = :task_id AND state = 'running' AND attempt = :attempt
RETURNING {task_columns}

-- ---------------------------------------------------------------------------------------------
-- requeue: failed (dead) tasks back to pending, attempt kept, a fresh retry budget

-- name: requeue_failed
UPDATE omniq_tasks
SET state = 'pending',
    run_at = :now,
    finished_at = NULL,
    lease_expires_at = NULL,
    error_type = NULL,
    error_message = NULL,
    error_traceback = NULL,
    cancel_requested = 0,
    released = attempt
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'failed'
RETURNING {task_columns}

-- ---------------------------------------------------------------------------------------------
-- cancel

-- name: cancel_queued
UPDATE omniq_tasks
SET state = 'cancelled',
    finished_at = :now,
    lease_expires_at = NULL,
    error_type = :error_type,
    error_message = :error_message,
    error_traceback = :error_traceback
WHERE id IN (SELECT value FROM json_each(:ids))
  AND state IN ('pending', 'scheduled', 'waiting')

-- name: cancel_running
UPDATE omniq_tasks SET cancel_requested = 1
WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'running'

-- ---------------------------------------------------------------------------------------------
-- listing; {where} is an AND of the filter_* fragments below (or "1")

-- name: list_tasks
SELECT {task_columns} FROM omniq_tasks WHERE {where} ORDER BY id DESC LIMIT :limit

-- name: count_tasks
SELECT state, count(*) FROM omniq_tasks WHERE {where} GROUP BY state

-- name: count_by_worker
SELECT worker_id, count(*) FROM omniq_tasks
WHERE worker_id IS NOT NULL AND {where}
GROUP BY worker_id

-- name: filter_states
state IN (SELECT value FROM json_each(:states))

-- name: filter_queues
queue IN (SELECT value FROM json_each(:queues))

-- name: filter_worker
worker_id = :worker_id

-- name: filter_before
id < :before_id

-- ---------------------------------------------------------------------------------------------
-- results

-- name: get_results
SELECT task_id, data, stored_at, expires_at FROM omniq_results
WHERE task_id IN (SELECT value FROM json_each(:ids))
  AND (expires_at IS NULL OR expires_at > :now)

-- ---------------------------------------------------------------------------------------------
-- events

-- name: insert_event
INSERT OR IGNORE INTO omniq_events (id, task_id, type, at, queue, worker_id, attempt, detail, duration, error_type, error_message)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- Filters: at >= :since (-inf for none), keyset paging by :after_id ('' for none), :types a
-- JSON list of type names or NULL for every type.
-- name: list_events
SELECT id, task_id, type, at, queue, worker_id, attempt, detail, duration, error_type, error_message FROM omniq_events
WHERE at >= :since AND (at > :since OR id > :after_id)
  AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
ORDER BY at, id
LIMIT :limit

-- name: list_task_events
SELECT id, task_id, type, at, queue, worker_id, attempt, detail, duration, error_type, error_message FROM omniq_events
WHERE task_id = :task_id
  AND at >= :since AND (at > :since OR id > :after_id)
  AND (:types IS NULL OR type IN (SELECT value FROM json_each(:types)))
ORDER BY at, id
LIMIT :limit

-- ---------------------------------------------------------------------------------------------
-- purge, in bounded batches so no transaction holds the write lock for long

-- name: purge_tasks
DELETE FROM omniq_tasks
WHERE rowid IN (
    SELECT rowid FROM omniq_tasks
    WHERE state IN ('success', 'failed', 'cancelled')
      AND finished_at < max(:before, :failed_before)
      AND (CASE WHEN state = 'failed' THEN finished_at < :failed_before
                ELSE finished_at < :before END)
    LIMIT :batch
)
RETURNING id

-- name: delete_result
DELETE FROM omniq_results WHERE task_id = ?

-- name: purge_expired_results
DELETE FROM omniq_results
WHERE rowid IN (SELECT rowid FROM omniq_results WHERE expires_at <= :now LIMIT :batch)

-- name: purge_events
DELETE FROM omniq_events
WHERE id IN (SELECT id FROM omniq_events WHERE at < :before LIMIT :batch)

-- The oldest event kept under a count limit: the :offset-th newest (0 = the newest).
-- name: event_count_cutoff
SELECT at, id FROM omniq_events ORDER BY at DESC, id DESC LIMIT 1 OFFSET :offset

-- name: purge_events_before_key
DELETE FROM omniq_events
WHERE id IN (
    SELECT id FROM omniq_events
    WHERE at < :at OR (at = :at AND id < :id)
    ORDER BY at, id
    LIMIT :batch
)

-- name: purge_workers
DELETE FROM omniq_workers WHERE expires_at <= :now

-- ---------------------------------------------------------------------------------------------
-- workers (health records; the record is msgpack bytes of omniq.models.WorkerInfo)

-- name: put_worker
INSERT INTO omniq_workers (id, expires_at, record) VALUES (:id, :expires_at, :record)
ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at, record = excluded.record

-- name: list_workers
SELECT id, record FROM omniq_workers WHERE expires_at > :now ORDER BY id

-- name: delete_worker
DELETE FROM omniq_workers WHERE id = :id

-- ---------------------------------------------------------------------------------------------
-- schedules (the record is msgpack bytes of omniq.models.Schedule)

-- name: put_schedule
INSERT INTO omniq_schedules (id, next_run_at, paused, record)
VALUES (:id, :next_run_at, :paused, :record)
ON CONFLICT (id) DO UPDATE SET
    next_run_at = excluded.next_run_at, paused = excluded.paused, record = excluded.record

-- name: get_schedules
SELECT id, record FROM omniq_schedules WHERE id IN (SELECT value FROM json_each(:ids))

-- name: list_schedules
SELECT id, record FROM omniq_schedules ORDER BY id

-- name: delete_schedule
DELETE FROM omniq_schedules WHERE id = :id

-- name: get_schedule_for_fire
-- fire_schedule's check, inside its write transaction: only this tick of an unpaused schedule.
SELECT record FROM omniq_schedules WHERE id = :id AND paused = 0 AND next_run_at = :tick

-- name: advance_schedule
UPDATE omniq_schedules SET next_run_at = :next_run_at, record = :record
WHERE id = :id AND paused = 0 AND next_run_at = :tick

-- ---------------------------------------------------------------------------------------------
-- dependencies (edges of waiting tasks; the engine decides, these statements apply)

-- name: insert_dependency
INSERT OR IGNORE INTO omniq_dependencies (parent_id, child_id) VALUES (?, ?)

-- name: dependents
SELECT DISTINCT d.child_id FROM omniq_dependencies AS d
JOIN omniq_tasks AS t ON t.id = d.child_id
WHERE d.parent_id IN (SELECT value FROM json_each(:ids)) AND t.state = 'waiting'

-- name: settle_task
UPDATE omniq_tasks
SET state = :state, finished_at = :finished_at, error_type = :error_type,
    error_message = :error_message, error_traceback = :error_traceback
WHERE id = :task_id AND state = 'waiting'
RETURNING {task_columns}

-- name: delete_dependencies_of
DELETE FROM omniq_dependencies WHERE child_id = ?

-- name: parent_tally
-- One pass over a waiting task's edges: (parents, succeeded, failed or cancelled, missing).
SELECT count(*),
       coalesce(sum(p.state = 'success'), 0),
       coalesce(sum(p.state IN ('failed', 'cancelled')), 0),
       count(*) - count(p.id)
FROM omniq_dependencies AS d LEFT JOIN omniq_tasks AS p ON p.id = d.parent_id
WHERE d.child_id = ?

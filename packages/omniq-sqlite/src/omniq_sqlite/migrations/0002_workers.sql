-- OmniQ SQLite schema, version 2: worker health records.
--
-- One row per live (or not yet purged) worker, keyed by its id. The record itself
-- (omniq.models.WorkerInfo) is stored whole as msgpack bytes, so new fields need no migration;
-- only expires_at is a column, because list_workers filters on it and purge deletes by it.

CREATE TABLE IF NOT EXISTS omniq_workers (
    id         TEXT NOT NULL PRIMARY KEY,
    expires_at REAL NOT NULL,
    record     BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- purge: dead workers by expiry.
CREATE INDEX IF NOT EXISTS omniq_workers_expires_idx ON omniq_workers (expires_at);

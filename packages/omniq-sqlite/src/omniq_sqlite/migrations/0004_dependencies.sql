-- OmniQ SQLite schema, version 4: task dependencies.
--
-- One row per edge (parent -> child) of a waiting task, written in the transaction that inserts
-- the child. The child's own row keeps its parents in order (the reserved headers entry
-- "omniq-graph", see omniq_sqlite._rows); this table answers "which waiting tasks wait for
-- these parents?" (Backend.dependents) through its primary key. Edges go when their child is
-- purged.

CREATE TABLE IF NOT EXISTS omniq_dependencies (
    parent_id TEXT NOT NULL,
    child_id  TEXT NOT NULL,
    PRIMARY KEY (parent_id, child_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS omniq_dependencies_child_idx ON omniq_dependencies (child_id);

-- Version 20: SQLite's search index is written once per write batch (its migration 20: FTS5
-- flushes at every savepoint). PostgreSQL's GIN index gathers new entries in its own pending
-- list; nothing changes here, and both backends stay at the same version.
SELECT 1;

-- Version 8: pushes kept in the local spool while the database was unavailable carry the spool
-- entry's id once stored, so that an entry stored before a crash (and still on disk) is not
-- stored a second time when the spool is drained again.

ALTER TABLE pushes ADD COLUMN spool_id TEXT;
CREATE UNIQUE INDEX pushes_spool_id ON pushes (spool_id) WHERE spool_id IS NOT NULL;

-- The audit log: who signed in (or failed to), managed users, merged or dismissed leads,
-- replayed pushes, redelivered events, rotated tokens.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    user_id BIGINT, -- no foreign key: a failed sign-in names no user
    actor TEXT NOT NULL, -- the user's name, "admin token" or "command line"
    action TEXT NOT NULL,
    target TEXT,
    detail JSONB NOT NULL DEFAULT '{}',
    ip TEXT
);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);

-- Version 8: pushes kept in the local spool while the database was unavailable carry the spool
-- entry's id once stored, so that an entry stored before a crash (and still on disk) is not
-- stored a second time when the spool is drained again.

ALTER TABLE pushes ADD COLUMN spool_id TEXT;
CREATE UNIQUE INDEX pushes_spool_id ON pushes (spool_id) WHERE spool_id IS NOT NULL;

-- Version 18: SQLite's search index keeps the positions of its terms (its migration 18).
-- PostgreSQL's GIN array of terms has no positions; nothing changes here, and both backends
-- stay at the same version.
SELECT 1;

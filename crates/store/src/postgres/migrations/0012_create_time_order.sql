-- Version 12 (issue 8): the inbox sorted by the vendor's time, newest first (`sort=-create_time`),
-- reads an index instead of sorting every matching lead (41 ms at 100,000 leads on SQLite, 230 ms
-- on PostgreSQL). Leads without a time come last, as the inbox orders them. The vendor's times
-- mostly grow, so pushes add to the end of this index.
CREATE INDEX leads_create_time ON leads ((create_time IS NULL), create_time DESC, id DESC);

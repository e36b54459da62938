-- Version 13: the per-day report's changes are appended, one row per change of a lead, to
-- report_pending by the triggers, and folded into report_days by a writer about once a second
-- (store::reports::FOLD_SQL), instead of fifteen upserts into report_days' few hot rows for every
-- lead in every push's transaction (issue #8: batches committing side by side on several
-- connections, or from several instances, waited on and deadlocked over the same rows). A report
-- adds the pending rows to report_days' (reports::PENDING_SELECT) in its REPEATABLE READ
-- snapshot, so the figures stay exact whether or not the fold has run.
CREATE TABLE report_pending (
    sign INT NOT NULL, -- 1: the lead's values are counted; -1: its old values no longer are
    day INT NOT NULL, -- as report_days.day
    hour TEXT NOT NULL, -- the value of dimension 14, the hour of day
    status TEXT NOT NULL,
    contact INT NOT NULL, -- 1: a valid Chinese mobile
    tag_name TEXT NOT NULL, -- the label of dimension 13
    v0 TEXT NOT NULL, v1 TEXT NOT NULL, v2 TEXT NOT NULL, v3 TEXT NOT NULL, v4 TEXT NOT NULL,
    v5 TEXT NOT NULL, v6 TEXT NOT NULL, v7 TEXT NOT NULL, v8 TEXT NOT NULL, v9 TEXT NOT NULL,
    v10 TEXT NOT NULL, v11 TEXT NOT NULL, v12 TEXT NOT NULL, v13 TEXT NOT NULL -- dimensions 0 to 13
);

-- Adds (sign 1) or removes (-1) one lead's figures: now one appended row (the triggers of
-- migration 11 call this function and stay as they are).
CREATE OR REPLACE FUNCTION report_days_apply(leads, INT) RETURNS void LANGUAGE sql AS $$
INSERT INTO report_pending (sign, day, hour, status, contact, tag_name, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13)
SELECT $2, ((l.received_at AT TIME ZONE INTERVAL '+08:00')::date - DATE '1970-01-01'),
       EXTRACT(HOUR FROM l.received_at AT TIME ZONE INTERVAL '+08:00')::int::text, l.status,
       (COALESCE(translate(l.mobile, ' -+()', '') ~ '^(1[3-9][0-9]{9}|861[3-9][0-9]{9}|00861[3-9][0-9]{9})$', false))::int,
       COALESCE(l.ntag_name, ''), COALESCE(l.search_engine, ''), COALESCE(l.search_host, ''), COALESCE(l.keyword, ''),
       COALESCE(l.bidding_word, ''), COALESCE(l.promotion_id, ''), substring(COALESCE(l.first_url, '') FROM '^[^?#]*'),
       COALESCE(l.site_name, ''), COALESCE(l.device_type, ''), COALESCE(l.province, ''), COALESCE(l.city, ''),
       COALESCE(l.subject_name, ''), COALESCE(l.school_name, ''), COALESCE(l.owner_id::text, ''), COALESCE(l.ntag_id, '')
    FROM (SELECT ($1).*) l
$$;

-- report_dims never changes, so autovacuum never gathers its statistics: without them the
-- planner assumes 2,550 rows, costs a fold or a report's pending rows at 1.4 million and
-- compiles it with JIT (measured: 300–500 ms per fold instead of a few).
ANALYZE report_dims;

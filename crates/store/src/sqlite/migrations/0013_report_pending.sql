-- Version 13: the per-day report's changes are appended, one row per change of a lead, to
-- report_pending by the triggers, and folded into report_days by the writer about once a second
-- (store::reports::FOLD_SQL), instead of fifteen upserts into report_days' few hot rows for every
-- lead in every push's transaction (issue #8: a quarter of the SQLite writer's time; on
-- PostgreSQL, batches committing side by side waited on, and deadlocked over, the same rows).
-- A report adds the pending rows to report_days' (reports::PENDING_SELECT), in one snapshot, so
-- the figures stay exact whether or not the fold has run.
CREATE TABLE report_pending (
    sign INTEGER NOT NULL, -- 1: the lead's values are counted; -1: its old values no longer are
    day INTEGER NOT NULL, -- as report_days.day
    hour TEXT NOT NULL, -- the value of dimension 14, the hour of day
    status TEXT NOT NULL,
    contact INTEGER NOT NULL, -- 1: a valid Chinese mobile
    tag_name TEXT NOT NULL, -- the label of dimension 13
    v0 TEXT NOT NULL,
    v1 TEXT NOT NULL,
    v2 TEXT NOT NULL,
    v3 TEXT NOT NULL,
    v4 TEXT NOT NULL,
    v5 TEXT NOT NULL,
    v6 TEXT NOT NULL,
    v7 TEXT NOT NULL,
    v8 TEXT NOT NULL,
    v9 TEXT NOT NULL,
    v10 TEXT NOT NULL,
    v11 TEXT NOT NULL,
    v12 TEXT NOT NULL,
    v13 TEXT NOT NULL -- the values of dimensions 0 to 13
);

DROP TRIGGER leads_report_days_insert;
DROP TRIGGER leads_report_days_update;
DROP TRIGGER leads_report_days_delete;

CREATE TRIGGER leads_report_days_insert AFTER INSERT ON leads
WHEN NEW.merged_into IS NULL
BEGIN
    INSERT INTO report_pending (sign, day, hour, status, contact, tag_name, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13)
    SELECT 1 AS sign,
               ((NEW.received_at + 28800000) - (((NEW.received_at + 28800000) % 86400000 + 86400000) % 86400000)) / 86400000 AS day,
               CAST((((NEW.received_at + 28800000) % 86400000 + 86400000) % 86400000) / 3600000 AS TEXT) AS hour,
               NEW.status AS status,
               COALESCE(replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') NOT GLOB '*[^0-9]*' AND (length(replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 11 AND replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '1[3-9]*' OR length(replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 13 AND replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '861[3-9]*' OR length(replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 15 AND replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '00861[3-9]*'), 0) AS contact,
               COALESCE(NEW.ntag_name, '') AS tag_name,
               COALESCE(NEW.search_engine, '') AS v0,
               COALESCE(NEW.search_host, '') AS v1,
               COALESCE(NEW.keyword, '') AS v2,
               COALESCE(NEW.bidding_word, '') AS v3,
               COALESCE(NEW.promotion_id, '') AS v4,
               substr(COALESCE(NEW.first_url, ''), 1, CASE WHEN instr(COALESCE(NEW.first_url, ''), '?') = 0 AND instr(COALESCE(NEW.first_url, ''), '#') = 0 THEN length(COALESCE(NEW.first_url, '')) WHEN instr(COALESCE(NEW.first_url, ''), '?') = 0 THEN instr(COALESCE(NEW.first_url, ''), '#') - 1 WHEN instr(COALESCE(NEW.first_url, ''), '#') = 0 THEN instr(COALESCE(NEW.first_url, ''), '?') - 1 ELSE min(instr(COALESCE(NEW.first_url, ''), '?'), instr(COALESCE(NEW.first_url, ''), '#')) - 1 END) AS v5,
               COALESCE(NEW.site_name, '') AS v6,
               COALESCE(NEW.device_type, '') AS v7,
               COALESCE(NEW.province, '') AS v8,
               COALESCE(NEW.city, '') AS v9,
               COALESCE(NEW.subject_name, '') AS v10,
               COALESCE(NEW.school_name, '') AS v11,
               COALESCE(CAST(NEW.owner_id AS TEXT), '') AS v12,
               COALESCE(NEW.ntag_id, '') AS v13;
END;

CREATE TRIGGER leads_report_days_update AFTER UPDATE OF received_at, status, owner_id, mobile, ntag_name, search_engine, search_host, keyword, bidding_word, promotion_id, first_url, site_name, device_type, province, city, subject_name, school_name, ntag_id, merged_into ON leads
WHEN OLD.received_at IS NOT NEW.received_at OR OLD.status IS NOT NEW.status OR OLD.owner_id IS NOT NEW.owner_id OR OLD.mobile IS NOT NEW.mobile OR OLD.ntag_name IS NOT NEW.ntag_name OR OLD.search_engine IS NOT NEW.search_engine OR OLD.search_host IS NOT NEW.search_host OR OLD.keyword IS NOT NEW.keyword OR OLD.bidding_word IS NOT NEW.bidding_word OR OLD.promotion_id IS NOT NEW.promotion_id OR OLD.first_url IS NOT NEW.first_url OR OLD.site_name IS NOT NEW.site_name OR OLD.device_type IS NOT NEW.device_type OR OLD.province IS NOT NEW.province OR OLD.city IS NOT NEW.city OR OLD.subject_name IS NOT NEW.subject_name OR OLD.school_name IS NOT NEW.school_name OR OLD.ntag_id IS NOT NEW.ntag_id OR OLD.merged_into IS NOT NEW.merged_into
BEGIN
    INSERT INTO report_pending (sign, day, hour, status, contact, tag_name, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13)
    SELECT -1 AS sign,
               ((OLD.received_at + 28800000) - (((OLD.received_at + 28800000) % 86400000 + 86400000) % 86400000)) / 86400000 AS day,
               CAST((((OLD.received_at + 28800000) % 86400000 + 86400000) % 86400000) / 3600000 AS TEXT) AS hour,
               OLD.status AS status,
               COALESCE(replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') NOT GLOB '*[^0-9]*' AND (length(replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 11 AND replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '1[3-9]*' OR length(replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 13 AND replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '861[3-9]*' OR length(replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 15 AND replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '00861[3-9]*'), 0) AS contact,
               COALESCE(OLD.ntag_name, '') AS tag_name,
               COALESCE(OLD.search_engine, '') AS v0,
               COALESCE(OLD.search_host, '') AS v1,
               COALESCE(OLD.keyword, '') AS v2,
               COALESCE(OLD.bidding_word, '') AS v3,
               COALESCE(OLD.promotion_id, '') AS v4,
               substr(COALESCE(OLD.first_url, ''), 1, CASE WHEN instr(COALESCE(OLD.first_url, ''), '?') = 0 AND instr(COALESCE(OLD.first_url, ''), '#') = 0 THEN length(COALESCE(OLD.first_url, '')) WHEN instr(COALESCE(OLD.first_url, ''), '?') = 0 THEN instr(COALESCE(OLD.first_url, ''), '#') - 1 WHEN instr(COALESCE(OLD.first_url, ''), '#') = 0 THEN instr(COALESCE(OLD.first_url, ''), '?') - 1 ELSE min(instr(COALESCE(OLD.first_url, ''), '?'), instr(COALESCE(OLD.first_url, ''), '#')) - 1 END) AS v5,
               COALESCE(OLD.site_name, '') AS v6,
               COALESCE(OLD.device_type, '') AS v7,
               COALESCE(OLD.province, '') AS v8,
               COALESCE(OLD.city, '') AS v9,
               COALESCE(OLD.subject_name, '') AS v10,
               COALESCE(OLD.school_name, '') AS v11,
               COALESCE(CAST(OLD.owner_id AS TEXT), '') AS v12,
               COALESCE(OLD.ntag_id, '') AS v13 WHERE OLD.merged_into IS NULL;
    INSERT INTO report_pending (sign, day, hour, status, contact, tag_name, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13)
    SELECT 1 AS sign,
               ((NEW.received_at + 28800000) - (((NEW.received_at + 28800000) % 86400000 + 86400000) % 86400000)) / 86400000 AS day,
               CAST((((NEW.received_at + 28800000) % 86400000 + 86400000) % 86400000) / 3600000 AS TEXT) AS hour,
               NEW.status AS status,
               COALESCE(replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') NOT GLOB '*[^0-9]*' AND (length(replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 11 AND replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '1[3-9]*' OR length(replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 13 AND replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '861[3-9]*' OR length(replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 15 AND replace(replace(replace(replace(replace(NEW.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '00861[3-9]*'), 0) AS contact,
               COALESCE(NEW.ntag_name, '') AS tag_name,
               COALESCE(NEW.search_engine, '') AS v0,
               COALESCE(NEW.search_host, '') AS v1,
               COALESCE(NEW.keyword, '') AS v2,
               COALESCE(NEW.bidding_word, '') AS v3,
               COALESCE(NEW.promotion_id, '') AS v4,
               substr(COALESCE(NEW.first_url, ''), 1, CASE WHEN instr(COALESCE(NEW.first_url, ''), '?') = 0 AND instr(COALESCE(NEW.first_url, ''), '#') = 0 THEN length(COALESCE(NEW.first_url, '')) WHEN instr(COALESCE(NEW.first_url, ''), '?') = 0 THEN instr(COALESCE(NEW.first_url, ''), '#') - 1 WHEN instr(COALESCE(NEW.first_url, ''), '#') = 0 THEN instr(COALESCE(NEW.first_url, ''), '?') - 1 ELSE min(instr(COALESCE(NEW.first_url, ''), '?'), instr(COALESCE(NEW.first_url, ''), '#')) - 1 END) AS v5,
               COALESCE(NEW.site_name, '') AS v6,
               COALESCE(NEW.device_type, '') AS v7,
               COALESCE(NEW.province, '') AS v8,
               COALESCE(NEW.city, '') AS v9,
               COALESCE(NEW.subject_name, '') AS v10,
               COALESCE(NEW.school_name, '') AS v11,
               COALESCE(CAST(NEW.owner_id AS TEXT), '') AS v12,
               COALESCE(NEW.ntag_id, '') AS v13 WHERE NEW.merged_into IS NULL;
END;

CREATE TRIGGER leads_report_days_delete AFTER DELETE ON leads
WHEN OLD.merged_into IS NULL
BEGIN
    INSERT INTO report_pending (sign, day, hour, status, contact, tag_name, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13)
    SELECT -1 AS sign,
               ((OLD.received_at + 28800000) - (((OLD.received_at + 28800000) % 86400000 + 86400000) % 86400000)) / 86400000 AS day,
               CAST((((OLD.received_at + 28800000) % 86400000 + 86400000) % 86400000) / 3600000 AS TEXT) AS hour,
               OLD.status AS status,
               COALESCE(replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') NOT GLOB '*[^0-9]*' AND (length(replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 11 AND replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '1[3-9]*' OR length(replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 13 AND replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '861[3-9]*' OR length(replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 15 AND replace(replace(replace(replace(replace(OLD.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '00861[3-9]*'), 0) AS contact,
               COALESCE(OLD.ntag_name, '') AS tag_name,
               COALESCE(OLD.search_engine, '') AS v0,
               COALESCE(OLD.search_host, '') AS v1,
               COALESCE(OLD.keyword, '') AS v2,
               COALESCE(OLD.bidding_word, '') AS v3,
               COALESCE(OLD.promotion_id, '') AS v4,
               substr(COALESCE(OLD.first_url, ''), 1, CASE WHEN instr(COALESCE(OLD.first_url, ''), '?') = 0 AND instr(COALESCE(OLD.first_url, ''), '#') = 0 THEN length(COALESCE(OLD.first_url, '')) WHEN instr(COALESCE(OLD.first_url, ''), '?') = 0 THEN instr(COALESCE(OLD.first_url, ''), '#') - 1 WHEN instr(COALESCE(OLD.first_url, ''), '#') = 0 THEN instr(COALESCE(OLD.first_url, ''), '?') - 1 ELSE min(instr(COALESCE(OLD.first_url, ''), '?'), instr(COALESCE(OLD.first_url, ''), '#')) - 1 END) AS v5,
               COALESCE(OLD.site_name, '') AS v6,
               COALESCE(OLD.device_type, '') AS v7,
               COALESCE(OLD.province, '') AS v8,
               COALESCE(OLD.city, '') AS v9,
               COALESCE(OLD.subject_name, '') AS v10,
               COALESCE(OLD.school_name, '') AS v11,
               COALESCE(CAST(OLD.owner_id AS TEXT), '') AS v12,
               COALESCE(OLD.ntag_id, '') AS v13;
END;

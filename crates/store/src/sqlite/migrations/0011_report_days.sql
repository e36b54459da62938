-- Version 11: the dashboard's figures kept per day, so that a report over months of leads reads
-- a few rows per day and segment instead of every lead; and each lead's first follow-up time.
--
-- report_days holds, for each day (China time, UTC+8) and each dimension of the dashboard
-- (reports::DIMENSIONS, in order, 0 to 13; 14 is the hour of day), the leads of each value:
-- how many, how many per status, how many with a valid Chinese mobile. Leads merged into another
-- are not counted (as in every list). Triggers keep it exact in the same transaction as every
-- change to a lead (insert, update of a column the dashboard reads, delete); nothing else
-- writes it. A report over whole days without other filters reads it (reports::plan).
-- The values are computed as the store's Rust code computes them for a scan (reports.rs:
-- landing_page, valid_mobile; the tests compare both on every backend).

ALTER TABLE leads ADD COLUMN followed_at INTEGER; -- epoch ms: the first status change or note
UPDATE leads SET followed_at = (SELECT MIN(e.at) FROM lead_events e
    WHERE e.lead_id = leads.id AND e.kind IN ('status', 'note'))
    WHERE id IN (SELECT lead_id FROM lead_events WHERE kind IN ('status', 'note'));
CREATE TRIGGER lead_events_followed_at AFTER INSERT ON lead_events
WHEN NEW.kind IN ('status', 'note')
BEGIN
    UPDATE leads SET followed_at = NEW.at WHERE id = NEW.lead_id AND (followed_at IS NULL OR followed_at > NEW.at);
END;

-- The report's single pass reads this index alone (followed_at added).
DROP INDEX leads_report;
CREATE INDEX leads_report ON leads (received_at, status, owner_id, mobile, ntag_name, search_engine,
    search_host, keyword, bidding_word, promotion_id, first_url, site_name, device_type, province, city,
    subject_name, school_name, ntag_id, followed_at);
-- First follow-ups of a date range, for the reports read from report_days.
CREATE INDEX leads_followed ON leads (received_at, owner_id, followed_at)
    WHERE followed_at IS NOT NULL AND merged_into IS NULL;

CREATE TABLE report_dims (dim INTEGER PRIMARY KEY);
INSERT INTO report_dims (dim) VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12), (13), (14);

CREATE TABLE report_days (
    day INTEGER NOT NULL, -- days since 1970-01-01, China time
    dim INTEGER NOT NULL, -- 0 to 13: reports::DIMENSIONS' order; 14: the hour of day ('0' to '23')
    value TEXT NOT NULL, -- the segment ('' when the lead has none)
    label TEXT NOT NULL, -- dimension 13 (tag): the lead's ntag_name; '' otherwise
    leads INTEGER NOT NULL,
    new INTEGER NOT NULL,
    contacted INTEGER NOT NULL,
    interested INTEGER NOT NULL,
    won INTEGER NOT NULL,
    invalid INTEGER NOT NULL,
    contact INTEGER NOT NULL, -- leads with a valid Chinese mobile
    PRIMARY KEY (day, dim, value, label)
) WITHOUT ROWID;

INSERT INTO report_days (day, dim, value, label, leads, new, contacted, interested, won, invalid, contact)
    SELECT r.day, k.dim, CASE k.dim WHEN 0 THEN r.v0 WHEN 1 THEN r.v1 WHEN 2 THEN r.v2 WHEN 3 THEN r.v3 WHEN 4 THEN r.v4 WHEN 5 THEN r.v5 WHEN 6 THEN r.v6 WHEN 7 THEN r.v7 WHEN 8 THEN r.v8 WHEN 9 THEN r.v9 WHEN 10 THEN r.v10 WHEN 11 THEN r.v11 WHEN 12 THEN r.v12 WHEN 13 THEN r.v13 ELSE r.hour END,
           CASE k.dim WHEN 13 THEN r.tag_name ELSE '' END,
           sum(r.sign),
           sum(r.sign * (r.status NOT IN ('contacted', 'interested', 'won', 'invalid'))),
           sum(r.sign * (r.status = 'contacted')), sum(r.sign * (r.status = 'interested')),
           sum(r.sign * (r.status = 'won')), sum(r.sign * (r.status = 'invalid')), sum(r.sign * r.contact)
    FROM (SELECT 1 AS sign,
               ((l.received_at + 28800000) - (((l.received_at + 28800000) % 86400000 + 86400000) % 86400000)) / 86400000 AS day,
               CAST((((l.received_at + 28800000) % 86400000 + 86400000) % 86400000) / 3600000 AS TEXT) AS hour,
               l.status AS status,
               COALESCE(replace(replace(replace(replace(replace(l.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') NOT GLOB '*[^0-9]*' AND (length(replace(replace(replace(replace(replace(l.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 11 AND replace(replace(replace(replace(replace(l.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '1[3-9]*' OR length(replace(replace(replace(replace(replace(l.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 13 AND replace(replace(replace(replace(replace(l.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '861[3-9]*' OR length(replace(replace(replace(replace(replace(l.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '')) = 15 AND replace(replace(replace(replace(replace(l.mobile, ' ', ''), '-', ''), '+', ''), '(', ''), ')', '') GLOB '00861[3-9]*'), 0) AS contact,
               COALESCE(l.ntag_name, '') AS tag_name,
               COALESCE(l.search_engine, '') AS v0,
               COALESCE(l.search_host, '') AS v1,
               COALESCE(l.keyword, '') AS v2,
               COALESCE(l.bidding_word, '') AS v3,
               COALESCE(l.promotion_id, '') AS v4,
               substr(COALESCE(l.first_url, ''), 1, CASE WHEN instr(COALESCE(l.first_url, ''), '?') = 0 AND instr(COALESCE(l.first_url, ''), '#') = 0 THEN length(COALESCE(l.first_url, '')) WHEN instr(COALESCE(l.first_url, ''), '?') = 0 THEN instr(COALESCE(l.first_url, ''), '#') - 1 WHEN instr(COALESCE(l.first_url, ''), '#') = 0 THEN instr(COALESCE(l.first_url, ''), '?') - 1 ELSE min(instr(COALESCE(l.first_url, ''), '?'), instr(COALESCE(l.first_url, ''), '#')) - 1 END) AS v5,
               COALESCE(l.site_name, '') AS v6,
               COALESCE(l.device_type, '') AS v7,
               COALESCE(l.province, '') AS v8,
               COALESCE(l.city, '') AS v9,
               COALESCE(l.subject_name, '') AS v10,
               COALESCE(l.school_name, '') AS v11,
               COALESCE(CAST(l.owner_id AS TEXT), '') AS v12,
               COALESCE(l.ntag_id, '') AS v13 FROM leads l WHERE l.merged_into IS NULL) r CROSS JOIN report_dims k
    WHERE true
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, dim, value, label) DO UPDATE SET leads = leads + excluded.leads, new = new + excluded.new,
        contacted = contacted + excluded.contacted, interested = interested + excluded.interested,
        won = won + excluded.won, invalid = invalid + excluded.invalid, contact = contact + excluded.contact;

CREATE TRIGGER leads_report_days_insert AFTER INSERT ON leads
WHEN NEW.merged_into IS NULL
BEGIN
    INSERT INTO report_days (day, dim, value, label, leads, new, contacted, interested, won, invalid, contact)
    SELECT r.day, k.dim, CASE k.dim WHEN 0 THEN r.v0 WHEN 1 THEN r.v1 WHEN 2 THEN r.v2 WHEN 3 THEN r.v3 WHEN 4 THEN r.v4 WHEN 5 THEN r.v5 WHEN 6 THEN r.v6 WHEN 7 THEN r.v7 WHEN 8 THEN r.v8 WHEN 9 THEN r.v9 WHEN 10 THEN r.v10 WHEN 11 THEN r.v11 WHEN 12 THEN r.v12 WHEN 13 THEN r.v13 ELSE r.hour END,
           CASE k.dim WHEN 13 THEN r.tag_name ELSE '' END,
           sum(r.sign),
           sum(r.sign * (r.status NOT IN ('contacted', 'interested', 'won', 'invalid'))),
           sum(r.sign * (r.status = 'contacted')), sum(r.sign * (r.status = 'interested')),
           sum(r.sign * (r.status = 'won')), sum(r.sign * (r.status = 'invalid')), sum(r.sign * r.contact)
    FROM (SELECT 1 AS sign,
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
               COALESCE(NEW.ntag_id, '') AS v13) r CROSS JOIN report_dims k
    WHERE true
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, dim, value, label) DO UPDATE SET leads = leads + excluded.leads, new = new + excluded.new,
        contacted = contacted + excluded.contacted, interested = interested + excluded.interested,
        won = won + excluded.won, invalid = invalid + excluded.invalid, contact = contact + excluded.contact;
END;

CREATE TRIGGER leads_report_days_update AFTER UPDATE OF received_at, status, owner_id, mobile, ntag_name, search_engine, search_host, keyword, bidding_word, promotion_id, first_url, site_name, device_type, province, city, subject_name, school_name, ntag_id, merged_into ON leads
WHEN OLD.received_at IS NOT NEW.received_at OR OLD.status IS NOT NEW.status OR OLD.owner_id IS NOT NEW.owner_id OR OLD.mobile IS NOT NEW.mobile OR OLD.ntag_name IS NOT NEW.ntag_name OR OLD.search_engine IS NOT NEW.search_engine OR OLD.search_host IS NOT NEW.search_host OR OLD.keyword IS NOT NEW.keyword OR OLD.bidding_word IS NOT NEW.bidding_word OR OLD.promotion_id IS NOT NEW.promotion_id OR OLD.first_url IS NOT NEW.first_url OR OLD.site_name IS NOT NEW.site_name OR OLD.device_type IS NOT NEW.device_type OR OLD.province IS NOT NEW.province OR OLD.city IS NOT NEW.city OR OLD.subject_name IS NOT NEW.subject_name OR OLD.school_name IS NOT NEW.school_name OR OLD.ntag_id IS NOT NEW.ntag_id OR OLD.merged_into IS NOT NEW.merged_into
BEGIN
    INSERT INTO report_days (day, dim, value, label, leads, new, contacted, interested, won, invalid, contact)
    SELECT r.day, k.dim, CASE k.dim WHEN 0 THEN r.v0 WHEN 1 THEN r.v1 WHEN 2 THEN r.v2 WHEN 3 THEN r.v3 WHEN 4 THEN r.v4 WHEN 5 THEN r.v5 WHEN 6 THEN r.v6 WHEN 7 THEN r.v7 WHEN 8 THEN r.v8 WHEN 9 THEN r.v9 WHEN 10 THEN r.v10 WHEN 11 THEN r.v11 WHEN 12 THEN r.v12 WHEN 13 THEN r.v13 ELSE r.hour END,
           CASE k.dim WHEN 13 THEN r.tag_name ELSE '' END,
           sum(r.sign),
           sum(r.sign * (r.status NOT IN ('contacted', 'interested', 'won', 'invalid'))),
           sum(r.sign * (r.status = 'contacted')), sum(r.sign * (r.status = 'interested')),
           sum(r.sign * (r.status = 'won')), sum(r.sign * (r.status = 'invalid')), sum(r.sign * r.contact)
    FROM (SELECT -1 AS sign,
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
               COALESCE(OLD.ntag_id, '') AS v13 WHERE OLD.merged_into IS NULL UNION ALL SELECT 1 AS sign,
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
               COALESCE(NEW.ntag_id, '') AS v13 WHERE NEW.merged_into IS NULL) r CROSS JOIN report_dims k
    WHERE true
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, dim, value, label) DO UPDATE SET leads = leads + excluded.leads, new = new + excluded.new,
        contacted = contacted + excluded.contacted, interested = interested + excluded.interested,
        won = won + excluded.won, invalid = invalid + excluded.invalid, contact = contact + excluded.contact;
END;

CREATE TRIGGER leads_report_days_delete AFTER DELETE ON leads
WHEN OLD.merged_into IS NULL
BEGIN
    INSERT INTO report_days (day, dim, value, label, leads, new, contacted, interested, won, invalid, contact)
    SELECT r.day, k.dim, CASE k.dim WHEN 0 THEN r.v0 WHEN 1 THEN r.v1 WHEN 2 THEN r.v2 WHEN 3 THEN r.v3 WHEN 4 THEN r.v4 WHEN 5 THEN r.v5 WHEN 6 THEN r.v6 WHEN 7 THEN r.v7 WHEN 8 THEN r.v8 WHEN 9 THEN r.v9 WHEN 10 THEN r.v10 WHEN 11 THEN r.v11 WHEN 12 THEN r.v12 WHEN 13 THEN r.v13 ELSE r.hour END,
           CASE k.dim WHEN 13 THEN r.tag_name ELSE '' END,
           sum(r.sign),
           sum(r.sign * (r.status NOT IN ('contacted', 'interested', 'won', 'invalid'))),
           sum(r.sign * (r.status = 'contacted')), sum(r.sign * (r.status = 'interested')),
           sum(r.sign * (r.status = 'won')), sum(r.sign * (r.status = 'invalid')), sum(r.sign * r.contact)
    FROM (SELECT -1 AS sign,
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
               COALESCE(OLD.ntag_id, '') AS v13) r CROSS JOIN report_dims k
    WHERE true
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (day, dim, value, label) DO UPDATE SET leads = leads + excluded.leads, new = new + excluded.new,
        contacted = contacted + excluded.contacted, interested = interested + excluded.interested,
        won = won + excluded.won, invalid = invalid + excluded.invalid, contact = contact + excluded.contact;
END;

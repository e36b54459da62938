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

ALTER TABLE leads ADD COLUMN followed_at TIMESTAMPTZ; -- the first status change or note
UPDATE leads SET followed_at = f.at FROM (SELECT lead_id, MIN(at) AS at FROM lead_events
    WHERE kind IN ('status', 'note') GROUP BY lead_id) f WHERE f.lead_id = leads.id;
CREATE FUNCTION lead_events_followed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE leads SET followed_at = NEW.at WHERE id = NEW.lead_id AND (followed_at IS NULL OR followed_at > NEW.at);
    RETURN NULL;
END $$;
CREATE TRIGGER lead_events_followed_at AFTER INSERT ON lead_events
    FOR EACH ROW WHEN (NEW.kind IN ('status', 'note')) EXECUTE FUNCTION lead_events_followed_at();

-- The report's single pass reads this index alone (followed_at added).
DROP INDEX leads_report;
CREATE INDEX leads_report ON leads (received_at) INCLUDE (status, owner_id, mobile, ntag_name, search_engine,
    search_host, keyword, bidding_word, promotion_id, first_url, site_name, device_type, province, city,
    subject_name, school_name, ntag_id, followed_at);
-- First follow-ups of a date range, for the reports read from report_days.
CREATE INDEX leads_followed ON leads (received_at) INCLUDE (owner_id, followed_at)
    WHERE followed_at IS NOT NULL AND merged_into IS NULL;

CREATE TABLE report_dims (dim INT PRIMARY KEY);
INSERT INTO report_dims (dim) SELECT generate_series(0, 14);

CREATE TABLE report_days (
    day INT NOT NULL, -- days since 1970-01-01, China time
    dim INT NOT NULL, -- 0 to 13: reports::DIMENSIONS' order; 14: the hour of day ('0' to '23')
    value TEXT NOT NULL, -- the segment ('' when the lead has none)
    label TEXT NOT NULL, -- dimension 13 (tag): the lead's ntag_name; '' otherwise
    leads BIGINT NOT NULL,
    new BIGINT NOT NULL,
    contacted BIGINT NOT NULL,
    interested BIGINT NOT NULL,
    won BIGINT NOT NULL,
    invalid BIGINT NOT NULL,
    contact BIGINT NOT NULL, -- leads with a valid Chinese mobile
    PRIMARY KEY (day, dim, value, label)
);

INSERT INTO report_days (day, dim, value, label, leads, new, contacted, interested, won, invalid, contact)
SELECT ((l.received_at AT TIME ZONE INTERVAL '+08:00')::date - DATE '1970-01-01'), k.dim, CASE k.dim WHEN 0 THEN COALESCE(l.search_engine, '') WHEN 1 THEN COALESCE(l.search_host, '') WHEN 2 THEN COALESCE(l.keyword, '') WHEN 3 THEN COALESCE(l.bidding_word, '') WHEN 4 THEN COALESCE(l.promotion_id, '') WHEN 5 THEN substring(COALESCE(l.first_url, '') FROM '^[^?#]*') WHEN 6 THEN COALESCE(l.site_name, '') WHEN 7 THEN COALESCE(l.device_type, '') WHEN 8 THEN COALESCE(l.province, '') WHEN 9 THEN COALESCE(l.city, '') WHEN 10 THEN COALESCE(l.subject_name, '') WHEN 11 THEN COALESCE(l.school_name, '') WHEN 12 THEN COALESCE(l.owner_id::text, '') WHEN 13 THEN COALESCE(l.ntag_id, '') ELSE EXTRACT(HOUR FROM l.received_at AT TIME ZONE INTERVAL '+08:00')::int::text END,
           CASE k.dim WHEN 13 THEN COALESCE(l.ntag_name, '') ELSE '' END,
           sum(1), sum(1 * (l.status NOT IN ('contacted', 'interested', 'won', 'invalid'))::int),
           sum(1 * (l.status = 'contacted')::int), sum(1 * (l.status = 'interested')::int),
           sum(1 * (l.status = 'won')::int), sum(1 * (l.status = 'invalid')::int),
           sum(1 * (COALESCE(translate(l.mobile, ' -+()', '') ~ '^(1[3-9][0-9]{9}|861[3-9][0-9]{9}|00861[3-9][0-9]{9})$', false))::int)
    FROM leads l CROSS JOIN report_dims k WHERE l.merged_into IS NULL
    GROUP BY 1, 2, 3, 4;

-- Adds (sign 1) or removes (-1) one lead's figures.
CREATE FUNCTION report_days_apply(leads, INT) RETURNS void LANGUAGE sql AS $$
INSERT INTO report_days (day, dim, value, label, leads, new, contacted, interested, won, invalid, contact)
SELECT ((l.received_at AT TIME ZONE INTERVAL '+08:00')::date - DATE '1970-01-01'), k.dim, CASE k.dim WHEN 0 THEN COALESCE(l.search_engine, '') WHEN 1 THEN COALESCE(l.search_host, '') WHEN 2 THEN COALESCE(l.keyword, '') WHEN 3 THEN COALESCE(l.bidding_word, '') WHEN 4 THEN COALESCE(l.promotion_id, '') WHEN 5 THEN substring(COALESCE(l.first_url, '') FROM '^[^?#]*') WHEN 6 THEN COALESCE(l.site_name, '') WHEN 7 THEN COALESCE(l.device_type, '') WHEN 8 THEN COALESCE(l.province, '') WHEN 9 THEN COALESCE(l.city, '') WHEN 10 THEN COALESCE(l.subject_name, '') WHEN 11 THEN COALESCE(l.school_name, '') WHEN 12 THEN COALESCE(l.owner_id::text, '') WHEN 13 THEN COALESCE(l.ntag_id, '') ELSE EXTRACT(HOUR FROM l.received_at AT TIME ZONE INTERVAL '+08:00')::int::text END,
           CASE k.dim WHEN 13 THEN COALESCE(l.ntag_name, '') ELSE '' END,
           sum($2), sum($2 * (l.status NOT IN ('contacted', 'interested', 'won', 'invalid'))::int),
           sum($2 * (l.status = 'contacted')::int), sum($2 * (l.status = 'interested')::int),
           sum($2 * (l.status = 'won')::int), sum($2 * (l.status = 'invalid')::int),
           sum($2 * (COALESCE(translate(l.mobile, ' -+()', '') ~ '^(1[3-9][0-9]{9}|861[3-9][0-9]{9}|00861[3-9][0-9]{9})$', false))::int)
    FROM (SELECT ($1).*) l CROSS JOIN report_dims k
    GROUP BY 1, 2, 3, 4
ON CONFLICT (day, dim, value, label) DO UPDATE SET leads = report_days.leads + EXCLUDED.leads,
        new = report_days.new + EXCLUDED.new, contacted = report_days.contacted + EXCLUDED.contacted,
        interested = report_days.interested + EXCLUDED.interested, won = report_days.won + EXCLUDED.won,
        invalid = report_days.invalid + EXCLUDED.invalid, contact = report_days.contact + EXCLUDED.contact
$$;

CREATE FUNCTION leads_report_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.merged_into IS NULL THEN
        PERFORM report_days_apply(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.merged_into IS NULL THEN
        PERFORM report_days_apply(NEW, 1);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER leads_report_days_insert AFTER INSERT ON leads
    FOR EACH ROW EXECUTE FUNCTION leads_report_days();
CREATE TRIGGER leads_report_days_update AFTER UPDATE OF received_at, status, owner_id, mobile, ntag_name, search_engine, search_host, keyword, bidding_word, promotion_id, first_url, site_name, device_type, province, city, subject_name, school_name, ntag_id, merged_into ON leads
    FOR EACH ROW WHEN (OLD.received_at IS DISTINCT FROM NEW.received_at OR OLD.status IS DISTINCT FROM NEW.status OR OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.mobile IS DISTINCT FROM NEW.mobile OR OLD.ntag_name IS DISTINCT FROM NEW.ntag_name OR OLD.search_engine IS DISTINCT FROM NEW.search_engine OR OLD.search_host IS DISTINCT FROM NEW.search_host OR OLD.keyword IS DISTINCT FROM NEW.keyword OR OLD.bidding_word IS DISTINCT FROM NEW.bidding_word OR OLD.promotion_id IS DISTINCT FROM NEW.promotion_id OR OLD.first_url IS DISTINCT FROM NEW.first_url OR OLD.site_name IS DISTINCT FROM NEW.site_name OR OLD.device_type IS DISTINCT FROM NEW.device_type OR OLD.province IS DISTINCT FROM NEW.province OR OLD.city IS DISTINCT FROM NEW.city OR OLD.subject_name IS DISTINCT FROM NEW.subject_name OR OLD.school_name IS DISTINCT FROM NEW.school_name OR OLD.ntag_id IS DISTINCT FROM NEW.ntag_id OR OLD.merged_into IS DISTINCT FROM NEW.merged_into) EXECUTE FUNCTION leads_report_days();
CREATE TRIGGER leads_report_days_delete AFTER DELETE ON leads
    FOR EACH ROW EXECUTE FUNCTION leads_report_days();

-- Version 7: the export log (who exported which leads, when, with what filter), and indexes the
-- dashboard and the attribution filters use.

CREATE TABLE exports (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    user_id BIGINT REFERENCES users (id), -- NULL: the admin token or the command line
    actor TEXT NOT NULL, -- the user's name, "admin token" or "cli"
    via TEXT NOT NULL, -- api | console | cli
    format TEXT NOT NULL, -- csv | xlsx
    columns JSONB NOT NULL DEFAULT '[]', -- JSON array of column keys
    filter JSONB NOT NULL DEFAULT '{}', -- JSON object: the inbox filter's parameters
    rows BIGINT NOT NULL,
    completed BOOLEAN NOT NULL -- false when the download was cut short
);
CREATE INDEX exports_at ON exports (id DESC);

-- Follow-up times: the first status change or note of each lead.
CREATE INDEX lead_events_kind ON lead_events (kind, lead_id, at);
-- Attribution filters (segment links of the dashboard).
CREATE INDEX leads_keyword ON leads (keyword, received_at DESC);
CREATE INDEX leads_subject ON leads (subject_name, received_at DESC);
CREATE INDEX leads_site ON leads (site_name, received_at DESC);
-- The dashboard reads a date range of leads with these columns only: a covering index allows
-- index-only scans instead of reading every lead's row.
CREATE INDEX leads_report ON leads (received_at) INCLUDE (status, owner_id, mobile, ntag_name, search_engine,
    search_host, keyword, bidding_word, promotion_id, first_url, site_name, device_type, province, city,
    subject_name, school_name, ntag_id);

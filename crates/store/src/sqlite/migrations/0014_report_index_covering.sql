-- Version 14 (issue 7): the report's index `leads_report` answers a filtered report alone. Every
-- list and report reads only leads not merged into another (`l.merged_into IS NULL`), and that
-- column was not in the index: SQLite looked up every lead's table row for it (with a date range
-- of 741,850 leads and a city filter, that many row lookups to keep 99,650 of them). Now the
-- index holds only leads not merged, and the column itself (always NULL here), so that the query
-- planner sees a covering index whatever its version. (Version 13 is the write path's.)
DROP INDEX leads_report;
CREATE INDEX leads_report ON leads (received_at, status, owner_id, mobile, ntag_name, search_engine,
    search_host, keyword, bidding_word, promotion_id, first_url, site_name, device_type, province, city,
    subject_name, school_name, ntag_id, followed_at, merged_into)
    WHERE merged_into IS NULL;

-- Version 14 (issue 7): the report's index `leads_report` answers a filtered report alone. Every
-- list and report reads only leads not merged into another (`l.merged_into IS NULL`), and that
-- column was not in the index, so PostgreSQL could not scan it index-only. Now the index holds only
-- leads not merged (the condition then needs no column). (Version 13 is the write path's.)
DROP INDEX leads_report;
CREATE INDEX leads_report ON leads (received_at) INCLUDE (status, owner_id, mobile, ntag_name, search_engine,
    search_host, keyword, bidding_word, promotion_id, first_url, site_name, device_type, province, city,
    subject_name, school_name, ntag_id, followed_at)
    WHERE merged_into IS NULL;

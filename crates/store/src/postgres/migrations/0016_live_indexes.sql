-- Version 16: the inbox's indexes hold only the leads a list can show (not merged into another:
-- every lead list has `merged_into IS NULL`). A list's total was counted by reading every row
-- to check that column (100 ms at 100,000 leads for the inbox's first page, issue #8); now the
-- index alone answers it, and pages read no row they then drop.
DROP INDEX leads_received_at;
CREATE INDEX leads_received_at ON leads (received_at DESC, id DESC) WHERE merged_into IS NULL;
DROP INDEX leads_updated_at;
CREATE INDEX leads_updated_at ON leads (updated_at DESC, id DESC) WHERE merged_into IS NULL;
DROP INDEX leads_status;
CREATE INDEX leads_status ON leads (status, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_province_city;
CREATE INDEX leads_province_city ON leads (province, city, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_city;
CREATE INDEX leads_city ON leads (city, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_search_engine;
CREATE INDEX leads_search_engine ON leads (search_engine, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_ntag_id;
CREATE INDEX leads_ntag_id ON leads (ntag_id, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_user_id;
CREATE INDEX leads_user_id ON leads (user_id, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_owner;
CREATE INDEX leads_owner ON leads (owner_id, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_score;
CREATE INDEX leads_score ON leads (score DESC, received_at DESC, id DESC) WHERE merged_into IS NULL;
DROP INDEX leads_keyword;
CREATE INDEX leads_keyword ON leads (keyword, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_subject;
CREATE INDEX leads_subject ON leads (subject_name, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_site;
CREATE INDEX leads_site ON leads (site_name, received_at DESC) WHERE merged_into IS NULL;
DROP INDEX leads_create_time;
CREATE INDEX leads_create_time ON leads ((create_time IS NULL), create_time DESC, id DESC) WHERE merged_into IS NULL;

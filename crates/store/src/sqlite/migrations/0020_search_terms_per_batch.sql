-- Version 20 (issue 8): the search index is written once per write batch, not by each lead's
-- trigger. FTS5 writes what it holds in memory to disk at every savepoint, and SQLite opens one
-- for every statement that fires a trigger: each lead's terms became a segment of their own,
-- merged again and again (a tenth of the writer's time at ingest, and pages written to the WAL
-- for each lead). Now the triggers only note which leads changed; the writer indexes them
-- together just before the batch commits (sqlite::writer::index_pending_terms), in the same
-- transaction, so a committed lead is always searchable.
-- `in_index` = 1: the lead's earlier terms are in lead_terms and must be removed first.
-- xiansuo_index_later(id) returns the id; the store registers it on its writer's connection only,
-- so, as before, another program writing `leads` gets "no such function" rather than leaving the
-- search index behind.
CREATE TABLE lead_terms_pending (lead_id INTEGER PRIMARY KEY, in_index INTEGER NOT NULL);

DROP TRIGGER leads_terms_insert;
DROP TRIGGER leads_terms_update;
DROP TRIGGER leads_terms_delete;

CREATE TRIGGER leads_terms_insert AFTER INSERT ON leads
BEGIN
    INSERT INTO lead_terms_pending (lead_id, in_index) VALUES (xiansuo_index_later(NEW.id), 0) ON CONFLICT DO NOTHING;
END;
CREATE TRIGGER leads_terms_update AFTER UPDATE OF name, mobile, tel, weixin, qq, email, visitor_static_id, keyword, note, city ON leads
WHEN OLD.name IS NOT NEW.name OR OLD.mobile IS NOT NEW.mobile OR OLD.tel IS NOT NEW.tel OR OLD.weixin IS NOT NEW.weixin OR OLD.qq IS NOT NEW.qq OR OLD.email IS NOT NEW.email OR OLD.visitor_static_id IS NOT NEW.visitor_static_id OR OLD.keyword IS NOT NEW.keyword OR OLD.note IS NOT NEW.note OR OLD.city IS NOT NEW.city
BEGIN
    -- A lead inserted earlier in the same transaction keeps in_index = 0.
    INSERT INTO lead_terms_pending (lead_id, in_index) VALUES (xiansuo_index_later(NEW.id), 1) ON CONFLICT DO NOTHING;
END;
CREATE TRIGGER leads_terms_delete AFTER DELETE ON leads
BEGIN
    DELETE FROM lead_terms WHERE rowid = OLD.id
        AND NOT EXISTS (SELECT 1 FROM lead_terms_pending WHERE lead_id = OLD.id AND in_index = 0);
    DELETE FROM lead_terms_pending WHERE lead_id = OLD.id;
END;

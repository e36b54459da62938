-- Version 15: the index of the lead search `q` (store::search): each lead's searched values as
-- terms (every character outside ASCII, every three ASCII letters or digits in a row), in a
-- contentless FTS5 table keyed by the lead's id. A search takes the leads holding every term of
-- the query, then checks the substring on them alone (query.rs). The terms are computed by
-- xiansuo_search_terms, a function the store registers on its writer's connection (so only the
-- store can write leads: another program would get "no such function").
CREATE VIRTUAL TABLE lead_terms USING fts5(terms, content = '', contentless_delete = 1, tokenize = 'ascii',
    detail = 'none');

CREATE TRIGGER leads_terms_insert AFTER INSERT ON leads
BEGIN
    INSERT INTO lead_terms (rowid, terms) VALUES (NEW.id, xiansuo_search_terms(NEW.name, NEW.mobile, NEW.tel, NEW.weixin, NEW.qq, NEW.email, NEW.visitor_static_id, NEW.keyword, NEW.note, NEW.city));
END;
CREATE TRIGGER leads_terms_update AFTER UPDATE OF name, mobile, tel, weixin, qq, email, visitor_static_id, keyword, note, city ON leads
WHEN OLD.name IS NOT NEW.name OR OLD.mobile IS NOT NEW.mobile OR OLD.tel IS NOT NEW.tel OR OLD.weixin IS NOT NEW.weixin OR OLD.qq IS NOT NEW.qq OR OLD.email IS NOT NEW.email OR OLD.visitor_static_id IS NOT NEW.visitor_static_id OR OLD.keyword IS NOT NEW.keyword OR OLD.note IS NOT NEW.note OR OLD.city IS NOT NEW.city
BEGIN
    DELETE FROM lead_terms WHERE rowid = OLD.id;
    INSERT INTO lead_terms (rowid, terms) VALUES (NEW.id, xiansuo_search_terms(NEW.name, NEW.mobile, NEW.tel, NEW.weixin, NEW.qq, NEW.email, NEW.visitor_static_id, NEW.keyword, NEW.note, NEW.city));
END;
CREATE TRIGGER leads_terms_delete AFTER DELETE ON leads
BEGIN
    DELETE FROM lead_terms WHERE rowid = OLD.id;
END;

INSERT INTO lead_terms (rowid, terms) SELECT l.id, xiansuo_search_terms(l.name, l.mobile, l.tel, l.weixin, l.qq, l.email, l.visitor_static_id, l.keyword, l.note, l.city) FROM leads l;

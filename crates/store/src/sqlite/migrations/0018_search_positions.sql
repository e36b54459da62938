-- Version 18 (issue 8): the search index keeps where each term occurs (detail 'full'), and a
-- search asks for its terms side by side, in order, as a phrase (store::search::fts5_phrase).
-- With the terms as a set, `q=8888` took every lead holding `888` anywhere (a 32-digit visitor
-- id holds one in three leads out of a hundred) as a candidate to check with LIKE: 150–210 ms
-- at a million leads. The terms are rebuilt for every lead (xiansuo_search_terms now lists each
-- value's terms in order); the triggers of migration 15 go on writing into the new table.
DROP TABLE lead_terms;
CREATE VIRTUAL TABLE lead_terms USING fts5(terms, content = '', contentless_delete = 1, tokenize = 'ascii',
    detail = 'full');
INSERT INTO lead_terms (rowid, terms) SELECT l.id, xiansuo_search_terms(l.name, l.mobile, l.tel, l.weixin, l.qq, l.email, l.visitor_static_id, l.keyword, l.note, l.city) FROM leads l;

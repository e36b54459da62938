-- Version 15: the index of the lead search `q` (store::search): each lead's searched values as
-- terms (every character outside ASCII, every three ASCII letters or digits in a row, of the
-- text lowercased), in an array with a GIN index. A search takes the leads whose terms contain
-- every term of the query (the same function computes both), then checks the substring on them
-- alone (query.rs). Kept by triggers in the transaction of every change to a lead.
CREATE FUNCTION search_terms(VARIADIC texts TEXT[]) RETURNS TEXT[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT COALESCE(array_agg(DISTINCT t.term), '{}') FROM (
    SELECT substr(r.run[1], i, 3) AS term
        FROM unnest(texts) s(v), regexp_matches(lower(s.v), '[a-z0-9]{3,}', 'g') r(run),
             generate_series(1, length(r.run[1]) - 2) i
    UNION ALL
    SELECT c FROM unnest(texts) s(v), regexp_split_to_table(lower(s.v), '') c WHERE ascii(c) > 127
) t
$$;

CREATE TABLE lead_terms (
    lead_id BIGINT PRIMARY KEY,
    terms TEXT[] NOT NULL
);
CREATE INDEX lead_terms_terms ON lead_terms USING gin (terms);

CREATE FUNCTION leads_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM lead_terms WHERE lead_id = OLD.id;
    ELSE
        INSERT INTO lead_terms (lead_id, terms) VALUES (NEW.id, search_terms(NEW.name, NEW.mobile, NEW.tel, NEW.weixin, NEW.qq, NEW.email, NEW.visitor_static_id, NEW.keyword, NEW.note, NEW.city))
            ON CONFLICT (lead_id) DO UPDATE SET terms = EXCLUDED.terms;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER leads_terms_insert AFTER INSERT ON leads FOR EACH ROW EXECUTE FUNCTION leads_terms();
CREATE TRIGGER leads_terms_update AFTER UPDATE OF name, mobile, tel, weixin, qq, email, visitor_static_id, keyword, note, city ON leads
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.mobile IS DISTINCT FROM NEW.mobile OR OLD.tel IS DISTINCT FROM NEW.tel OR OLD.weixin IS DISTINCT FROM NEW.weixin OR OLD.qq IS DISTINCT FROM NEW.qq OR OLD.email IS DISTINCT FROM NEW.email OR OLD.visitor_static_id IS DISTINCT FROM NEW.visitor_static_id OR OLD.keyword IS DISTINCT FROM NEW.keyword OR OLD.note IS DISTINCT FROM NEW.note OR OLD.city IS DISTINCT FROM NEW.city) EXECUTE FUNCTION leads_terms();
CREATE TRIGGER leads_terms_delete AFTER DELETE ON leads FOR EACH ROW EXECUTE FUNCTION leads_terms();

INSERT INTO lead_terms (lead_id, terms) SELECT l.id, search_terms(l.name, l.mobile, l.tel, l.weixin, l.qq, l.email, l.visitor_static_id, l.keyword, l.note, l.city) FROM leads l;

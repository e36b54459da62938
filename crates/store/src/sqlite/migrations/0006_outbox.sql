-- Version 6 (issue #6): the outbox of outbound events, their deliveries per sink, and the
-- round-robin cursors of assignment groups. Events and deliveries are written by the writer in
-- the transaction of the change they announce.

CREATE TABLE outbox_events (
    id INTEGER PRIMARY KEY,
    lead_id INTEGER NOT NULL, -- no foreign key: a merge may remove the lead an event was about
    kind TEXT NOT NULL, -- lead.created | lead.updated | lead.status_changed | lead.assigned | lead.merged
    created_at INTEGER NOT NULL,
    payload TEXT NOT NULL -- JSON: {"lead": {...}, "change": {...}}
);
CREATE INDEX outbox_events_lead ON outbox_events (lead_id, id);

CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES outbox_events (id),
    sink TEXT NOT NULL,
    lead_id INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL, -- when the next attempt is due
    lease_until INTEGER, -- claimed by a worker until then
    last_error TEXT,
    last_status INTEGER, -- HTTP status of the last attempt
    delivered_at INTEGER,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX deliveries_lead_order ON deliveries (sink, lead_id, id) WHERE status = 'pending';
CREATE INDEX deliveries_sink ON deliveries (sink, status, id);

CREATE TABLE assignment_cursors (
    group_name TEXT PRIMARY KEY,
    last_user_id INTEGER
);

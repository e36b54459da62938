-- Version 6 (issue #6): the outbox of outbound events, their deliveries per sink, and the
-- round-robin cursors of assignment groups. Events and deliveries are written by the writer in
-- the transaction of the change they announce.

CREATE TABLE outbox_events (
    id BIGSERIAL PRIMARY KEY,
    lead_id BIGINT NOT NULL, -- no foreign key: a merge may remove the lead an event was about
    kind TEXT NOT NULL, -- lead.created | lead.updated | lead.status_changed | lead.assigned | lead.merged
    created_at TIMESTAMPTZ NOT NULL,
    payload JSONB NOT NULL -- {"lead": {...}, "change": {...}}
);
CREATE INDEX outbox_events_lead ON outbox_events (lead_id, id);

CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    event_id BIGINT NOT NULL REFERENCES outbox_events (id),
    sink TEXT NOT NULL,
    lead_id BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | dead
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at TIMESTAMPTZ NOT NULL, -- when the next attempt is due
    lease_until TIMESTAMPTZ, -- claimed by a worker until then
    last_error TEXT,
    last_status BIGINT, -- HTTP status of the last attempt
    delivered_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
CREATE INDEX deliveries_lead_order ON deliveries (sink, lead_id, id) WHERE status = 'pending';
CREATE INDEX deliveries_sink ON deliveries (sink, status, id);

CREATE TABLE assignment_cursors (
    group_name TEXT PRIMARY KEY,
    last_user_id BIGINT
);

-- Version 9 (issue #11): relays. A push re-sent to a source's relay target is an outbox event of
-- kind 'push.relay' with lead_id 0 (no lead) and the push it re-sends in push_id; its deliveries
-- (sink 'relay:SOURCE:N', lead_id 0) are retried, killed and redelivered like any other.

ALTER TABLE outbox_events ADD COLUMN push_id INTEGER;
CREATE INDEX outbox_events_push ON outbox_events (push_id) WHERE push_id IS NOT NULL;

-- Version 21 (issue 8): deliveries found by their event. The push log lists each push's relay
-- deliveries (outbox_events by push_id, then their deliveries); without this index every page
-- of the log read all deliveries, which every lead event with a sink adds to.
CREATE INDEX deliveries_event ON deliveries (event_id);

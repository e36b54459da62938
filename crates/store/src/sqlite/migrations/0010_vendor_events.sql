-- Version 10 (issue #11): the vendor event ids a source has stored, written in the push's own
-- transaction (before, a `vendor_event.SOURCE.ID` setting written after the commit). A resent
-- event (same source and id) is answered like the first and not stored again. `push_id` is
-- NULL only inside the transaction that claims the id. The settings rows of earlier releases are
-- carried over at start (`carry_over_vendor_events`), so an upgrade forgets none.

CREATE TABLE vendor_events (
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    push_id     INTEGER,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
) WITHOUT ROWID;

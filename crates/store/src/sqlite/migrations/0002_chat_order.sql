-- Version 2: the order in which a lead's chats were first seen, within one push too (the card's
-- chat_id, then the chats of its messages in transcript order): `seq` counts up per lead.
-- Rows of version 1 keep 0, and their old order (first_seen_at, then chat_id).

ALTER TABLE lead_chats ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;

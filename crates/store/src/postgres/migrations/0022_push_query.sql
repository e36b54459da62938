-- Version 22 (issue 8): a push's query string (without its token) is kept with its body. Some
-- vendors put part of the card in it (七鱼: the app key, which is the lead's company, and the
-- event type): a push queued in a burst, a replay and a spooled push are decoded again from
-- what is stored, and need it as much as the body.
ALTER TABLE pushes ADD COLUMN query TEXT;

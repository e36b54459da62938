-- Version 4: contact fields filled from what the visitor typed in the chat are marked, so people
-- know the agent did not enter them (and a value the agent enters later replaces them).

ALTER TABLE leads ADD COLUMN mobile_from_chat BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE leads ADD COLUMN tel_from_chat BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE leads ADD COLUMN weixin_from_chat BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE leads ADD COLUMN qq_from_chat BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE leads ADD COLUMN email_from_chat BOOLEAN NOT NULL DEFAULT false;

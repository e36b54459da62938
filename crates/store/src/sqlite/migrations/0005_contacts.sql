-- Version 5: contact intelligence (issue 5). Every lead's normalized contacts are indexed, so
-- leads sharing one are found as possible duplicates; a merged lead points at the lead it was
-- merged into (no foreign key: `xiansuo copy` writes leads in id order, and a lead may be
-- merged into a later one); the score and its reasons are kept for sorting the inbox.

ALTER TABLE leads ADD COLUMN merged_into INTEGER;
ALTER TABLE leads ADD COLUMN score INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN score_reasons TEXT NOT NULL DEFAULT '[]'; -- JSON: [{code, points, detail}]
ALTER TABLE leads ADD COLUMN intent_words TEXT NOT NULL DEFAULT '[]'; -- JSON: ["学费", …]

CREATE INDEX leads_merged_into ON leads (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX leads_score ON leads (score DESC, received_at DESC, id DESC);

CREATE TABLE lead_contacts (
    kind TEXT NOT NULL, -- mobile | tel | weixin | qq | email
    value TEXT NOT NULL, -- normalized
    lead_id INTEGER NOT NULL REFERENCES leads (id),
    PRIMARY KEY (kind, value, lead_id)
) WITHOUT ROWID;
CREATE INDEX lead_contacts_lead ON lead_contacts (lead_id);

-- Pairs an admin said are not the same visitor (lead_a < lead_b).
CREATE TABLE duplicate_dismissals (
    lead_a INTEGER NOT NULL REFERENCES leads (id),
    lead_b INTEGER NOT NULL REFERENCES leads (id),
    user_id INTEGER REFERENCES users (id),
    at INTEGER NOT NULL,
    PRIMARY KEY (lead_a, lead_b)
);
CREATE INDEX duplicate_dismissals_b ON duplicate_dismissals (lead_b);

-- Version 3: the console's users and sessions, lead ownership and the follow-up timeline.

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL, -- admin | agent
    password_hash TEXT NOT NULL, -- argon2id, PHC string
    disabled INTEGER NOT NULL DEFAULT 0,
    api_token_hash TEXT UNIQUE, -- SHA-256 of the user's API token, hex
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY, -- SHA-256 of the cookie's token, hex
    user_id INTEGER NOT NULL REFERENCES users (id),
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

ALTER TABLE leads ADD COLUMN owner_id INTEGER REFERENCES users (id);
ALTER TABLE leads ADD COLUMN status_reason TEXT;
CREATE INDEX leads_owner ON leads (owner_id, received_at DESC);

CREATE TABLE lead_events (
    id INTEGER PRIMARY KEY,
    lead_id INTEGER NOT NULL REFERENCES leads (id),
    at INTEGER NOT NULL,
    user_id INTEGER REFERENCES users (id),
    kind TEXT NOT NULL, -- status | owner | note
    detail TEXT NOT NULL DEFAULT '{}' -- JSON: {from,to,reason} | {from,to,claimed} | {text}
);
CREATE INDEX lead_events_lead ON lead_events (lead_id, at, id);

-- Version 1: leads, their transcripts and chats, the push log, settings.
-- Column names of leads are the canonical keys of push-spec.md (xiansuo_domain::FIELDS);
-- the storage tests check that they agree.

CREATE TABLE leads (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'new',
    visitor_static_id TEXT NOT NULL,
    company_id TEXT NOT NULL,
    chat_id TEXT,
    name TEXT,
    email TEXT,
    weixin TEXT,
    area TEXT,
    qq TEXT,
    sex TEXT,
    user_id TEXT,
    create_user_id TEXT,
    ext_column_1 TEXT,
    ext_column_2 TEXT,
    ext_column_3 TEXT,
    ext_column_4 TEXT,
    ext_column_5 TEXT,
    ext_column_6 TEXT,
    ext_column_7 TEXT,
    ext_column_8 TEXT,
    ext_column_9 TEXT,
    ext_column_10 TEXT,
    ext_column_11 TEXT,
    ext_column_12 TEXT,
    ext_column_13 TEXT,
    ext_column_14 TEXT,
    ext_column_15 TEXT,
    device_type TEXT,
    search_engine TEXT,
    keyword TEXT,
    chat_url TEXT,
    refer TEXT,
    search_host TEXT,
    first_url TEXT,
    create_time TIMESTAMPTZ,
    edit_time TIMESTAMPTZ,
    allocation_time TIMESTAMPTZ,
    tel TEXT,
    mobile TEXT,
    country TEXT,
    province TEXT,
    city TEXT,
    site_id TEXT,
    site_name TEXT,
    company_name TEXT,
    ipv6 TEXT,
    ip TEXT,
    promotion_id TEXT,
    card_type TEXT,
    ntag_id TEXT,
    ntag_name TEXT,
    ntag_message TEXT,
    subject_name TEXT,
    school_name TEXT,
    user_real_name TEXT,
    create_user_real_name TEXT,
    edit_user_real_name TEXT,
    note TEXT,
    user_no TEXT,
    edit_user_id TEXT,
    edit_user_display_name TEXT,
    bidding_word TEXT,
    group_id TEXT,
    district TEXT,
    group_name TEXT,
    promotion_name TEXT,
    ssid TEXT,
    tg_ad_provider TEXT,
    tg_ad_agent TEXT,
    tg_ad_account TEXT,
    tg_ad_account_name TEXT,
    tg_plan_id TEXT,
    tg_plan_name TEXT,
    tg_group_id TEXT,
    tg_group_name TEXT,
    tg_creative_id TEXT,
    tg_creative_name TEXT,
    tg_keyword_id TEXT,
    tg_keyword_name TEXT,
    bcp_aduser_id TEXT,
    last_landing_page TEXT,
    rep_name TEXT,
    spread_flag TEXT,
    visitor_source_id TEXT,
    extra JSONB NOT NULL DEFAULT '{}', -- keys that map to no canonical field
    received_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    push_count BIGINT NOT NULL DEFAULT 0,
    message_count BIGINT NOT NULL DEFAULT 0,
    visitor_message_count BIGINT NOT NULL DEFAULT 0,
    UNIQUE (source, company_id, visitor_static_id)
);
CREATE INDEX leads_received_at ON leads (received_at DESC, id DESC);
CREATE INDEX leads_updated_at ON leads (updated_at DESC, id DESC);
CREATE INDEX leads_status ON leads (status, received_at DESC);
CREATE INDEX leads_province_city ON leads (province, city, received_at DESC);
CREATE INDEX leads_city ON leads (city, received_at DESC);
CREATE INDEX leads_search_engine ON leads (search_engine, received_at DESC);
CREATE INDEX leads_ntag_id ON leads (ntag_id, received_at DESC);
CREATE INDEX leads_user_id ON leads (user_id, received_at DESC);

CREATE TABLE lead_chats (
    lead_id BIGINT NOT NULL REFERENCES leads (id),
    chat_id TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (lead_id, chat_id)
);

CREATE TABLE messages (
    id BIGSERIAL PRIMARY KEY,
    lead_id BIGINT NOT NULL REFERENCES leads (id),
    recorder_id TEXT NOT NULL,
    chat_id TEXT,
    sender TEXT NOT NULL, -- visitor | staff
    from_id TEXT,
    message TEXT NOT NULL,
    type TEXT,
    create_time TIMESTAMPTZ,
    extra JSONB NOT NULL DEFAULT '{}',
    UNIQUE (lead_id, recorder_id)
);
CREATE INDEX messages_lead_time ON messages (lead_id, create_time, id);

CREATE TABLE pushes (
    id BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    content_type TEXT,
    body BYTEA NOT NULL, -- the request body, byte for byte
    outcome TEXT NOT NULL, -- accepted | ignored | rejected
    error TEXT,
    accepted BIGINT NOT NULL DEFAULT 0,
    ignored BIGINT NOT NULL DEFAULT 0,
    replayed_at TIMESTAMPTZ,
    replay_count BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX pushes_outcome ON pushes (outcome, id DESC);
CREATE INDEX pushes_source ON pushes (source, id DESC);

CREATE TABLE push_leads (
    push_id BIGINT NOT NULL REFERENCES pushes (id),
    lead_id BIGINT NOT NULL REFERENCES leads (id),
    created BOOLEAN NOT NULL, -- this push created the lead
    PRIMARY KEY (push_id, lead_id)
);
CREATE INDEX push_leads_lead ON push_leads (lead_id, push_id);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

//! `GET /api/openapi.json`: the API described in OpenAPI 3.1. Written by hand next to the
//! routes it describes; an integration test checks every documented path against the server.

use axum::Json;
use serde_json::{Map, Value, json};
use xiansuo_domain::{FIELDS, FieldKind, LeadStatus};

fn nullable_string(description: &str) -> Value {
    json!({ "type": ["string", "null"], "description": description })
}

fn statuses() -> Vec<&'static str> {
    LeadStatus::ALL.iter().map(|s| s.as_str()).collect()
}

fn lead_schema() -> Value {
    let mut props = Map::new();
    props.insert("id".into(), json!({ "type": "integer" }));
    props.insert("source".into(), json!({ "type": "string" }));
    props.insert("status".into(), json!({ "type": "string", "enum": statuses() }));
    props.insert(
        "status_reason".into(),
        json!({ "type": ["string", "null"], "description": "why the lead is invalid (无效)" }),
    );
    props.insert(
        "found_in_chat".into(),
        json!({ "type": "array", "items": { "type": "string", "enum": ["mobile", "tel", "weixin", "qq", "email"] },
                "description": "contact fields whose value was found in what the visitor typed, not entered on the card" }),
    );
    props.insert(
        "owner_id".into(),
        json!({ "type": ["integer", "null"], "description": "the user following it up; null: the unassigned pool" }),
    );
    for f in FIELDS {
        let description = format!("{} (vendor key {})", f.label, f.vendor_key);
        let mut schema = nullable_string(&description);
        if f.kind == FieldKind::Time {
            schema["format"] = json!("date-time");
        }
        props.insert(f.key.into(), schema);
    }
    props.insert("chat_ids".into(), json!({ "type": "array", "items": { "type": "string" } }));
    props.insert(
        "extra".into(),
        json!({ "type": "object", "additionalProperties": { "type": "string" }, "description": "keys that map to no canonical field, as they arrived" }),
    );
    props.insert("received_at".into(), json!({ "type": "string", "format": "date-time" }));
    props.insert("updated_at".into(), json!({ "type": "string", "format": "date-time" }));
    props.insert("push_count".into(), json!({ "type": "integer" }));
    props.insert("message_count".into(), json!({ "type": "integer" }));
    props.insert("visitor_message_count".into(), json!({ "type": "integer" }));
    props.insert(
        "merged_into".into(),
        json!({ "type": ["integer", "null"], "description": "the lead this one was merged into (it then shows there)" }),
    );
    props.insert(
        "tag".into(),
        json!({ "description": "the summary tag, named by the configuration's tag dictionary when it knows the id",
            "oneOf": [{ "type": "null" }, { "type": "object", "required": ["key", "id", "name", "colour", "message"], "properties": {
                "key": { "type": "string", "description": "the inbox's tag filter value: the id, or the name when the card carried none" },
                "id": { "type": ["string", "null"] }, "name": { "type": "string" },
                "colour": { "type": ["string", "null"] }, "message": { "type": ["string", "null"] } } }] }),
    );
    props.insert("score".into(), json!({ "type": "integer", "minimum": 0, "maximum": 100 }));
    props.insert(
        "score_reasons".into(),
        json!({ "type": "array", "items": { "type": "object", "required": ["code", "points", "detail", "label"], "properties": {
            "code": { "type": "string", "enum": ["valid_mobile", "other_contact", "found_in_chat", "visitor_messages", "intent_words", "repeat_visitor", "tag"] },
            "points": { "type": "integer" }, "detail": { "type": "string" }, "label": { "type": "string" } } } }),
    );
    let required: Vec<&String> = props.keys().collect();
    json!({ "type": "object", "required": required, "properties": props })
}

/// Leads of a segment counted by status, with the shares of the funnel.
fn counts_schema() -> Value {
    let share = json!({ "type": "number", "minimum": 0, "maximum": 1 });
    let mut by_status = Map::new();
    for s in statuses() {
        by_status.insert(s.into(), json!({ "type": "integer", "minimum": 0 }));
    }
    json!({ "type": "object", "required": ["leads", "by_status", "contact", "contact_rate", "contacted_rate", "interested_rate", "won_rate", "invalid_rate"], "properties": {
        "leads": { "type": "integer", "minimum": 0 },
        "by_status": { "type": "object", "required": statuses(), "properties": by_status },
        "contact": { "type": "integer", "minimum": 0, "description": "leads with a valid Chinese mobile" },
        "contact_rate": share, "contacted_rate": share, "interested_rate": share, "won_rate": share, "invalid_rate": share } })
}

fn stats_schema(counts: &Value) -> Value {
    let mut schema = counts.clone();
    let props = &mut schema["properties"];
    props["from"] = json!({ "type": ["string", "null"], "format": "date-time" });
    props["to"] = json!({ "type": ["string", "null"], "format": "date-time" });
    props["funnel"] = json!({ "type": "array", "items": { "type": "object", "required": ["status", "label", "leads", "rate"], "properties": {
        "status": { "type": "string", "enum": ["new", "contacted", "interested", "won"] }, "label": { "type": "string" },
        "leads": { "type": "integer" }, "rate": { "type": "number" } } } });
    props["days"] = json!({ "type": "array", "items": { "type": "object", "required": ["date", "leads", "won", "contact"], "properties": {
        "date": { "type": "string", "format": "date" }, "leads": { "type": "integer" }, "won": { "type": "integer" }, "contact": { "type": "integer" } } } });
    props["hours"] = json!({ "type": "array", "minItems": 24, "maxItems": 24, "items": { "type": "integer" }, "description": "leads per hour of day, China time (the lead list's hour=H selects them)" });
    let mut segment = counts.clone();
    segment["properties"]["value"] = json!({ "type": "string", "description": "the filter's value; empty: never sent (select it with empty=<filter>, or owner=none for the owner)" });
    segment["properties"]["label"] = json!({ "type": "string" });
    if let Some(r) = segment["required"].as_array_mut() {
        r.push(json!("value"));
        r.push(json!("label"));
    }
    props["dimensions"] = json!({ "type": "array", "items": { "type": "object", "required": ["key", "label", "filter", "distinct", "segments", "others"], "properties": {
        "key": { "type": "string" }, "label": { "type": "string" },
        "filter": { "type": "string", "description": "the lead list parameter that selects a segment" },
        "distinct": { "type": "integer" }, "segments": { "type": "array", "items": segment }, "others": counts } } });
    props["follow_up"] = json!({ "type": "array", "items": { "type": "object", "required": ["owner_id", "owner", "followed", "mean_seconds", "median_seconds"], "properties": {
        "owner_id": { "type": ["integer", "null"] }, "owner": { "type": ["string", "null"] }, "followed": { "type": "integer" },
        "mean_seconds": { "type": "integer" }, "median_seconds": { "type": "integer" } } } });
    if let Some(r) = schema["required"].as_array_mut() {
        for k in ["from", "to", "funnel", "days", "hours", "dimensions", "follow_up"] {
            r.push(json!(k));
        }
    }
    schema
}

/// The lead filters the dashboard's segments link to (exact matches unless said otherwise).
fn attribution_params() -> Vec<Value> {
    let q = |name: &str, description: &str| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" }, "description": description });
    vec![
        q("keyword", "exact search keyword (搜索词)"),
        q("bidding_word", "exact bidding word (关键词)"),
        q("promotion_id", "exact promotion id"),
        q("site_name", "exact site name"),
        q("device_type", "exact device type"),
        q("subject_name", "exact subject (项目)"),
        q("school_name", "exact campus (校区)"),
        q("search_host", "exact search host"),
        q("landing", "landing page: first_url without its query string and fragment"),
        json!({ "name": "hour", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": 23 }, "description": "hour of day the lead was received, China time (the dashboard's per-hour segments)" }),
        json!({ "name": "empty", "in": "query", "required": false, "schema": { "type": "string", "pattern": format!("^(({0})(,({0}))*)?$", xiansuo_store::reports::EMPTY_FILTERS.join("|")) }, "description": "comma-separated filters whose field must be empty (unset or blank): the dashboard's （未填） segments; for landing, a first_url that is empty or starts with its query or fragment; the owner's empty segment is owner=none; an empty value filters nothing, as with the other filters" }),
    ]
}

fn document_value() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let err = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": error.clone() } } });
    let ok = |description: &str, schema: &str| json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
    let time_param = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "required": false, "description": description,
                "schema": { "anyOf": [
                    { "type": "string", "format": "date" },
                    { "type": "string", "format": "date-time" },
                    { "type": "string", "pattern": "^[0-9]{1,13}$", "description": "epoch seconds or milliseconds" }] } })
    };
    let q = |name: &str, description: &str| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" }, "description": description });
    let page_params = vec![
        json!({ "name": "page", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 21474836 }, "description": "page number, from 1" }),
        json!({ "name": "per_page", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 200 }, "description": "items per page (default 50, at most 200)" }),
    ];
    let mut lead_params = vec![
        q("q", "substring of name, mobile, tel, weixin, qq, email, visitor_static_id, keyword, note or city"),
        json!({ "name": "status", "in": "query", "required": false, "schema": { "type": "string", "enum": statuses() } }),
        json!({ "name": "owner", "in": "query", "required": false, "schema": { "type": "string", "pattern": "^(none|[0-9]{1,18})$" }, "description": "none for the unassigned pool, or a user id" }),
        q("source", "source name"),
        q("province", "exact province"),
        q("city", "exact city"),
        q("search_engine", "exact search engine"),
        q("ntag_id", "exact summary tag id"),
        q("tag", "summary tag: its id, or its name for cards that carry only a name"),
        q("user_id", "exact owner id"),
        time_param(
            "from",
            "received at or after: a date (China time), an RFC 3339 time or epoch seconds / milliseconds; also YYYY-MM-DD HH:MM:SS",
        ),
        time_param("to", "received before (a date includes that whole day)"),
        json!({ "name": "sort", "in": "query", "required": false, "schema": { "type": "string", "enum": xiansuo_store::LeadSort::NAMES } }),
    ];
    lead_params.extend(attribution_params());
    let filter_params = lead_params.clone();
    lead_params.extend(page_params.clone());
    let keys: Vec<&str> = crate::export::all_columns().iter().map(|(k, _)| *k).collect();
    let columns_pattern = format!("^({0})(,({0}))*$", keys.join("|"));
    let mut export_params = vec![
        json!({ "name": "format", "in": "query", "required": false, "schema": { "type": "string", "enum": ["csv", "xlsx"] }, "description": "csv (UTF-8 with BOM, the default) or xlsx" }),
        json!({ "name": "columns", "in": "query", "required": false, "schema": { "type": "string", "pattern": columns_pattern }, "description": "comma-separated column keys (lead keys such as id, status, owner, received_at, landing, or canonical card keys); the default set when absent" }),
    ];
    export_params.extend(filter_params.clone());
    let export_log_params = page_params.clone();
    let counts = counts_schema();
    let mut audit_params = vec![q("action", "only this action (sign_in, sign_in_failed, lead_merged, …)")];
    audit_params.extend(page_params.clone());
    let mut push_params = vec![
        json!({ "name": "outcome", "in": "query", "required": false, "schema": { "type": "string", "enum": ["accepted", "ignored", "rejected", "queued"] } }),
        q("source", "source name"),
    ];
    push_params.extend(page_params);
    let id_param = |what: &str| json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 }, "description": format!("{what} id") });
    let lead = lead_schema();
    let mut lead_detail = lead.clone();
    lead_detail["properties"]["messages"] =
        json!({ "type": "array", "items": { "$ref": "#/components/schemas/Message" } });
    lead_detail["properties"]["contacts_found_in_chat"] = json!({ "type": "array", "description": "contacts the visitor typed in the chat, normalized",
        "items": { "type": "object", "required": ["kind", "value", "recorder_id"], "properties": {
            "kind": { "type": "string", "enum": ["mobile", "tel", "weixin", "qq", "email"] },
            "value": { "type": "string" }, "recorder_id": { "type": "string" } } } });
    lead_detail["properties"]["pushes"] = json!({ "type": "array", "items": { "type": "object", "required": ["id", "received_at", "outcome"], "properties": {
        "id": { "type": "integer" }, "received_at": { "type": "string", "format": "date-time" }, "outcome": { "type": "string", "enum": ["accepted", "ignored", "rejected", "queued"] } } } });
    lead_detail["properties"]["timeline"] = json!({ "type": "array", "description": "the lead's timeline, oldest first: people's changes (status, owner, note, merge…), possible duplicates, automatic assignment, and the chat tool's events of the visitor that carry no lead data (kind vendor_event: a chat started or ended, a rating)",
        "items": { "type": "object", "required": ["id", "lead_id", "at", "kind", "detail"], "properties": {
            "id": { "type": "integer" }, "lead_id": { "type": "integer", "description": "this lead, or a lead merged into it" },
            "at": { "type": "string", "format": "date-time" }, "user_id": { "type": ["integer", "null"], "description": "who made the change; null: the service" },
            "kind": { "type": "string", "enum": ["status", "owner", "note", "duplicate", "merged", "merged_into", "unmerged", "dismissed", "auto_assign", "vendor_event"] },
            "detail": { "type": "object", "description": "the change; vendor_event: {vendor, event, text, push_id}, text in Chinese (会话开始, 访客评价 5 星)" } } } });
    lead_detail["properties"]["duplicates"] = json!({ "type": "array", "description": "leads sharing a normalized contact (possible duplicates)",
        "items": { "$ref": "#/components/schemas/Duplicate" } });
    if let Some(required) = lead_detail["required"].as_array_mut() {
        required.push(json!("duplicates"));
        required.push(json!("messages"));
        required.push(json!("contacts_found_in_chat"));
        required.push(json!("pushes"));
        required.push(json!("timeline"));
    }
    let page_of = |item: &str| {
        json!({ "type": "object", "required": ["total", "total_exact", "page", "per_page", "items"], "properties": {
        "total": { "type": "integer", "description": "matching items; a lower bound when total_exact is false" },
        "total_exact": { "type": "boolean", "description": "false when a lead list stopped counting its matches at 10,000: total is then a lower bound. Lists filtered by dates, status and at most one dimension count exactly from the per-day report, except a partial day at either end of the range holding more than 10,000 matches; lists with q, source, user_id, tag or two dimensions count up to 10,000" },
        "page": { "type": "integer" }, "per_page": { "type": "integer" },
        "items": { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } } } })
    };

    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Xiansuo",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Receives live-chat lead-card pushes and serves the leads. The API needs `Authorization: Bearer <token>`: the admin token, or a user's API token (an agent sees only their leads and the unassigned pool). The push endpoint needs the source's token."
        },
        "components": {
            "securitySchemes": {
                "admin": { "type": "http", "scheme": "bearer" },
                "pushToken": { "type": "apiKey", "in": "query", "name": "token", "description": "or Authorization: Bearer, or X-Push-Token" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["code", "msg"], "properties": {
                    "code": { "type": "integer", "description": "the HTTP status" }, "msg": { "type": "string" },
                    "push_id": { "type": "integer", "description": "the push log entry that keeps the refused body" } } },
                "PushAnswer": { "type": "object", "required": ["code", "msg", "push_id", "outcome", "accepted", "ignored", "leads", "warnings"], "properties": {
                    "code": { "type": "integer", "enum": [0] }, "msg": { "type": "string" }, "push_id": { "type": "integer" },
                    "outcome": { "type": "string", "enum": ["accepted", "ignored", "rejected", "queued"], "description": "queued: stored durably while the writer was behind (queue_pushes_above); leads is then empty and the leads are built a moment later" },
                    "error": { "type": "string", "description": "replay only: why the body is still rejected" },
                    "accepted": { "type": "integer" }, "ignored": { "type": "integer" },
                    "leads": { "type": "array", "items": { "type": "object", "required": ["id", "created", "duplicates"], "properties": {
                        "id": { "type": "integer" }, "created": { "type": "boolean" },
                        "duplicates": { "type": "array", "items": { "type": "integer" }, "description": "other leads sharing a contact with this one" } } } },
                    "warnings": { "type": "array", "items": { "type": "string" } } } },
                "Lead": lead,
                "LeadDetail": lead_detail,
                "Message": { "type": "object", "required": ["recorder_id", "chat_id", "sender", "from_id", "message", "type", "create_time", "extra"], "properties": {
                    "recorder_id": { "type": "string" }, "chat_id": { "type": ["string", "null"] },
                    "sender": { "type": "string", "enum": ["visitor", "staff"] }, "from_id": { "type": ["string", "null"] },
                    "message": { "type": "string", "description": "verbatim; RECORD_RICH_TEXT messages are HTML" },
                    "type": { "type": ["string", "null"] }, "create_time": { "type": ["string", "null"], "format": "date-time" },
                    "extra": { "type": "object", "additionalProperties": { "type": "string" } } } },
                "Push": { "type": "object", "required": ["id", "source", "received_at", "content_type", "outcome", "error", "accepted", "ignored", "lead_ids", "replayed_at", "replay_count", "body", "body_base64"], "properties": {
                    "id": { "type": "integer" }, "source": { "type": "string" }, "received_at": { "type": "string", "format": "date-time" },
                    "content_type": { "type": ["string", "null"] }, "outcome": { "type": "string", "enum": ["accepted", "ignored", "rejected", "queued"] },
                    "error": { "type": ["string", "null"] }, "accepted": { "type": "integer" }, "ignored": { "type": "integer" },
                    "lead_ids": { "type": "array", "items": { "type": "integer" } },
                    "replayed_at": { "type": ["string", "null"], "format": "date-time" }, "replay_count": { "type": "integer" },
                    "body": { "type": ["string", "null"], "description": "the body verbatim, when it is UTF-8" },
                    "body_base64": { "type": ["string", "null"], "description": "the body in base64, when it is not UTF-8" } } },
                "Duplicate": { "type": "object", "required": ["lead", "contacts"], "properties": {
                    "lead": { "$ref": "#/components/schemas/Lead" },
                    "contacts": { "type": "array", "items": { "type": "object", "required": ["kind", "value"], "properties": {
                        "kind": { "type": "string", "enum": ["mobile", "tel", "weixin", "qq", "email"] }, "value": { "type": "string" } } } } } },
                "TimelineEntry": { "type": "object", "required": ["id", "lead_id", "at", "kind"], "properties": {
                    "id": { "type": "integer" }, "lead_id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" },
                    "kind": { "type": "string" } } },
                "OtherLead": { "type": "object", "required": ["lead_id"], "properties": { "lead_id": { "type": "integer" } } },
                "Export": { "type": "object", "required": ["id", "at", "user_id", "actor", "via", "format", "columns", "filter", "rows", "completed"], "properties": {
                    "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" },
                    "user_id": { "type": ["integer", "null"], "description": "null: the admin token or the command line" },
                    "actor": { "type": "string" }, "via": { "type": "string", "enum": ["api", "console", "cli"] },
                    "format": { "type": "string", "enum": ["csv", "xlsx"] }, "columns": { "type": "array", "items": { "type": "string" } },
                    "filter": { "type": "object", "additionalProperties": { "type": "string" } },
                    "rows": { "type": "integer" }, "completed": { "type": "boolean", "description": "false when the download was cut short" } } },
                "ExportPage": page_of("Export"),
                "Counts": counts.clone(),
                "Stats": stats_schema(&counts),
                "AuditEntry": { "type": "object", "required": ["id", "at", "user_id", "actor", "action", "target", "detail", "ip"], "properties": {
                    "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" },
                    "user_id": { "type": ["integer", "null"] }, "actor": { "type": "string", "description": "the user's name, admin token or command line" },
                    "action": { "type": "string" }, "target": { "type": ["string", "null"] }, "detail": { "type": "object" },
                    "ip": { "type": ["string", "null"] } } },
                "AuditPage": page_of("AuditEntry"),
                "LeadPage": page_of("Lead"),
                "PushPage": page_of("Push"),
            }
        },
        "paths": {
            "/push/{source}": { "post": {
                "summary": "Receive a vendor push (a card, an array of cards, {\"data\": [cards]}, or a form)",
                "security": [{ "pushToken": [] }],
                "parameters": [{ "name": "source", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": {
                    "application/json": { "schema": { "oneOf": [{ "type": "object" }, { "type": "array", "items": { "type": "object" } }] } },
                    "application/x-www-form-urlencoded": { "schema": { "type": "object" } },
                    "multipart/form-data": { "schema": { "type": "object" } } } },
                "responses": {
                    "200": ok("stored durably (or ignored by the type filter)", "PushAnswer"),
                    "202": { "description": "with spool_dir: the database is unavailable (or pushes wait before this one); kept on disk (fsynced) and stored in order once it is back",
                        "content": { "application/json": { "schema": { "type": "object", "required": ["code", "msg", "outcome", "spool_id", "warnings"], "properties": {
                            "code": { "type": "integer", "enum": [0] }, "msg": { "type": "string" }, "outcome": { "type": "string", "enum": ["spooled"] },
                            "spool_id": { "type": "string" }, "warnings": { "type": "array", "items": { "type": "string" } } } } } } },
                    "400": err("the body is not JSON or a form; the message says where"),
                    "401": err("missing or wrong token; for a source whose vendor signs (kind tawk), a missing, wrong or stale signature (the body is kept as rejected: push_id)"),
                    "404": err("no such source"),
                    "413": err("the body is larger than max_body_bytes"),
                    "422": err("a card lacks a required field; the message names it and the batch item"),
                    "503": err("busy or database unavailable: nothing stored, retry (see Retry-After)")
                } } },
            "/healthz": { "get": { "summary": "Liveness and database check", "responses": {
                "200": { "description": "ok", "content": { "application/json": { "schema": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string" } } } } } },
                "503": { "description": "the database does not answer", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
            "/api/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
            "/api/v1/leads": { "get": { "summary": "List leads, newest first", "security": [{ "admin": [] }], "parameters": lead_params,
                "responses": { "200": ok("a page of leads", "LeadPage"), "400": err("a parameter is invalid"), "401": err("missing or wrong admin token") } } },
            "/api/v1/leads/export": { "get": { "summary": "Export the leads of a filter (the lead list's filters) as CSV or XLSX, with Chinese headers; recorded in the export log", "security": [{ "admin": [] }], "parameters": export_params,
                "responses": {
                    "200": { "description": "the file, streamed", "content": {
                        "text/csv": { "schema": { "type": "string" } },
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { "schema": { "type": "string", "contentEncoding": "binary" } } } },
                    "400": err("a parameter is invalid"), "401": err("missing or wrong token"), "503": err("database unavailable") } } },
            "/api/v1/stats": { "get": { "summary": "The attribution report of a lead filter (the lead list's filters; the last 30 days when from and to are absent): counts by status, contact rate, the funnel, leads per day and hour, the largest segments of each dimension with their conversion rates, time to first follow-up per owner", "security": [{ "admin": [] }], "parameters": filter_params,
                "responses": { "200": ok("the report", "Stats"), "400": err("a parameter is invalid"), "401": err("missing or wrong token"), "403": err("an agent's token") } } },
            "/api/v1/exports": { "get": { "summary": "The export log, newest first", "security": [{ "admin": [] }], "parameters": export_log_params,
                "responses": { "200": ok("a page of exports", "ExportPage"), "400": err("a parameter is invalid"), "401": err("missing or wrong token"), "403": err("an agent's token") } } },
            "/api/v1/leads/{id}": { "get": { "summary": "One lead with its transcript and pushes", "security": [{ "admin": [] }], "parameters": [id_param("lead")],
                "responses": { "200": ok("the lead", "LeadDetail"), "401": err("missing or wrong admin token"), "404": err("no such lead") } } },
            "/api/v1/leads/{id}/duplicates": { "get": { "summary": "Leads sharing a normalized contact with this one", "security": [{ "admin": [] }], "parameters": [id_param("lead")],
                "responses": { "200": { "description": "possible duplicates", "content": { "application/json": { "schema": { "type": "object", "required": ["items"], "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Duplicate" } } } } } } },
                    "401": err("missing or wrong token"), "404": err("no such lead") } } },
            "/api/v1/leads/{id}/merge": { "post": { "summary": "Merge the lead in the body into this one (an admin user's token; undo with unmerge)", "security": [{ "admin": [] }], "parameters": [id_param("lead")],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/OtherLead" } } } },
                "responses": { "200": ok("merged; the kept lead's timeline entry", "TimelineEntry"), "400": err("the body is not {\"lead_id\": N}"), "401": err("missing or wrong token"),
                    "403": err("not an admin user's token (the installation's admin token names nobody)"), "404": err("no such lead"), "409": err("the lead is merged already, or is the same lead"), "503": err("busy or database unavailable") } } },
            "/api/v1/leads/{id}/unmerge": { "post": { "summary": "Undo the merge of this lead into another", "security": [{ "admin": [] }], "parameters": [id_param("lead")],
                "responses": { "200": ok("undone; this lead's timeline entry", "TimelineEntry"), "401": err("missing or wrong token"),
                    "403": err("not an admin user's token"), "404": err("no such lead"), "409": err("the lead is not merged"), "503": err("busy or database unavailable") } } },
            "/api/v1/leads/{id}/dismiss-duplicate": { "post": { "summary": "Say the lead in the body is not the same visitor (no longer listed as a duplicate)", "security": [{ "admin": [] }], "parameters": [id_param("lead")],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/OtherLead" } } } },
                "responses": { "200": ok("dismissed; this lead's timeline entry", "TimelineEntry"), "400": err("the body is not {\"lead_id\": N}"), "401": err("missing or wrong token"),
                    "403": err("not an admin user's token"), "404": err("no such lead"), "409": err("the same lead twice"), "503": err("busy or database unavailable") } } },
            "/api/v1/audit": { "get": { "summary": "The audit log, newest first: sign-ins, user management, merges, replays, redeliveries, token rotations", "security": [{ "admin": [] }],
                "parameters": audit_params,
                "responses": { "200": ok("a page of entries", "AuditPage"), "400": err("a parameter is invalid"), "401": err("missing or wrong token"), "403": err("an agent's token") } } },
            "/api/v1/pushes": { "get": { "summary": "The push log, newest first, bodies verbatim", "security": [{ "admin": [] }], "parameters": push_params,
                "responses": { "200": ok("a page of pushes", "PushPage"), "400": err("a parameter is invalid"), "401": err("missing or wrong token"), "403": err("an agent's token") } } },
            "/api/v1/pushes/{id}/replay": { "post": { "summary": "Decode a stored push again under today's configuration and apply it", "security": [{ "admin": [] }], "parameters": [id_param("push")],
                "responses": { "200": ok("replayed; outcome says what became of it", "PushAnswer"), "401": err("missing or wrong token"), "403": err("an agent's token"), "404": err("no such push"),
                    "409": err("the push's source is no longer configured"), "503": err("busy or database unavailable") } } }
        }
    });
    // Issue #11: a push's relay attempts, one per relay target of its source.
    let relay = json!({ "type": "object",
        "required": ["delivery_id", "target", "status", "attempts", "last_status", "last_error", "delivered_at", "next_at"], "properties": {
        "delivery_id": { "type": "integer" }, "target": { "type": "string" }, "status": { "type": "string", "enum": ["pending", "delivered", "dead"] },
        "attempts": { "type": "integer" }, "last_status": { "type": ["integer", "null"] }, "last_error": { "type": ["string", "null"] },
        "delivered_at": { "type": ["string", "null"], "format": "date-time" }, "next_at": { "type": ["string", "null"], "format": "date-time" } } });
    let push = &mut doc["components"]["schemas"]["Push"];
    push["properties"]["relays"] = json!({ "type": "array", "description": "the push re-sent to each relay target of its source", "items": relay });
    if let Some(required) = push["required"].as_array_mut() {
        required.push(json!("relays"));
    }
    doc
}

pub async fn document() -> Json<Value> {
    Json(document_value())
}

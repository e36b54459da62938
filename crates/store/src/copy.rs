//! Moving an installation between databases (`xiansuo copy`): every table, row by row, ids
//! kept, in an order that satisfies the foreign keys. Tables are described here once; each
//! backend reads and writes rows of [`Cell`]s by these descriptions.

use xiansuo_domain::{FIELDS, FieldKind, Instant};

/// How a column's values are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Text,
    Bytes,
    Time,
    Json,
    Bool,
}

/// One value of a copied row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Time(Instant),
    Json(serde_json::Value),
    Bool(bool),
}

#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: &'static str,
    /// An integer column the rows are read by, in ranges; `None` for a small table read whole.
    pub range_key: Option<&'static str>,
    /// The primary key's columns, for a stable order.
    pub order_by: &'static str,
    pub columns: Vec<(&'static str, ColumnKind)>,
}

/// Every table of the data model, parents before children. (Sessions are not copied: people
/// sign in again on the new database. Nor is the dashboard's `report_days`: the target's
/// triggers fill it as the leads arrive.)
pub fn tables() -> Vec<TableDef> {
    use ColumnKind::*;
    let mut lead_columns = vec![("id", Int), ("source", Text), ("status", Text)];
    lead_columns.extend(FIELDS.iter().map(|f| (f.key, if f.kind == FieldKind::Time { Time } else { Text })));
    lead_columns.extend([
        ("extra", Json),
        ("received_at", Time),
        ("updated_at", Time),
        ("push_count", Int),
        ("message_count", Int),
        ("visitor_message_count", Int),
        ("owner_id", Int),
        ("status_reason", Text),
        ("mobile_from_chat", Bool),
        ("tel_from_chat", Bool),
        ("weixin_from_chat", Bool),
        ("qq_from_chat", Bool),
        ("email_from_chat", Bool),
        ("merged_into", Int),
        ("score", Int),
        ("score_reasons", Json),
        ("intent_words", Json),
        ("followed_at", Time),
    ]);
    vec![
        TableDef {
            name: "users",
            range_key: Some("id"),
            order_by: "id",
            columns: vec![
                ("id", Int),
                ("name", Text),
                ("role", Text),
                ("password_hash", Text),
                ("disabled", Bool),
                ("api_token_hash", Text),
                ("created_at", Time),
            ],
        },
        TableDef { name: "leads", range_key: Some("id"), order_by: "id", columns: lead_columns },
        TableDef {
            name: "lead_chats",
            range_key: Some("lead_id"),
            order_by: "lead_id, chat_id",
            columns: vec![("lead_id", Int), ("chat_id", Text), ("first_seen_at", Time), ("seq", Int)],
        },
        TableDef {
            name: "messages",
            range_key: Some("id"),
            order_by: "id",
            columns: vec![
                ("id", Int),
                ("lead_id", Int),
                ("recorder_id", Text),
                ("chat_id", Text),
                ("sender", Text),
                ("from_id", Text),
                ("message", Text),
                ("type", Text),
                ("create_time", Time),
                ("extra", Json),
            ],
        },
        TableDef {
            name: "pushes",
            range_key: Some("id"),
            order_by: "id",
            columns: vec![
                ("id", Int),
                ("source", Text),
                ("received_at", Time),
                ("content_type", Text),
                ("body", Bytes),
                ("outcome", Text),
                ("error", Text),
                ("accepted", Int),
                ("ignored", Int),
                ("replayed_at", Time),
                ("replay_count", Int),
                ("spool_id", Text),
                ("query", Text),
            ],
        },
        TableDef {
            name: "push_leads",
            range_key: Some("push_id"),
            order_by: "push_id, lead_id",
            columns: vec![("push_id", Int), ("lead_id", Int), ("created", Bool)],
        },
        // Issue #11: the vendor event ids each source has stored.
        TableDef {
            name: "vendor_events",
            range_key: None,
            order_by: "source, event_id",
            columns: vec![("source", Text), ("event_id", Text), ("push_id", Int), ("received_at", Time)],
        },
        TableDef {
            name: "lead_events",
            range_key: Some("id"),
            order_by: "id",
            columns: vec![
                ("id", Int),
                ("lead_id", Int),
                ("at", Time),
                ("user_id", Int),
                ("kind", Text),
                ("detail", Json),
            ],
        },
        TableDef {
            name: "lead_contacts",
            range_key: Some("lead_id"),
            order_by: "kind, value, lead_id",
            columns: vec![("kind", Text), ("value", Text), ("lead_id", Int)],
        },
        TableDef {
            name: "duplicate_dismissals",
            range_key: Some("lead_a"),
            order_by: "lead_a, lead_b",
            columns: vec![("lead_a", Int), ("lead_b", Int), ("user_id", Int), ("at", Time)],
        },
        TableDef {
            name: "exports",
            range_key: Some("id"),
            order_by: "id",
            columns: vec![
                ("id", Int),
                ("at", Time),
                ("user_id", Int),
                ("actor", Text),
                ("via", Text),
                ("format", Text),
                ("columns", Json),
                ("filter", Json),
                ("rows", Int),
                ("completed", Bool),
            ],
        },
        TableDef {
            name: "audit_log",
            range_key: Some("id"),
            order_by: "id",
            columns: vec![
                ("id", Int),
                ("at", Time),
                ("user_id", Int),
                ("actor", Text),
                ("action", Text),
                ("target", Text),
                ("detail", Json),
                ("ip", Text),
            ],
        },
        TableDef { name: "settings", range_key: None, order_by: "key", columns: vec![("key", Text), ("value", Text)] },
        // Issue #6: the outbox, its deliveries, and the round-robin cursors.
        TableDef {
            name: "outbox_events",
            range_key: Some("id"),
            order_by: "id",
            columns: vec![
                ("id", Int),
                ("lead_id", Int),
                ("kind", Text),
                ("created_at", Time),
                ("payload", Json),
                // Issue #11: the push a relay re-sends.
                ("push_id", Int),
            ],
        },
        TableDef {
            name: "deliveries",
            range_key: Some("id"),
            order_by: "id",
            columns: vec![
                ("id", Int),
                ("event_id", Int),
                ("sink", Text),
                ("lead_id", Int),
                ("status", Text),
                ("attempts", Int),
                ("next_at", Time),
                ("lease_until", Time),
                ("last_error", Text),
                ("last_status", Int),
                ("delivered_at", Time),
                ("updated_at", Time),
            ],
        },
        TableDef {
            name: "assignment_cursors",
            range_key: None,
            order_by: "group_name",
            columns: vec![("group_name", Text), ("last_user_id", Int)],
        },
    ]
}

/// Rows of one range are read and written together.
pub const RANGE: i64 = 1000;

impl TableDef {
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
    }

    /// `WHERE key >= lo AND key < hi` with the backend's placeholders, or nothing.
    pub fn range_filter(&self, placeholder: fn(usize) -> String) -> String {
        match self.range_key {
            Some(k) => format!("WHERE {k} >= {} AND {k} < {}", placeholder(1), placeholder(2)),
            None => String::new(),
        }
    }
}

//! The API's JSON representation of leads, messages and pushes.

use base64::Engine;
use serde_json::{Map, Value, json};
use xiansuo_domain::{CHINA_TIME, FIELDS, FieldKind, Instant, Lead, Message, Tag, TagDictionary};
use xiansuo_store::{Duplicate, LeadDetail, PushEntry};

/// RFC 3339 in China time, the zone the users read.
pub fn time(t: Instant) -> String {
    t.with_timezone(&CHINA_TIME).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The lead's summary tag, named by the dictionary when it knows the id.
pub fn tag_of(lead: &Lead, tags: &TagDictionary) -> Option<Tag> {
    let get = |k: &str| lead.fields.get(k).map(String::as_str);
    tags.resolve(get("ntag_id"), get("ntag_name"), get("ntag_message"))
}

/// A lead: `id`, `source`, `status`, every canonical key (null when nothing was sent), then
/// `chat_ids`, `extra`, `received_at`, `updated_at`, counts, `tag`, `score` and its reasons.
pub fn lead(lead: &Lead, tags: &TagDictionary) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(lead.id));
    m.insert("source".into(), json!(lead.source));
    m.insert("status".into(), json!(lead.status.as_str()));
    m.insert("status_reason".into(), json!(lead.status_reason));
    m.insert("owner_id".into(), json!(lead.owner_id));
    m.insert("found_in_chat".into(), json!(lead.found_in_chat));
    for f in FIELDS {
        let v = match f.kind {
            FieldKind::Text => lead.fields.get(f.key).map_or(Value::Null, |v| json!(v)),
            FieldKind::Time => lead.times.get(f.key).map_or(Value::Null, |t| json!(time(*t))),
        };
        m.insert(f.key.into(), v);
    }
    m.insert("chat_ids".into(), json!(lead.chat_ids));
    m.insert("extra".into(), json!(lead.extra));
    m.insert("received_at".into(), json!(time(lead.received_at)));
    m.insert("updated_at".into(), json!(time(lead.updated_at)));
    m.insert("push_count".into(), json!(lead.push_count));
    m.insert("message_count".into(), json!(lead.message_count));
    m.insert("visitor_message_count".into(), json!(lead.visitor_message_count));
    m.insert("merged_into".into(), json!(lead.merged_into));
    m.insert(
        "tag".into(),
        tag_of(lead, tags).map_or(
            Value::Null,
            |t| json!({ "key": t.key, "id": t.id, "name": t.name, "colour": t.colour, "message": t.message }),
        ),
    );
    m.insert("score".into(), json!(lead.score));
    m.insert(
        "score_reasons".into(),
        lead.score_reasons
            .iter()
            .map(|r| json!({ "code": r.code, "points": r.points, "detail": r.detail, "label": r.label() }))
            .collect(),
    );
    Value::Object(m)
}

/// A possible duplicate: the other lead and the contacts the two share.
pub fn duplicate(d: &Duplicate, tags: &TagDictionary) -> Value {
    json!({
        "lead": lead(&d.lead, tags),
        "contacts": d.contacts.iter().map(|(kind, value)| json!({ "kind": kind, "value": value })).collect::<Vec<_>>(),
    })
}

pub fn message(m: &Message) -> Value {
    json!({
        "recorder_id": m.recorder_id,
        "chat_id": m.chat_id,
        "sender": m.sender.as_str(),
        "from_id": m.from_id,
        "message": m.message,
        "type": m.kind,
        "create_time": m.create_time.map(time),
        "extra": m.extra,
    })
}

/// Contacts the visitor typed in the chat (their own messages only), each with the message it
/// came from.
pub fn found_in_chat(d: &LeadDetail) -> Vec<xiansuo_contacts::Candidate> {
    xiansuo_contacts::extract(&d.messages, d.lead.fields.get("visitor_static_id").map(String::as_str))
}

pub fn lead_detail(
    d: &LeadDetail,
    duplicates: &[Duplicate],
    events: &[xiansuo_domain::LeadEvent],
    tags: &TagDictionary,
) -> Value {
    let mut v = lead(&d.lead, tags);
    v["timeline"] = events.iter().map(timeline_entry).collect();
    v["duplicates"] = duplicates.iter().map(|x| duplicate(x, tags)).collect();
    v["messages"] = d.messages.iter().map(message).collect();
    v["contacts_found_in_chat"] = found_in_chat(d)
        .iter()
        .map(|c| json!({ "kind": c.kind.field(), "value": c.value, "recorder_id": c.recorder_id }))
        .collect();
    v["pushes"] = d
        .pushes
        .iter()
        .map(|p| json!({ "id": p.id, "received_at": time(p.received_at), "outcome": p.outcome.as_str() }))
        .collect();
    v
}

/// A timeline entry: people's changes, and (issue #11) the vendor's events of the lead's visitor.
pub fn timeline_entry(e: &xiansuo_domain::LeadEvent) -> Value {
    json!({
        "id": e.id,
        "lead_id": e.lead_id,
        "at": time(e.at),
        "user_id": e.user_id,
        "kind": e.change.kind(),
        "detail": xiansuo_store::change_detail(&e.change),
    })
}

/// A push log entry. The body is returned verbatim as text when it is UTF-8, otherwise in
/// `body_base64`.
pub fn push(p: &PushEntry) -> Value {
    let (body, body_base64) = match std::str::from_utf8(&p.body) {
        Ok(text) => (json!(text), Value::Null),
        Err(_) => (Value::Null, json!(base64::engine::general_purpose::STANDARD.encode(&p.body))),
    };
    json!({
        "id": p.id,
        "source": p.source,
        "received_at": time(p.received_at),
        "content_type": p.content_type,
        "outcome": p.outcome.as_str(),
        "error": p.error,
        "accepted": p.accepted,
        "ignored": p.ignored,
        "lead_ids": p.lead_ids,
        "replayed_at": p.replayed_at.map(time),
        "replay_count": p.replay_count,
        "body": body,
        "body_base64": body_base64,
    })
}

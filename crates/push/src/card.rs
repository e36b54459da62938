//! From one card object's members to a [`Card`].

use std::collections::HashSet;

use xiansuo_domain::{Card, FieldKind, Message, Sender};

use crate::SourceRules;
use crate::json::{self, Json};
use crate::keys::{MessageKey, Target, message_key, normalize_key};
use crate::time::parse_time;

/// A scalar's text: strings trimmed, numbers with their exact digits, `null` empty; arrays and
/// objects as compact JSON. `None` when empty.
fn value_text(value: &Json) -> Option<String> {
    let text = match value {
        Json::Null => return None,
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.clone(),
        Json::String(s) => s.trim().to_string(),
        Json::Array(_) | Json::Object(_) => value.to_json_text(),
    };
    (!text.is_empty()).then_some(text)
}

/// Decodes one card's members. Returns the card and warnings about values kept in `extra`
/// because they could not be read as what their key says.
pub fn decode_card(members: Vec<(String, Json)>, rules: &SourceRules) -> (Card, Vec<String>) {
    let mut card = Card::default();
    let mut warnings = Vec::new();
    let mut transcripts = Vec::new();
    // Members in arrival order: a later non-empty value replaces an earlier one, an empty one
    // never does (duplicate keys, and different spellings of one key, alike).
    for (key, value) in members {
        match rules.target(&key) {
            Some(Target::Field(def)) => {
                let Some(text) = value_text(&value) else { continue };
                match def.kind {
                    FieldKind::Text => {
                        card.fields.insert(def.key, text);
                    }
                    // `0` is the vendor's "not set" for an epoch time.
                    FieldKind::Time if text == "0" => {}
                    FieldKind::Time => match parse_time(&text) {
                        Some(t) => {
                            card.times.insert(def.key, t);
                        }
                        None => {
                            // Kept in extra; an earlier readable value of the key stays (nothing is lost).
                            warnings.push(format!(
                                "{}: \"{text}\" is not a time (expected YYYY-MM-DD HH:MM:SS, RFC 3339, or epoch seconds or milliseconds); kept in extra",
                                key.trim()
                            ));
                            card.extra.insert(key.trim().to_string(), text);
                        }
                    },
                }
            }
            Some(Target::Transcript) => transcripts.push((key, value, true)),
            Some(Target::OtherTranscript) => transcripts.push((key, value, false)),
            None => {
                if let Some(text) = value_text(&value) {
                    card.extra.insert(key.trim().to_string(), text);
                }
            }
        }
    }

    let visitor = card.visitor_static_id().map(str::to_string);
    let mut seen = HashSet::new();
    for (key, value, primary) in transcripts {
        match message_objects(&value) {
            // The vendor's other formats are all or nothing: their shapes are not public.
            Ok(t) if t.skipped > 0 && !primary => {
                if let Some(text) = value_text(&value) {
                    card.extra.insert(key.trim().to_string(), text);
                }
            }
            Ok(t) => {
                if t.skipped > 0 {
                    // One odd record (an image, a system line) does not cost the transcript.
                    warnings.push(format!(
                        "{}: {} items are not messages (no message or recorder_id) and were left out; the stored body keeps them",
                        key.trim(),
                        t.skipped
                    ));
                }
                for members in t.messages {
                    let message = message_from_json(members, visitor.as_deref());
                    if seen.insert(message.recorder_id.clone()) {
                        card.messages.push(message);
                    }
                }
            }
            Err(reason) => {
                let Some(text) = value_text(&value) else { continue };
                if primary {
                    warnings.push(format!("{}: {reason}; kept verbatim in extra", key.trim()));
                }
                card.extra.insert(key.trim().to_string(), text);
            }
        }
    }
    // Contacts the visitor typed, for the contact fields this card leaves empty.
    let found = xiansuo_contacts::extract(&card.messages, visitor.as_deref());
    let entered = card.fields.iter().map(|(k, v)| (*k, v.as_str()));
    card.contact_keys = xiansuo_contacts::contact_keys(entered, &found)
        .into_iter()
        .map(|(kind, value)| (kind.field(), value))
        .collect();
    for found in found {
        let field = found.kind.field();
        if !card.fields.contains_key(field) {
            card.found_in_chat.entry(field).or_insert(found.value);
        }
    }
    (card, warnings)
}

/// The message objects of a transcript value: an array of objects, or a string holding one as
/// JSON. An empty value is an empty transcript.
fn message_objects(value: &Json) -> Result<Transcript, String> {
    let parsed;
    let empty = || Ok(Transcript { messages: Vec::new(), skipped: 0 });
    let items = match value {
        Json::Null => return empty(),
        Json::Array(items) => items,
        Json::String(s) if s.trim().is_empty() => return empty(),
        Json::String(s) => {
            parsed = json::parse(s).map_err(|e| format!("the text is not a JSON array of messages ({e})"))?;
            match &parsed {
                Json::Array(items) => items,
                other => return Err(format!("the text holds {}, not an array of messages", other.kind())),
            }
        }
        other => return Err(format!("it is {}, not an array of messages", other.kind())),
    };
    let messages: Vec<Vec<(String, Json)>> = items
        .iter()
        .filter_map(|item| match item {
            Json::Object(members) if is_message(members) => Some(members.clone()),
            _ => None,
        })
        .collect();
    match items.len() - messages.len() {
        0 => Ok(Transcript { messages, skipped: 0 }),
        _ if messages.is_empty() => {
            Err("none of its items is a message (an object with a message or a recorder_id)".into())
        }
        skipped => Ok(Transcript { messages, skipped }),
    }
}

/// The messages of a transcript, and how many of its items were something else.
struct Transcript {
    messages: Vec<Vec<(String, Json)>>,
    skipped: usize,
}

/// A message object says something or names itself: it has a `message` or a `recorder_id` key
/// (in any spelling). An object with neither (a transcript format whose shape is not public) is
/// no message, and its transcript is kept verbatim in `extra` rather than read as empty messages.
fn is_message(members: &[(String, Json)]) -> bool {
    members
        .iter()
        .any(|(k, _)| matches!(message_key(&normalize_key(k)), Some(MessageKey::Message | MessageKey::RecorderId)))
}

/// Decodes one transcript message. `visitor_static_id` is the card's, used to tell the
/// visitor's messages from staff's when the vendor does not say.
pub fn message_from_json(members: Vec<(String, Json)>, visitor_static_id: Option<&str>) -> Message {
    let mut recorder_id = None;
    let mut chat_id = None;
    let mut from_id = None;
    let mut text = None;
    let mut kind = None;
    let mut create_time = None;
    let mut sender = None;
    let mut extra = std::collections::BTreeMap::new();
    for (key, value) in members {
        let slot = match message_key(&normalize_key(&key)) {
            Some(MessageKey::Message) => {
                // The message text is kept verbatim, white space included.
                match &value {
                    Json::String(s) if !s.is_empty() => text = Some(s.clone()),
                    other => {
                        if let Some(t) = value_text(other) {
                            text = Some(t);
                        }
                    }
                }
                continue;
            }
            Some(MessageKey::RecorderId) => &mut recorder_id,
            Some(MessageKey::ChatId) => &mut chat_id,
            Some(MessageKey::FromId) => &mut from_id,
            Some(MessageKey::Type) => &mut kind,
            Some(MessageKey::CreateTime) => {
                // `0` is the vendor's "not set" for an epoch time, as on the card.
                if let Some(t) = value_text(&value).filter(|t| t != "0") {
                    match parse_time(&t) {
                        Some(instant) => create_time = Some(instant),
                        None => {
                            extra.insert(key.trim().to_string(), t);
                        }
                    }
                }
                continue;
            }
            Some(MessageKey::SenderType) => {
                match value_text(&value).as_deref() {
                    Some("0") => sender = Some(Sender::Staff),
                    Some("1") => sender = Some(Sender::Visitor),
                    Some(other) => {
                        extra.insert(key.trim().to_string(), other.to_string());
                    }
                    None => {}
                }
                continue;
            }
            None => {
                if let Some(t) = value_text(&value) {
                    extra.insert(key.trim().to_string(), t);
                }
                continue;
            }
        };
        if let Some(t) = value_text(&value) {
            *slot = Some(t);
        }
    }
    let message = text.unwrap_or_default();
    let recorder_id = recorder_id.unwrap_or_else(|| {
        content_id(&[
            chat_id.as_deref(),
            from_id.as_deref(),
            create_time.map(|t| t.timestamp_millis().to_string()).as_deref(),
            Some(&message),
        ])
    });
    let sender = sender.unwrap_or_else(|| Sender::classify(from_id.as_deref(), visitor_static_id));
    Message { recorder_id, chat_id, sender, from_id, message, kind, create_time, extra }
}

/// A stable id for a message the vendor sent without one: FNV-1a over its content, so the same
/// message in a later push collapses onto the first.
fn content_id(parts: &[Option<&str>]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.unwrap_or("").bytes().chain([0x1f]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("h-{hash:016x}")
}

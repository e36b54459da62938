//! Decoding vendor push bodies into lead cards.
//!
//! [`decode_push`] is the one entry point: request bytes, their Content-Type and the source's
//! [`SourceRules`] in; [`DecodedPush`] or a [`DecodeError`] out. It is pure (no I/O, no clock),
//! so the push endpoint, replay, import and the fuzz target all call the same function.
//! The rules it applies are push-spec.md's "Quirks" and "Product decisions".

mod body;
mod card;
pub mod fuzzing;
pub mod json;
pub mod keys;
mod time;
// Issue #11: one module per vendor behind one interface.
pub mod vendors;

use std::collections::HashMap;

use xiansuo_domain::{Card, field};

pub use card::message_from_json;
pub use json::{Json, JsonError};
pub use keys::{Target, normalize_key};
pub use time::{parse_time, parse_time_bound};

/// What a source's configuration says about decoding its bodies.
#[derive(Debug, Clone, Default)]
pub struct SourceRules {
    /// Card types accepted; empty means every type is.
    accept_types: Vec<String>,
    /// Incoming key (normalized) → meaning, from the source's `field_map`.
    field_map: HashMap<String, Target>,
}

/// A `field_map` entry names no canonical key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "field_map maps \"{incoming}\" to \"{canonical}\", which is not a canonical key: use one of push-spec.md's canonical keys, such as mobile, tel, weixin, name, note or messages"
)]
pub struct UnknownCanonicalKey {
    pub incoming: String,
    pub canonical: String,
}

impl SourceRules {
    /// Rules from a source's `accept_types` and `field_map` (incoming key → canonical key).
    pub fn new<I>(accept_types: Vec<String>, field_map: I) -> Result<Self, UnknownCanonicalKey>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut map = HashMap::new();
        for (incoming, canonical) in field_map {
            let target = if canonical.trim() == keys::TRANSCRIPT_KEY {
                Target::Transcript
            } else {
                match field(canonical.trim()) {
                    Some(f) => Target::Field(f),
                    None => return Err(UnknownCanonicalKey { incoming, canonical }),
                }
            };
            map.insert(normalize_key(&incoming), target);
        }
        let accept_types = accept_types.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
        Ok(SourceRules { accept_types, field_map: map })
    }

    /// The meaning of a key as it arrived: the source's field_map first, then the built-in
    /// table of canonical keys, vendor keys and aliases.
    pub fn target(&self, key: &str) -> Option<Target> {
        let normalized = normalize_key(key);
        self.field_map.get(&normalized).copied().or_else(|| keys::builtin_target(&normalized))
    }

    fn accepts_type(&self, card_type: Option<&str>) -> bool {
        // A card that states no type cannot be told apart, so it is accepted: the filter is
        // for excluding the vendor's other tabs, whose cards carry their type.
        match card_type {
            Some(t) if !self.accept_types.is_empty() => self.accept_types.iter().any(|a| a == t),
            _ => true,
        }
    }
}

/// One card of a push, with what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedCard {
    pub card: Card,
    /// The card's type is not one the source accepts: kept in the push log, creates no lead.
    pub ignored: bool,
    /// Things that were kept but not understood (an unreadable time, a transcript that is not
    /// an array of messages): the values went to `extra`.
    pub warnings: Vec<String>,
}

/// Every card of one push, in body order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedPush {
    pub cards: Vec<DecodedCard>,
}

impl DecodedPush {
    pub fn accepted(&self) -> usize {
        self.cards.iter().filter(|c| !c.ignored).count()
    }

    pub fn ignored(&self) -> usize {
        self.cards.iter().filter(|c| c.ignored).count()
    }
}

/// Why a body could not become cards. Messages say what, where and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is empty: send the card as a JSON object")]
    EmptyBody,
    #[error("{0}")]
    BadEncoding(String),
    #[error("{0}")]
    BadForm(String),
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(JsonError),
    #[error("{0}")]
    NotCards(String),
    #[error("the body holds no card: send a card object, or a non-empty array of cards")]
    NoCards,
    #[error("{}the card has no {vendor_key} ({key}), which is required: check the push template in the vendor's back office", item_prefix(*item))]
    MissingField {
        /// Index of the card in a batch; `None` for a body that is one card.
        item: Option<usize>,
        vendor_key: &'static str,
        key: &'static str,
    },
}

fn item_prefix(item: Option<usize>) -> String {
    item.map(|i| format!("item {i} of the batch (counting from 0): ")).unwrap_or_default()
}

impl DecodeError {
    /// The body itself is unreadable (as opposed to readable but not valid cards).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            DecodeError::EmptyBody
                | DecodeError::BadEncoding(_)
                | DecodeError::BadForm(_)
                | DecodeError::InvalidJson(_)
        )
    }
}

/// Decodes one push body: a card object, an array of cards, an object wrapping an array of
/// cards under `data`, `records` or `items`, or a form whose fields are the card's keys.
///
/// All or nothing: if any card of a batch is invalid, the whole push is rejected (and kept in
/// the push log for replay), so that the answer means the same thing for every card in it.
pub fn decode_push(body: &[u8], content_type: Option<&str>, rules: &SourceRules) -> Result<DecodedPush, DecodeError> {
    let mut document = body::read_document(body, content_type)?;
    replace_nul(&mut document);
    let items = card_objects(document, rules)?;
    let mut cards = Vec::with_capacity(items.len());
    for (index, members) in items {
        let (card, warnings) = card::decode_card(members, rules);
        let ignored = !rules.accepts_type(card.card_type());
        if !ignored {
            for key in ["visitor_static_id", "company_id", "chat_id"] {
                if card.get(key).is_none() {
                    let vendor_key = field(key).map_or(key, |f| f.vendor_key);
                    return Err(DecodeError::MissingField { item: index, vendor_key, key });
                }
            }
        }
        cards.push(DecodedCard { card, ignored, warnings });
    }
    Ok(DecodedPush { cards })
}

/// U+0000 cannot be kept in text by every database (PostgreSQL refuses it), so a NUL in a key or
/// a string value becomes U+FFFD. The raw body, kept as bytes, still has it.
fn replace_nul(value: &mut Json) {
    fn clean(s: &mut String) {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{FFFD}");
        }
    }
    match value {
        Json::String(s) => clean(s),
        Json::Array(items) => items.iter_mut().for_each(replace_nul),
        Json::Object(members) => {
            for (k, v) in members {
                clean(k);
                replace_nul(v);
            }
        }
        Json::Null | Json::Bool(_) | Json::Number(_) => {}
    }
}

type Members = Vec<(String, Json)>;

/// Splits a document into card objects, each with its batch index (`None` for a lone card).
fn card_objects(document: Json, rules: &SourceRules) -> Result<Vec<(Option<usize>, Members)>, DecodeError> {
    match document {
        Json::Array(items) => batch(items),
        Json::Object(members) => {
            let is_card = members
                .iter()
                .any(|(k, _)| matches!(rules.target(k), Some(Target::Field(f)) if f.key == "visitor_static_id"));
            if is_card {
                return Ok(vec![(None, members)]);
            }
            let wrapped = members
                .iter()
                .rev()
                .find(|(k, v)| keys::is_wrapper_key(&normalize_key(k)) && !matches!(v, Json::Null))
                .map(|(_, v)| v.clone());
            match wrapped {
                Some(Json::Array(items)) => batch(items),
                Some(Json::Object(inner)) => Ok(vec![(None, inner)]),
                // A form field holding the cards as JSON text.
                Some(Json::String(text)) if text.trim_start().starts_with(['[', '{']) => {
                    match json::parse(&text).map_err(DecodeError::InvalidJson)? {
                        Json::Array(items) => batch(items),
                        Json::Object(inner) => Ok(vec![(None, inner)]),
                        _ => Ok(vec![(None, members)]),
                    }
                }
                _ => Ok(vec![(None, members)]),
            }
        }
        other => Err(DecodeError::NotCards(format!(
            "the body is {}: expected a card object, an array of cards, or {{\"data\": [cards]}}",
            other.kind()
        ))),
    }
}

fn batch(items: Vec<Json>) -> Result<Vec<(Option<usize>, Members)>, DecodeError> {
    if items.is_empty() {
        return Err(DecodeError::NoCards);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Json::Object(members) => Ok((Some(i), members)),
            other => Err(DecodeError::NotCards(format!(
                "item {i} of the batch (counting from 0) is {}: each item must be a card object",
                other.kind()
            ))),
        })
        .collect()
}

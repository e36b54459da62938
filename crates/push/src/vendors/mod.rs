//! Issue #11: one module per vendor behind one interface, [`Vendor`]: a request (body,
//! Content-Type, headers, query, the time it arrived) in; whether its signature holds, the
//! vendor's event id, the cards it carries (or that it carries none), and the answer the vendor
//! counts as success out. Pure, like [`crate::decode_push`] (the clock is an argument), so the
//! push endpoint, replay and tests call the same code.
//!
//! Adding a vendor: a module here implementing [`Vendor`], and a line in [`Kind`].

pub mod mapped;
pub mod meiqia;
pub mod qiyu;
pub mod tawk;

use std::sync::Arc;

use xiansuo_domain::Instant;

use crate::json::Json;
use crate::{DecodeError, DecodedCard, DecodedPush, SourceRules, decode_push};

/// Which decoder a source uses (`kind` in its configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// 易聊 EasyLiao's lead cards ([`crate::decode_push`]); the default.
    #[default]
    EasyLiao,
    /// Tawk.to webhooks.
    Tawk,
    /// 网易七鱼 (NetEase Qiyu) message and session pushes.
    Qiyu,
    /// 美洽 (Meiqia) webhooks.
    Meiqia,
    /// A source described in the configuration ([`mapped::MappedSpec`]).
    Mapped,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[Kind::EasyLiao, Kind::Tawk, Kind::Qiyu, Kind::Meiqia, Kind::Mapped];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::EasyLiao => "easyliao",
            Kind::Tawk => "tawk",
            Kind::Qiyu => "qiyu",
            Kind::Meiqia => "meiqia",
            Kind::Mapped => "mapped",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s.trim())
    }

    /// The decoder of this kind; a mapped source's is built from its description.
    pub fn vendor(self, mapped: Option<mapped::MappedSpec>) -> Arc<dyn Vendor> {
        match self {
            Kind::EasyLiao => Arc::new(EasyLiao),
            Kind::Tawk => Arc::new(tawk::Tawk),
            Kind::Qiyu => Arc::new(qiyu::Qiyu),
            Kind::Meiqia => Arc::new(meiqia::Meiqia),
            Kind::Mapped => Arc::new(mapped::Mapped(mapped.unwrap_or_default())),
        }
    }

    /// Whether sources of this kind are authenticated by a vendor's signature (a mapped source:
    /// when its description has one).
    pub fn signs(self) -> bool {
        matches!(self, Kind::Tawk | Kind::Qiyu | Kind::Meiqia)
    }
}

/// A request as a vendor sent it. Header names are lowercase.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub body: &'a [u8],
    pub content_type: Option<&'a str>,
    pub headers: &'a [(String, String)],
    pub query: &'a [(String, String)],
    /// When it arrived (signatures older than the vendor allows are stale).
    pub now: Instant,
}

impl Request<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim())
    }
}

/// Why a request's signature does not hold: answered 401, the body kept as rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request has no {0} header: the vendor signs every webhook; check the webhook's settings")]
    Missing(&'static str),
    #[error("the {0} signature does not match the body: check that the source's secret is the webhook's secret")]
    Mismatch(&'static str),
    #[error("the request's time stamp {at} is older than {limit} (or in the future): a replayed or delayed request")]
    Stale { at: String, limit: &'static str },
}

/// The answer a vendor counts as success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// One vendor's wire format.
pub trait Vendor: Send + Sync {
    fn kind(&self) -> Kind;

    /// Checks the request's signature with the source's secret; `Ok` for vendors that do not
    /// sign (their pushes are authenticated by the source's token).
    fn verify(&self, request: &Request, secret: &str) -> Result<(), SignatureError>;

    /// Whether this vendor signs its requests (a source of this kind needs a `secret`).
    fn signs(&self) -> bool;

    /// The vendor's id of this event or message, the same when it retries.
    fn event_id(&self, request: &Request) -> Option<String>;

    /// The cards the request carries. An event without lead data (a session start, a rating)
    /// is one ignored card: kept in the push log, no lead.
    fn decode(&self, request: &Request, rules: &SourceRules) -> Result<DecodedPush, DecodeError>;

    /// The answer the vendor counts as success; `None`: the push endpoint's JSON answer.
    fn success(&self) -> Option<Answer>;

    /// An event without lead data (one that [`Vendor::decode`] makes an ignored card) that
    /// names its visitor the way this vendor's leads are keyed: a timeline entry on that
    /// visitor's lead, if there is one. `None` for everything else.
    fn visitor_event(&self, _request: &Request) -> Option<xiansuo_domain::VisitorEvent> {
        None
    }
}

/// 易聊 EasyLiao: today's decoder, unchanged.
pub struct EasyLiao;

impl Vendor for EasyLiao {
    fn kind(&self) -> Kind {
        Kind::EasyLiao
    }

    fn verify(&self, _: &Request, _: &str) -> Result<(), SignatureError> {
        Ok(())
    }

    fn signs(&self) -> bool {
        false
    }

    fn event_id(&self, _: &Request) -> Option<String> {
        None
    }

    fn decode(&self, request: &Request, rules: &SourceRules) -> Result<DecodedPush, DecodeError> {
        decode_push(request.body, request.content_type, rules)
    }

    fn success(&self) -> Option<Answer> {
        None
    }
}

/// A card built by a vendor module from canonical keys, decoded like any card (contacts found
/// in the chat, times, `extra`), and checked for the identity every lead needs.
pub(crate) fn canonical_card(members: Vec<(String, Json)>, rules: &SourceRules) -> Result<DecodedCard, DecodeError> {
    let (card, warnings) = crate::card::decode_card(members, rules);
    for key in ["visitor_static_id", "company_id", "chat_id"] {
        if card.get(key).is_none() {
            let vendor_key = xiansuo_domain::field(key).map_or(key, |f| f.vendor_key);
            return Err(DecodeError::MissingField { item: None, vendor_key, key });
        }
    }
    Ok(DecodedCard { card, ignored: false, warnings })
}

/// An event that carries no lead data: one ignored card, saying what it was.
pub(crate) fn no_lead(event: &str) -> DecodedPush {
    let mut card = xiansuo_domain::Card::default();
    card.extra.insert("event".into(), event.to_string());
    DecodedPush { cards: vec![DecodedCard { card, ignored: true, warnings: Vec::new() }] }
}

/// A request body as a JSON document (`None`: not UTF-8 JSON).
pub(crate) fn document(request: &Request) -> Option<Json> {
    std::str::from_utf8(request.body).ok().and_then(|t| crate::json::parse(t).ok())
}

/// The member of an object (last non-empty wins, as everywhere).
pub(crate) fn member<'a>(value: &'a Json, key: &str) -> Option<&'a Json> {
    match value {
        Json::Object(members) => {
            members.iter().rev().find(|(k, v)| k == key && !matches!(v, Json::Null)).map(|(_, v)| v)
        }
        _ => None,
    }
}

/// A member's text (strings as they are, numbers as written).
pub(crate) fn text(value: &Json, key: &str) -> Option<String> {
    match member(value, key)? {
        Json::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.clone()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two strings in constant time (for their length).
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

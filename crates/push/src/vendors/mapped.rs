//! `kind = "mapped"`: a source the customer describes in the configuration (a landing-page form,
//! a tool without a module of its own). [`MappedSpec`] says how requests are authenticated (the
//! source's token, or a signature: header, SHA1/SHA256, HMAC or plain hash, hex/base64, which
//! parts are signed), which field paths of the body go to which canonical keys, which field is
//! the identity, where the messages are and the keys inside each, and the answer the sender
//! expects. Bodies may be JSON or forms (read like EasyLiao's: any Content-Type, GBK forms).
//!
//! A path is a JSON pointer (`/data/phone`) or dotted (`contact.mobile`); array items by index
//! (`/items/0/phone`, `items.0.phone`).

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{Answer, Kind, Request, SignatureError, Vendor, canonical_card, hex, same};
use crate::json::Json;
use crate::{DecodeError, DecodedPush, SourceRules};

/// The hash of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha1,
    HmacSha256,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub const NAMES: &'static [&'static str] = &["hmac-sha1", "hmac-sha256", "sha1", "sha256"];

    pub fn parse(s: &str) -> Option<Algorithm> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "hmac-sha1" => Algorithm::HmacSha1,
            "hmac-sha256" => Algorithm::HmacSha256,
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            _ => return None,
        })
    }
}

/// A part of what is signed, concatenated in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Body,
    Timestamp,
    /// The secret itself (plain hashes: `sha1(body + secret)`).
    Secret,
}

impl Part {
    pub fn parse(s: &str) -> Option<Part> {
        Some(match s.trim() {
            "body" => Part::Body,
            "timestamp" => Part::Timestamp,
            "secret" => Part::Secret,
            _ => return None,
        })
    }
}

/// How a mapped source's requests are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureSpec {
    /// The header holding the signature (lowercase).
    pub header: String,
    pub algorithm: Algorithm,
    /// `true`: base64; `false`: hex (either case).
    pub base64: bool,
    /// What is signed, in order (default: the body).
    pub signed: Vec<Part>,
    /// The header holding the time stamp (seconds or milliseconds since the epoch).
    pub timestamp_header: Option<String>,
    /// A time stamp further than this from now is stale.
    pub max_age_seconds: i64,
    /// Text before the signature in its header (`sha256=`), removed before comparing.
    pub prefix: String,
}

/// A mapped source's description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MappedSpec {
    /// `None`: authenticated by the source's token.
    pub signature: Option<SignatureSpec>,
    /// Field path → canonical key, in the configuration's order.
    pub map: Vec<(String, String)>,
    /// The path of the visitor's identity (required).
    pub identity: String,
    /// `company_id` of every lead (default: the source's name).
    pub company: String,
    /// The path of the chat's id (default: the identity).
    pub chat: Option<String>,
    /// The path of the messages (an array of objects), if any.
    pub messages: Option<String>,
    /// Key inside a message → `message`, `recorder_id`, `from_id`, `create_time`, `type`,
    /// `chat_id` or `sender`.
    pub message_keys: Vec<(String, String)>,
    /// Values of the `sender` key that mean the visitor (anything else: staff).
    pub visitor_values: Vec<String>,
    /// The answer on success; `None`: the usual JSON.
    pub answer: Option<Answer>,
}

/// The message keys a mapped source may name.
pub const MESSAGE_TARGETS: &[&str] = &["message", "recorder_id", "from_id", "create_time", "type", "chat_id", "sender"];

pub struct Mapped(pub MappedSpec);

/// The value at a path: `/a/b/0` or `a.b.0`.
pub fn at_path<'a>(doc: &'a Json, path: &str) -> Option<&'a Json> {
    let parts: Vec<&str> = match path.strip_prefix('/') {
        Some(p) => p.split('/').collect(),
        None => path.split('.').collect(),
    };
    let mut cur = doc;
    for raw in parts {
        let part = raw.replace("~1", "/").replace("~0", "~");
        cur = match cur {
            Json::Object(members) => {
                members.iter().rev().find(|(k, v)| *k == part && !matches!(v, Json::Null)).map(|(_, v)| v)?
            }
            Json::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.clone()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Every leaf of a document as (JSON pointer, value), for `extra`.
fn leaves(doc: &Json, prefix: &str, out: &mut Vec<(String, Json)>) {
    match doc {
        Json::Object(members) => {
            for (k, v) in members {
                leaves(v, &format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Json::Array(items) if items.iter().any(|i| matches!(i, Json::Object(_) | Json::Array(_))) => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, &format!("{prefix}/{i}"), out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// A path in its pointer form (`contact.mobile` → `/contact/mobile`).
fn pointer(path: &str) -> String {
    if path.starts_with('/') { path.to_string() } else { format!("/{}", path.replace('.', "/")) }
}

impl Vendor for Mapped {
    fn kind(&self) -> Kind {
        Kind::Mapped
    }

    fn signs(&self) -> bool {
        self.0.signature.is_some()
    }

    fn verify(&self, request: &Request, secret: &str) -> Result<(), SignatureError> {
        let Some(spec) = &self.0.signature else { return Ok(()) };
        let given = request.header(&spec.header).ok_or(SignatureError::Missing("signature"))?;
        let given = given.strip_prefix(spec.prefix.as_str()).unwrap_or(given).trim();
        let timestamp = match &spec.timestamp_header {
            Some(h) => Some(request.header(h).ok_or(SignatureError::Missing("time stamp"))?.to_string()),
            None => None,
        };
        let mut message = Vec::new();
        for part in &spec.signed {
            match part {
                Part::Body => message.extend_from_slice(request.body),
                Part::Timestamp => message.extend_from_slice(timestamp.as_deref().unwrap_or("").as_bytes()),
                Part::Secret => message.extend_from_slice(secret.as_bytes()),
            }
        }
        let digest: Vec<u8> = match spec.algorithm {
            Algorithm::HmacSha1 => {
                let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes())
                    .map_err(|_| SignatureError::Mismatch("signature"))?;
                mac.update(&message);
                mac.finalize().into_bytes().to_vec()
            }
            Algorithm::HmacSha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                    .map_err(|_| SignatureError::Mismatch("signature"))?;
                mac.update(&message);
                mac.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha1 => Sha1::digest(&message).to_vec(),
            Algorithm::Sha256 => Sha256::digest(&message).to_vec(),
        };
        let ok = if spec.base64 {
            same(given, &base64::engine::general_purpose::STANDARD.encode(&digest))
        } else {
            same(&given.to_ascii_lowercase(), &hex(&digest))
        };
        if !ok {
            return Err(SignatureError::Mismatch("signature"));
        }
        if let Some(ts) = timestamp {
            let n = ts.trim().parse::<i64>().ok();
            // Seconds, or milliseconds (13 digits).
            let secs = n.map(|n| if n > 100_000_000_000 { n / 1000 } else { n });
            let fresh = secs.is_some_and(|s| (request.now.timestamp() - s).abs() <= spec.max_age_seconds);
            if !fresh {
                return Err(SignatureError::Stale { at: ts, limit: "the source's max_age_seconds" });
            }
        }
        Ok(())
    }

    fn event_id(&self, _: &Request) -> Option<String> {
        None
    }

    fn decode(&self, request: &Request, rules: &SourceRules) -> Result<DecodedPush, DecodeError> {
        let spec = &self.0;
        let doc = crate::body::read_document(request.body, request.content_type)?;
        let identity = at_path(&doc, &spec.identity).and_then(scalar).ok_or_else(|| {
            DecodeError::NotCards(format!(
                "the body has no value at {}, the source's identity field: check `identity` in the source's configuration",
                spec.identity
            ))
        })?;
        let chat =
            spec.chat.as_deref().and_then(|p| at_path(&doc, p)).and_then(scalar).unwrap_or_else(|| identity.clone());
        let s = Json::String;
        let mut members: Vec<(String, Json)> = vec![
            ("visitor_static_id".into(), s(identity.clone())),
            ("company_id".into(), s(spec.company.clone())),
            ("chat_id".into(), s(chat.clone())),
        ];
        let mut used: Vec<String> = vec![pointer(&spec.identity)];
        used.extend(spec.chat.as_deref().map(pointer));
        used.extend(spec.messages.as_deref().map(pointer));
        for (path, key) in &spec.map {
            used.push(pointer(path));
            if let Some(v) = at_path(&doc, path).and_then(scalar) {
                members.push((key.clone(), s(v)));
            }
        }
        // What the map does not name is kept in `extra`, under its path.
        let mut all = Vec::new();
        leaves(&doc, "", &mut all);
        for (path, value) in all {
            if !used.iter().any(|u| path == *u || path.starts_with(&format!("{u}/"))) && scalar(&value).is_some() {
                members.push((path, value));
            }
        }
        if let Some(path) = &spec.messages {
            let items = match at_path(&doc, path) {
                Some(Json::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            let mut transcript = Vec::with_capacity(items.len());
            for item in &items {
                let mut msg = vec![("chat_id".to_string(), s(chat.clone()))];
                for (key, target) in &spec.message_keys {
                    let Some(v) = at_path(item, key).and_then(scalar) else { continue };
                    if target == "sender" {
                        let visitor = spec.visitor_values.iter().any(|x| x.eq_ignore_ascii_case(v.trim()));
                        msg.push(("sender_type".into(), s(if visitor { "1" } else { "0" }.into())));
                    } else {
                        msg.push((target.clone(), s(v)));
                    }
                }
                transcript.push(Json::Object(msg));
            }
            members.push(("messages".into(), Json::Array(transcript)));
        }
        Ok(DecodedPush { cards: vec![canonical_card(members, rules)?] })
    }

    fn success(&self) -> Option<Answer> {
        self.0.answer.clone()
    }
}

//! Issue #11: what a source does besides decoding — its relay targets (`relay = [...]`), the
//! customer's old endpoints that keep receiving every push byte for byte.
//!
//! ```toml
//! [sources.easyliao]
//! relay = [
//!   { url = "https://crm.example.com/easyliao/push", headers = { Authorization = "Bearer abc" } },
//!   { url = "http://10.0.0.7/sheet-hook" },
//! ]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use xiansuo_push::vendors::mapped::{Algorithm, MESSAGE_TARGETS, MappedSpec, Part, SignatureSpec};
use xiansuo_push::vendors::{Answer, Kind};

use crate::ConfigError;

/// One relay target of a source. Its deliveries are named [`RelayTarget::delivery_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayTarget {
    /// The name its deliveries carry in the outbox and on the deliveries page:
    /// `relay:SOURCE:N`, N counting the source's `relay` list from 1.
    pub name: String,
    pub url: String,
    /// Sent with every relayed body, besides the original `Content-Type`.
    pub headers: Vec<(String, String)>,
}

impl RelayTarget {
    /// `relay:SOURCE:N` (1-based). Keep a target's place in the list while deliveries are pending:
    /// a delivery whose name is no longer configured is dead (and can be redelivered once it is).
    pub fn delivery_name(source: &str, index: usize) -> String {
        format!("{RELAY_PREFIX}{source}:{}", index + 1)
    }
}

/// Deliveries whose sink name begins so are relays (sink names cannot hold `:`).
pub const RELAY_PREFIX: &str = "relay:";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRelay {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Headers a relay may not set: the original request's `Content-Type` is sent, and the HTTP
/// client owns the framing.
const RESERVED_HEADERS: &[&str] = &["content-type", "content-length", "host", "transfer-encoding", "connection"];

pub(crate) fn relay_targets(
    source: &str,
    relay: &[Spanned<FileRelay>],
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Vec<RelayTarget>, ConfigError> {
    let mut out = Vec::with_capacity(relay.len());
    for (i, spanned) in relay.iter().enumerate() {
        let here = format!("sources.{source}.relay[{i}] ({})", at(spanned.span()));
        let r = spanned.get_ref();
        let url = r.url.trim().to_string();
        if !crate::routing::valid_http_url(&url) {
            return Err(ConfigError::new(format!(
                "{here}.url: \"{url}\" is not an http:// or https:// address such as https://crm.example.com/push"
            )));
        }
        let mut headers = Vec::with_capacity(r.headers.len());
        for (name, value) in &r.headers {
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
                return Err(ConfigError::new(format!(
                    "{here}.headers: \"{name}\" is not an HTTP header name (letters, digits and - only, say X-Api-Key)"
                )));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::new(format!(
                    "{here}.headers: {name} cannot be set: the relay sends the original request's Content-Type, and the length and host are the HTTP client's"
                )));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(ConfigError::new(format!(
                    "{here}.headers.{name}: a header value cannot hold a line break"
                )));
            }
            headers.push((name.to_string(), value.clone()));
        }
        out.push(RelayTarget { name: RelayTarget::delivery_name(source, i), url, headers });
    }
    Ok(out)
}

/// A source's `kind` (default easyliao) and `secret` (required by the vendors that sign).
pub(crate) fn kind_and_secret(
    source: &str,
    kind: Option<&Spanned<String>>,
    secret: Option<&Spanned<String>>,
    mapped_signs: bool,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<(Kind, Option<String>), ConfigError> {
    let parsed = match kind {
        None => Kind::default(),
        Some(k) => Kind::parse(k.get_ref()).ok_or_else(|| {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            ConfigError::new(format!(
                "sources.{source}.kind ({}): \"{}\" is not a kind this release knows: use one of {}",
                at(k.span()),
                k.get_ref(),
                kinds.join(", ")
            ))
        })?,
    };
    let signs = parsed.signs() || mapped_signs;
    let secret = match secret {
        Some(s) if !signs => {
            return Err(ConfigError::new(format!(
                "sources.{source}.secret ({}): a {} source is authenticated by its token, not a secret: remove the key",
                at(s.span()),
                parsed.as_str()
            )));
        }
        Some(s) if s.get_ref().trim().is_empty() => {
            return Err(ConfigError::new(format!(
                "sources.{source}.secret ({}): empty; paste the webhook's secret from the vendor's settings",
                at(s.span())
            )));
        }
        Some(s) => Some(s.get_ref().trim().to_string()),
        None if signs => {
            return Err(ConfigError::new(format!(
                "sources.{source}: a {} source needs `secret`, the webhook's secret from the vendor's settings, to check its signatures",
                parsed.as_str()
            )));
        }
        None => None,
    };
    Ok((parsed, secret))
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn relay_targets_are_read_and_checked() {
        let text = "[sources.easyliao]\nrelay = [\n  { url = \"https://crm.example.com/push\", headers = { Authorization = \"Bearer x\" } },\n  { url = \"http://10.0.0.7/hook\" },\n]\n";
        let c = Config::from_toml(text, "x.toml", no_env).unwrap();
        let r = &c.sources["easyliao"].relay;
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].name, "relay:easyliao:1");
        assert_eq!(r[0].headers, [("Authorization".to_string(), "Bearer x".to_string())]);
        assert_eq!(r[1].url, "http://10.0.0.7/hook");
        assert_eq!(c.routing.relays["easyliao"], ["relay:easyliao:1", "relay:easyliao:2"]);

        let bad = |t: &str| Config::from_toml(t, "x.toml", no_env).unwrap_err().to_string();
        let e = bad("[sources.easyliao]\nrelay = [{ url = \"ftp://x\" }]\n");
        assert!(e.contains("sources.easyliao.relay[0]") && e.contains("ftp://x"), "{e}");
        let e = bad(
            "[sources.easyliao]\nrelay = [{ url = \"http://x/\", headers = { \"Content-Type\" = \"text/plain\" } }]\n",
        );
        assert!(e.contains("Content-Type cannot be set"), "{e}");
        let e = bad("[sources.easyliao]\nrelay = [{ url = \"http://x/\", header = {} }]\n");
        assert!(e.contains("header"), "{e}");
    }

    #[test]
    fn kinds_and_secrets() {
        let c = Config::from_toml("[sources.t]\nkind = \"tawk\"\nsecret = \"s3cret\"\n", "x.toml", no_env).unwrap();
        assert_eq!(c.sources["t"].kind, xiansuo_push::vendors::Kind::Tawk);
        assert_eq!(c.sources["t"].secret.as_deref(), Some("s3cret"));
        let bad = |t: &str| Config::from_toml(t, "x.toml", no_env).unwrap_err().to_string();
        let e = bad("[sources.t]\nkind = \"tawkto\"\n");
        assert!(
            e.contains("sources.t.kind (x.toml line 2)") && e.contains("easyliao, tawk, qiyu, meiqia, mapped"),
            "{e}"
        );
        assert!(bad("[sources.t]\nkind = \"tawk\"\n").contains("needs `secret`"));
        assert!(bad("[sources.e]\nsecret = \"x\"\n").contains("authenticated by its token"));
    }
}

// ---------------------------------------------------------------------------------------------
// Issue #11: `kind = "mapped"`, a source the customer describes.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAnswer {
    #[serde(default = "ok_status")]
    status: u16,
    #[serde(default = "text_plain")]
    content_type: String,
    #[serde(default)]
    body: String,
}

fn ok_status() -> u16 {
    200
}

fn text_plain() -> String {
    "text/plain; charset=utf-8".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSignature {
    header: String,
    algorithm: String,
    #[serde(default = "hex_encoding")]
    encoding: String,
    #[serde(default)]
    signed: Vec<String>,
    timestamp_header: Option<String>,
    #[serde(default = "five_minutes")]
    max_age_seconds: i64,
    #[serde(default)]
    prefix: String,
}

fn hex_encoding() -> String {
    "hex".into()
}

fn five_minutes() -> i64 {
    300
}

/// The keys of a source that describe a mapped source.
pub(crate) struct FileMapped<'a> {
    pub kind: Option<&'a Spanned<String>>,
    pub identity: Option<&'a Spanned<String>>,
    pub company: Option<&'a Spanned<String>>,
    pub chat: Option<&'a Spanned<String>>,
    pub messages: Option<&'a Spanned<String>>,
    pub visitor_values: &'a [String],
    pub answer: Option<&'a Spanned<FileAnswer>>,
    pub map: &'a BTreeMap<String, Spanned<String>>,
    pub message_keys: &'a BTreeMap<String, Spanned<String>>,
    pub signature: Option<&'a Spanned<FileSignature>>,
}

/// A mapped source's description, checked; `None` for other kinds (which may not use its keys).
pub(crate) fn mapped(
    source: &str,
    f: FileMapped,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<Option<MappedSpec>, ConfigError> {
    let is_mapped = f.kind.is_some_and(|k| k.get_ref().trim() == Kind::Mapped.as_str());
    if !is_mapped {
        let used = f.identity.is_some()
            || f.company.is_some()
            || f.chat.is_some()
            || f.messages.is_some()
            || !f.visitor_values.is_empty()
            || f.answer.is_some()
            || !f.map.is_empty()
            || !f.message_keys.is_empty()
            || f.signature.is_some();
        if used {
            return Err(ConfigError::new(format!(
                "sources.{source}: identity, map, messages, message_keys, signature and answer describe a source of kind = \"mapped\"; add kind = \"mapped\" or remove them"
            )));
        }
        return Ok(None);
    }
    let identity = f.identity.map(|i| i.get_ref().trim().to_string()).filter(|i| !i.is_empty()).ok_or_else(|| {
        ConfigError::new(format!(
            "sources.{source}: a mapped source needs `identity`, the path of the field that identifies the visitor (say \"/data/id\" or \"contact.mobile\")"
        ))
    })?;
    let mut map = Vec::with_capacity(f.map.len());
    for (path, key) in f.map {
        let k = key.get_ref().trim();
        if xiansuo_domain::field(k).is_none() {
            return Err(ConfigError::new(format!(
                "sources.{source}.map (at {}): \"{k}\" is not a canonical key: use one such as name, mobile, tel, weixin, qq, email, city, keyword, first_url or note",
                at(key.span())
            )));
        }
        map.push((path.trim().to_string(), k.to_string()));
    }
    let mut message_keys = Vec::with_capacity(f.message_keys.len());
    for (key, target) in f.message_keys {
        let t = target.get_ref().trim();
        if !MESSAGE_TARGETS.contains(&t) {
            return Err(ConfigError::new(format!(
                "sources.{source}.message_keys (at {}): \"{t}\" is not a message key: use {}",
                at(target.span()),
                MESSAGE_TARGETS.join(", ")
            )));
        }
        message_keys.push((key.trim().to_string(), t.to_string()));
    }
    let signature = match f.signature {
        None => None,
        Some(s) => {
            let here = format!("sources.{source}.signature (at {})", at(s.span()));
            let s = s.get_ref();
            let algorithm = Algorithm::parse(&s.algorithm).ok_or_else(|| {
                ConfigError::new(format!(
                    "{here}.algorithm: \"{}\" is not one of {}",
                    s.algorithm,
                    Algorithm::NAMES.join(", ")
                ))
            })?;
            let base64 = match s.encoding.trim() {
                "hex" => false,
                "base64" => true,
                other => {
                    return Err(ConfigError::new(format!("{here}.encoding: \"{other}\" is neither hex nor base64")));
                }
            };
            let mut signed = Vec::new();
            for part in &s.signed {
                signed.push(Part::parse(part).ok_or_else(|| {
                    ConfigError::new(format!(
                        "{here}.signed: \"{part}\" is not a part: list \"timestamp\", \"body\" and \"secret\" in the order they are joined"
                    ))
                })?);
            }
            if signed.is_empty() {
                signed.push(Part::Body);
            }
            if signed.contains(&Part::Timestamp) && s.timestamp_header.is_none() {
                return Err(ConfigError::new(format!(
                    "{here}: the time stamp is signed, so set timestamp_header, the header that carries it"
                )));
            }
            if s.header.trim().is_empty() || s.max_age_seconds <= 0 {
                return Err(ConfigError::new(format!(
                    "{here}: header must name the signature's header, and max_age_seconds be positive"
                )));
            }
            Some(SignatureSpec {
                header: s.header.trim().to_ascii_lowercase(),
                algorithm,
                base64,
                signed,
                timestamp_header: s.timestamp_header.as_ref().map(|h| h.trim().to_ascii_lowercase()),
                max_age_seconds: s.max_age_seconds,
                prefix: s.prefix.clone(),
            })
        }
    };
    let answer = f.answer.map(|a| {
        let a = a.get_ref();
        Answer { status: a.status, content_type: a.content_type.clone(), body: a.body.clone() }
    });
    if let Some(a) = &answer
        && !(200..300).contains(&a.status)
    {
        return Err(ConfigError::new(format!(
            "sources.{source}.answer.status: {} is not a success (2xx): the answer is what a stored push gets",
            a.status
        )));
    }
    Ok(Some(MappedSpec {
        signature,
        map,
        identity,
        company: f.company.map(|c| c.get_ref().trim().to_string()).unwrap_or_else(|| source.to_string()),
        chat: f.chat.map(|c| c.get_ref().trim().to_string()),
        messages: f.messages.map(|m| m.get_ref().trim().to_string()),
        message_keys,
        visitor_values: f.visitor_values.to_vec(),
        answer,
    }))
}

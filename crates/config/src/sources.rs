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

use xiansuo_push::vendors::Kind;

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
    let signs = parsed.vendor().signs();
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
        assert!(e.contains("sources.t.kind (x.toml line 2)") && e.contains("easyliao, tawk, qiyu, meiqia"), "{e}");
        assert!(bad("[sources.t]\nkind = \"tawk\"\n").contains("needs `secret`"));
        assert!(bad("[sources.e]\nsecret = \"x\"\n").contains("authenticated by its token"));
    }
}

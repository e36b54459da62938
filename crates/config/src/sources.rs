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
}

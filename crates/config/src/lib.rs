//! The service's configuration: [`Config`], loaded once at start-up from an optional TOML file
//! and the environment (`XIANSUO_*` variables win over the file).
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! database_url = "sqlite://./xiansuo-data/xiansuo.db"
//! admin_token = "…"
//! max_body_bytes = 2097152
//! write_queue = 8192
//! queue_pushes_above = 16
//! pool_size = 16
//!
//! [sources.easyliao]
//! token = "…"
//! accept_types = ["转线索"]
//!
//! [sources.easyliao.field_map]
//! "客户手机" = "mobile"
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;
use xiansuo_domain::{Scoring, TagDictionary};
use xiansuo_push::SourceRules;

mod scoring;
// Issue #6: assignment rules, sinks and delivery (their own module).
pub mod routing;
pub use routing::{DeliveryConfig, SinkConfig, SinkKind};
// Issue #11: relay targets (and source kinds) of a source.
pub mod sources;
pub use sources::{RELAY_PREFIX, RelayTarget};

/// The source every installation has when the configuration names none.
pub const DEFAULT_SOURCE: &str = "easyliao";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./xiansuo-data/xiansuo.db";
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
pub const DEFAULT_WRITE_QUEUE: usize = 8192;
/// Issue #8: a write batch holding more pushes than this is a burst (see [`Config::queue_pushes_above`]).
pub const DEFAULT_QUEUE_PUSHES_ABOVE: usize = 16;
pub const DEFAULT_POOL_SIZE: usize = 16;

/// A configuration that cannot be used. The message names the key, and the line when the key
/// came from the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
}

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        ConfigError { message: message.into() }
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite database file (`sqlite://PATH`; `sqlite:///abs/path` for an absolute path).
    Sqlite(PathBuf),
    /// A PostgreSQL server (`postgres://…` or `postgresql://…`).
    Postgres(String),
}

impl std::fmt::Display for DatabaseUrl {
    /// The URL without its password, fit for messages and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                match rest.rsplit_once('@') {
                    Some((userinfo, host)) => {
                        let user = userinfo.split(':').next().unwrap_or("");
                        write!(f, "{scheme}://{user}@{host}")
                    }
                    None => write!(f, "{scheme}://{rest}"),
                }
            }
        }
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        let url = url.trim();
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let path = path.split('?').next().unwrap_or("");
            if path.is_empty() || path == ":memory:" {
                return Err(format!(
                    "\"{url}\" names no database file: use sqlite://./xiansuo-data/xiansuo.db or sqlite:///absolute/path.db"
                ));
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        // Only the scheme is repeated: the rest may hold a password.
        let scheme = url.split_once("://").map_or("(none)", |(scheme, _)| scheme);
        Err(format!(
            "the URL scheme \"{scheme}\" is not one this service knows: use sqlite://PATH or postgres://USER@HOST/DB"
        ))
    }
}

/// One source of pushes: a vendor account posting to `/push/{name}`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    /// The push token; `None` when the configuration sets none, in which case the service
    /// generates one on first start and keeps it in the database.
    pub token: Option<String>,
    /// Tokens still accepted while the vendor moves to `token` (a rotation without downtime).
    pub previous_tokens: Vec<String>,
    /// When set, pushes from other addresses are refused with 403.
    pub allow_ips: Vec<IpNet>,
    /// Most pushes per second (with bursts of twice that); beyond it, 429 with Retry-After.
    pub rate_limit: Option<u32>,
    pub rules: SourceRules,
    /// Issue #11: where every push to this source is re-sent, byte for byte.
    pub relay: Vec<RelayTarget>,
    /// Issue #11: which decoder the source uses (`kind`, default easyliao).
    pub kind: xiansuo_push::vendors::Kind,
    /// Issue #11: the secret a signing vendor (tawk) signs its requests with.
    pub secret: Option<String>,
    /// Issue #11: a mapped source's description.
    pub mapped: Option<xiansuo_push::vendors::mapped::MappedSpec>,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    /// Bearer token of the API with admin rights; generated and stored when not set.
    pub admin_token: Option<String>,
    /// Push bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Pushes waiting for the writer beyond this get 503 with Retry-After.
    pub write_queue: usize,
    /// Issue #8: when more pushes than this wait for the writer together, each is stored
    /// durably and answered at once (outcome `queued`) and its leads are built right after, in
    /// arrival order; while any push is queued, later ones queue behind it. 0 queues every push.
    pub queue_pushes_above: usize,
    /// Most connections to PostgreSQL this process opens (unused with SQLite).
    pub pool_size: usize,
    /// PostgreSQL writers committing batches side by side (unused with SQLite). With more than
    /// one, writes submitted together may commit in any order; `xiansuo import` uses one.
    pub postgres_writers: usize,
    pub sources: BTreeMap<String, SourceConfig>,
    /// `[tags.ID]`: names and colours of the vendor's summary tags.
    pub tags: TagDictionary,
    /// `[score]`: the lead score's weights and intent words (tag points from `tags`).
    pub scoring: Scoring,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for `allow_ips` and sign-in
    /// limits); from any other peer the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// A folder where pushes that cannot reach the database are kept (fsynced) and answered 202,
    /// then stored in order once it is back. `None`: such pushes get 503.
    pub spool_dir: Option<PathBuf>,
    /// The console's address as people reach it (links in notifications), without a trailing `/`.
    pub public_url: Option<String>,
    /// Assignment rules and the sinks' filters, as the store applies them.
    pub routing: xiansuo_domain::routing::Routing,
    /// Where outbound events go.
    pub sinks: Vec<SinkConfig>,
    pub delivery: DeliveryConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Spanned<String>>,
    database_url: Option<Spanned<String>>,
    admin_token: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<i64>>,
    write_queue: Option<Spanned<i64>>,
    queue_pushes_above: Option<Spanned<i64>>,
    pool_size: Option<Spanned<i64>>,
    postgres_writers: Option<Spanned<i64>>,
    #[serde(default)]
    sources: BTreeMap<String, Spanned<FileSource>>,
    #[serde(default)]
    tags: BTreeMap<String, Spanned<scoring::FileTag>>,
    score: Option<Spanned<Scoring>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    spool_dir: Option<Spanned<String>>,
    // Issue #6 (routing.rs).
    public_url: Option<Spanned<String>>,
    #[serde(default)]
    rules: Vec<Spanned<routing::FileRule>>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    owner_map: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    sinks: Vec<Spanned<routing::FileSink>>,
    delivery: Option<Spanned<routing::FileDelivery>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSource {
    token: Option<Spanned<String>>,
    #[serde(default)]
    accept_types: Vec<String>,
    #[serde(default)]
    field_map: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    previous_tokens: Vec<Spanned<String>>,
    #[serde(default)]
    allow_ips: Vec<Spanned<String>>,
    rate_limit: Option<Spanned<i64>>,
    // Issue #11 (sources.rs).
    #[serde(default)]
    relay: Vec<Spanned<sources::FileRelay>>,
    kind: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    // Issue #11: a mapped source's description (sources.rs).
    identity: Option<Spanned<String>>,
    company: Option<Spanned<String>>,
    chat: Option<Spanned<String>>,
    messages: Option<Spanned<String>>,
    #[serde(default)]
    visitor_values: Vec<String>,
    answer: Option<Spanned<sources::FileAnswer>>,
    #[serde(default)]
    map: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    message_keys: BTreeMap<String, Spanned<String>>,
    signature: Option<Spanned<sources::FileSignature>>,
}

/// Names of the environment variables, each overriding one key of the file.
pub mod env {
    pub const LISTEN: &str = "XIANSUO_LISTEN";
    pub const DATABASE_URL: &str = "XIANSUO_DATABASE_URL";
    pub const ADMIN_TOKEN: &str = "XIANSUO_ADMIN_TOKEN";
    pub const PUSH_TOKEN: &str = "XIANSUO_PUSH_TOKEN";
    pub const MAX_BODY_BYTES: &str = "XIANSUO_MAX_BODY_BYTES";
    pub const WRITE_QUEUE: &str = "XIANSUO_WRITE_QUEUE";
    pub const QUEUE_PUSHES_ABOVE: &str = "XIANSUO_QUEUE_PUSHES_ABOVE";
    pub const POOL_SIZE: &str = "XIANSUO_POOL_SIZE";
    pub const POSTGRES_WRITERS: &str = "XIANSUO_POSTGRES_WRITERS";
    pub const SPOOL_DIR: &str = "XIANSUO_SPOOL_DIR";
}

impl Config {
    /// Loads the file (if any), then applies the environment as read by `var`.
    pub fn load(file: Option<&Path>, var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let (text, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(format!("cannot read the configuration file {}: {e}", path.display()))
                })?;
                (text, path.display().to_string())
            }
            None => (String::new(), String::new()),
        };
        Config::from_toml(&text, &origin, var)
    }

    /// Builds the configuration from TOML text (`origin` names it in messages) and the
    /// environment.
    pub fn from_toml(text: &str, origin: &str, var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text)
            .map_err(|e| ConfigError::new(format!("configuration {origin}: {}", e.to_string().trim_end())))?;
        let at = |span: std::ops::Range<usize>| format!("{origin} line {}", line_of(text, span.start));
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());

        let listen_text = match var(env::LISTEN) {
            Some(v) => (v, format!("environment variable {}", env::LISTEN)),
            None => match &file.listen {
                Some(s) => (s.get_ref().clone(), at(s.span())),
                None => (DEFAULT_LISTEN.to_string(), "the default".to_string()),
            },
        };
        let listen: SocketAddr = listen_text.0.trim().parse().map_err(|_| {
            ConfigError::new(format!(
                "listen ({}): \"{}\" is not an address and port such as 127.0.0.1:8080 or 0.0.0.0:8080",
                listen_text.1, listen_text.0
            ))
        })?;

        let db_text = match var(env::DATABASE_URL) {
            Some(v) => (v, format!("environment variable {}", env::DATABASE_URL)),
            None => match &file.database_url {
                Some(s) => (s.get_ref().clone(), at(s.span())),
                None => (DEFAULT_DATABASE_URL.to_string(), "the default".to_string()),
            },
        };
        let database_url = DatabaseUrl::parse(&db_text.0)
            .map_err(|e| ConfigError::new(format!("database_url ({}): {e}", db_text.1)))?;

        let env_where = |name: &str| format!("environment variable {name}");
        let push_token_env = match var(env::PUSH_TOKEN) {
            Some(v) => Some(check_token(&v, "push token", &env_where(env::PUSH_TOKEN))?),
            None => None,
        };
        let admin_token = match var(env::ADMIN_TOKEN) {
            Some(v) => Some(check_token(&v, "admin_token", &env_where(env::ADMIN_TOKEN))?),
            None => match &file.admin_token {
                Some(s) => Some(check_token(s.get_ref(), "admin_token", &at(s.span()))?),
                None => None,
            },
        };

        // A whole number of at least `min`: the environment variable, else the file's key, else
        // the default.
        let number = |min: i64, key: &str, env_name: &str, from_file: Option<&Spanned<i64>>, default: usize| {
            at_least(min, var(env_name), from_file, key, env_name, default, &at)
        };
        let max_body_bytes =
            number(1, "max_body_bytes", env::MAX_BODY_BYTES, file.max_body_bytes.as_ref(), DEFAULT_MAX_BODY_BYTES)?;
        let write_queue = number(1, "write_queue", env::WRITE_QUEUE, file.write_queue.as_ref(), DEFAULT_WRITE_QUEUE)?;
        let queue_pushes_above = number(
            0,
            "queue_pushes_above",
            env::QUEUE_PUSHES_ABOVE,
            file.queue_pushes_above.as_ref(),
            DEFAULT_QUEUE_PUSHES_ABOVE,
        )?;
        let pool_size = number(1, "pool_size", env::POOL_SIZE, file.pool_size.as_ref(), DEFAULT_POOL_SIZE)?;
        // Four by default: batches committed side by side overlap their round trips and commits
        // (measured: 452–461 pushes/s with four, 227–237/s with one). Since migration 13 no row
        // is updated by every push (the per-day report's changes are appended, then folded), so
        // they no longer wait on each other; never more than the connections.
        let postgres_writers =
            number(1, "postgres_writers", env::POSTGRES_WRITERS, file.postgres_writers.as_ref(), 4)?.min(pool_size);

        let mut sources = BTreeMap::new();
        // Token → where it was set, to refuse one token for two owners.
        let mut token_origins: Vec<(String, String)> = Vec::new();
        if let Some(t) = &admin_token {
            token_origins.push((t.clone(), "admin_token".to_string()));
        }
        for (name, spanned) in &file.sources {
            let where_ = at(spanned.span());
            let source = spanned.get_ref();
            if name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::new(format!(
                    "sources.{name} ({where_}): a source name appears in the push URL, so it may hold only a-z, 0-9, - and _"
                )));
            }
            let mut token = match &source.token {
                Some(t) => Some(check_token(t.get_ref(), &format!("sources.{name}.token"), &at(t.span()))?),
                None => None,
            };
            if name == DEFAULT_SOURCE
                && let Some(t) = &push_token_env
            {
                token = Some(t.clone());
            }
            if let Some(t) = &token {
                unique_token(&mut token_origins, t, &format!("sources.{name}.token ({where_})"))?;
            }
            let mut previous_tokens = Vec::new();
            for t in &source.previous_tokens {
                let key = format!("sources.{name}.previous_tokens");
                let t_where = at(t.span());
                let checked = check_token(t.get_ref(), &key, &t_where)?;
                unique_token(&mut token_origins, &checked, &format!("{key} ({t_where})"))?;
                previous_tokens.push(checked);
            }
            if !previous_tokens.is_empty() && token.is_none() {
                return Err(ConfigError::new(format!(
                    "sources.{name}.previous_tokens ({where_}): set the new token in sources.{name}.token as well (for a generated token, use `xiansuo token rotate {name}` instead)"
                )));
            }
            let allow_ips = source
                .allow_ips
                .iter()
                .map(|a| {
                    ip_net(a.get_ref())
                        .map_err(|e| ConfigError::new(format!("sources.{name}.allow_ips ({}): {e}", at(a.span()))))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let rate_limit = match &source.rate_limit {
                None => None,
                Some(r) => Some(u32::try_from(*r.get_ref()).ok().filter(|n| *n > 0).ok_or_else(|| {
                    ConfigError::new(format!(
                        "sources.{name}.rate_limit ({}): {} is not a number of pushes per second (1 or more); leave it out for no limit",
                        at(r.span()),
                        r.get_ref()
                    ))
                })?),
            };
            let field_map = source.field_map.iter().map(|(k, v)| (k.clone(), v.get_ref().clone()));
            let rules = SourceRules::new(source.accept_types.clone(), field_map).map_err(|e| {
                let line = source.field_map.get(&e.incoming).map(|v| at(v.span())).unwrap_or_else(|| where_.clone());
                ConfigError::new(format!("sources.{name}.field_map ({line}): {e}"))
            })?;
            let relay = sources::relay_targets(name, &source.relay, &at)?;
            let mapped = sources::mapped(
                name,
                sources::FileMapped {
                    kind: source.kind.as_ref(),
                    identity: source.identity.as_ref(),
                    company: source.company.as_ref(),
                    chat: source.chat.as_ref(),
                    messages: source.messages.as_ref(),
                    visitor_values: &source.visitor_values,
                    answer: source.answer.as_ref(),
                    map: &source.map,
                    message_keys: &source.message_keys,
                    signature: source.signature.as_ref(),
                },
                &at,
            )?;
            let (kind, secret) = sources::kind_and_secret(
                name,
                source.kind.as_ref(),
                source.secret.as_ref(),
                mapped.as_ref().is_some_and(|m| m.signature.is_some()),
                &at,
            )?;
            sources.insert(
                name.clone(),
                SourceConfig {
                    name: name.clone(),
                    token,
                    previous_tokens,
                    allow_ips,
                    rate_limit,
                    rules,
                    relay,
                    kind,
                    secret,
                    mapped,
                },
            );
        }
        if sources.is_empty() {
            sources.insert(
                DEFAULT_SOURCE.to_string(),
                SourceConfig {
                    name: DEFAULT_SOURCE.to_string(),
                    token: push_token_env.clone(),
                    previous_tokens: Vec::new(),
                    allow_ips: Vec::new(),
                    rate_limit: None,
                    rules: SourceRules::default(),
                    relay: Vec::new(),
                    kind: Default::default(),
                    secret: None,
                    mapped: None,
                },
            );
            if let Some(t) = &push_token_env {
                unique_token(&mut token_origins, t, &env_where(env::PUSH_TOKEN))?;
            }
        } else if push_token_env.is_some() && !sources.contains_key(DEFAULT_SOURCE) {
            return Err(ConfigError::new(format!(
                "{} sets the token of the source \"{DEFAULT_SOURCE}\", which the configuration does not define: add [sources.{DEFAULT_SOURCE}] or unset the variable",
                env::PUSH_TOKEN
            )));
        }
        let trusted_proxies = file
            .trusted_proxies
            .iter()
            .map(|a| {
                ip_net(a.get_ref()).map_err(|e| ConfigError::new(format!("trusted_proxies ({}): {e}", at(a.span()))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let spool_dir = var(env::SPOOL_DIR)
            .or_else(|| file.spool_dir.as_ref().map(|s| s.get_ref().clone()))
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let tags = scoring::tags(&file.tags, &at)?;
        let scoring = scoring::scoring(file.score.as_ref(), &tags, &at)?;
        let mut built = routing::build(
            routing::FileRouting {
                public_url: file.public_url,
                rules: file.rules,
                groups: file.groups,
                owner_map: file.owner_map,
                sinks: file.sinks,
                delivery: file.delivery,
            },
            &at,
            &var,
        )?;
        // Issue #11: the writer queues each source's relays with the push itself.
        built.routing.relays = sources
            .values()
            .filter(|s| !s.relay.is_empty())
            .map(|s| (s.name.clone(), s.relay.iter().map(|r| r.name.clone()).collect()))
            .collect();
        Ok(Config {
            listen,
            database_url,
            admin_token,
            max_body_bytes,
            write_queue,
            queue_pushes_above,
            pool_size,
            postgres_writers,
            sources,
            tags,
            scoring,
            trusted_proxies,
            public_url: built.public_url,
            routing: built.routing,
            sinks: built.sinks,
            delivery: built.delivery,
            spool_dir,
        })
    }
}

/// An address (`203.0.113.7`, `::1`) or a network (`203.0.113.0/24`).
fn ip_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("\"{text}\" is neither an IP address nor a network such as 203.0.113.0/24"))
}

/// Refuses a token already used by another source or the admin: the push URL given to a vendor
/// must not open the API, nor another source.
fn unique_token(seen: &mut Vec<(String, String)>, token: &str, here: &str) -> Result<(), ConfigError> {
    if let Some((_, other)) = seen.iter().find(|(existing, _)| existing == token) {
        return Err(ConfigError::new(format!(
            "{here} is the same token as {other}: every source and the admin need a token of their own"
        )));
    }
    seen.push((token.to_string(), here.to_string()));
    Ok(())
}

fn check_token(token: &str, key: &str, where_: &str) -> Result<String, ConfigError> {
    let token = token.trim();
    if token.len() < 16 {
        return Err(ConfigError::new(format!(
            "{key} ({where_}): a token must be at least 16 characters long; leave the key out to have one generated"
        )));
    }
    Ok(token.to_string())
}

/// A whole number of at least `min` from the environment, else the file, else `default`.
fn at_least(
    min: i64,
    from_env: Option<String>,
    from_file: Option<&Spanned<i64>>,
    key: &str,
    env_name: &str,
    default: usize,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
) -> Result<usize, ConfigError> {
    let (value, where_) = match (from_env, from_file) {
        (Some(v), _) => (v.trim().parse::<i64>().ok(), format!("environment variable {env_name}")),
        (None, Some(s)) => (Some(*s.get_ref()), at(s.span())),
        (None, None) => return Ok(default),
    };
    let expected = if min > 0 { "a positive whole number" } else { "a whole number, 0 or more" };
    value
        .filter(|v| *v >= min)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| ConfigError::new(format!("{key} ({where_}): expected {expected}")))
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn previous_tokens_allow_ips_rate_limit_and_proxies() {
        let text = "trusted_proxies = [\"127.0.0.1\"]\n[sources.easyliao]\ntoken = \"new-token-0123456789\"\nprevious_tokens = [\"old-token-0123456789\"]\nallow_ips = [\"203.0.113.0/24\", \"198.51.100.7\"]\nrate_limit = 50\n";
        let c = Config::from_toml(text, "x.toml", no_env).unwrap();
        let s = &c.sources["easyliao"];
        assert_eq!(s.previous_tokens, ["old-token-0123456789"]);
        assert_eq!(
            s.allow_ips.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            ["203.0.113.0/24", "198.51.100.7/32"]
        );
        assert_eq!(s.rate_limit, Some(50));
        assert_eq!(c.trusted_proxies[0].to_string(), "127.0.0.1/32");

        let bad = |t: &str| Config::from_toml(t, "x.toml", no_env).unwrap_err().to_string();
        let e = bad("[sources.easyliao]\ntoken = \"new-token-0123456789\"\nallow_ips = [\"10.0.0.300\"]\n");
        assert!(e.contains("sources.easyliao.allow_ips (x.toml line 3)") && e.contains("10.0.0.300"), "{e}");
        let e =
            bad("[sources.easyliao]\ntoken = \"new-token-0123456789\"\nprevious_tokens = [\"new-token-0123456789\"]\n");
        assert!(e.contains("same token"), "{e}");
        let e = bad("[sources.easyliao]\nprevious_tokens = [\"old-token-0123456789\"]\n");
        assert!(e.contains("xiansuo token rotate easyliao"), "{e}");
        let e = bad("[sources.easyliao]\nrate_limit = 0\n");
        assert!(e.contains("sources.easyliao.rate_limit"), "{e}");
    }

    #[test]
    fn tags_and_score_weights() {
        let text = "[tags.101]\nname = \"高意向\"\ncolour = \"#d4380d\"\nscore = 25\n\n[score]\nvalid_mobile = 40\nintent_words = [\"学费\", \" \"]\n";
        let c = Config::from_toml(text, "x.toml", no_env).unwrap();
        assert_eq!(c.tags.get("101").map(|t| t.name.as_str()), Some("高意向"));
        assert_eq!(c.scoring.valid_mobile, 40);
        assert_eq!(c.scoring.found_in_chat, Scoring::default().found_in_chat, "unset weights keep their default");
        assert_eq!(c.scoring.intent_words, ["学费"]);
        assert_eq!(c.scoring.tag_points.get("101"), Some(&25));

        let bad = Config::from_toml("[tags.7]\nname = \"x\"\ncolour = \"red\"\n", "x.toml", no_env).unwrap_err();
        assert!(bad.to_string().contains("tags.7.colour (x.toml line 1)"), "{bad}");
        assert!(bad.to_string().contains("#rrggbb"), "{bad}");
        let bad = Config::from_toml("[score]\ntagged = 500\n", "x.toml", no_env).unwrap_err();
        assert!(bad.to_string().contains("score.tagged"), "{bad}");
        let bad = Config::from_toml("[score]\nvalid_mobiles = 5\n", "x.toml", no_env).unwrap_err();
        assert!(bad.to_string().contains("valid_mobiles"), "{bad}");
    }

    #[test]
    fn defaults_without_a_file() {
        let c = Config::from_toml("", "", no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, DatabaseUrl::Sqlite("./xiansuo-data/xiansuo.db".into()));
        assert_eq!(c.max_body_bytes, 2 * 1024 * 1024);
        assert_eq!(c.sources.keys().collect::<Vec<_>>(), vec!["easyliao"]);
        assert!(c.sources["easyliao"].token.is_none());
        assert!(c.admin_token.is_none());
        assert_eq!((c.pool_size, c.postgres_writers), (16, 4), "four writers unless set");
    }

    #[test]
    fn queue_pushes_above_takes_zero_and_refuses_negatives() {
        assert_eq!(Config::from_toml("", "x.toml", no_env).unwrap().queue_pushes_above, DEFAULT_QUEUE_PUSHES_ABOVE);
        assert_eq!(Config::from_toml("queue_pushes_above = 0\n", "x.toml", no_env).unwrap().queue_pushes_above, 0);
        let env = |k: &str| (k == "XIANSUO_QUEUE_PUSHES_ABOVE").then(|| "512".to_string());
        assert_eq!(Config::from_toml("queue_pushes_above = 3\n", "x.toml", env).unwrap().queue_pushes_above, 512);
        let bad = Config::from_toml("\nqueue_pushes_above = -1\n", "x.toml", no_env).unwrap_err();
        assert_eq!(bad.to_string(), "queue_pushes_above (x.toml line 2): expected a whole number, 0 or more");
        let env = |k: &str| (k == "XIANSUO_QUEUE_PUSHES_ABOVE").then(|| "many".to_string());
        let bad = Config::from_toml("", "x.toml", env).unwrap_err();
        assert!(bad.to_string().contains("environment variable XIANSUO_QUEUE_PUSHES_ABOVE"), "{bad}");
    }

    #[test]
    fn postgres_writers_are_four_unless_set() {
        let c = Config::from_toml("pool_size = 64\n", "x.toml", no_env).unwrap();
        assert_eq!(c.postgres_writers, 4);
        let c = Config::from_toml("pool_size = 2\n", "x.toml", no_env).unwrap();
        assert_eq!(c.postgres_writers, 2, "never more than the connections");
        let c = Config::from_toml("pool_size = 64\npostgres_writers = 3\n", "x.toml", no_env).unwrap();
        assert_eq!(c.postgres_writers, 3);
        let c = Config::from_toml("pool_size = 4\npostgres_writers = 8\n", "x.toml", no_env).unwrap();
        assert_eq!(c.postgres_writers, 4, "never more than the connections");
        let env = |k: &str| (k == "XIANSUO_POSTGRES_WRITERS").then(|| "2".to_string());
        assert_eq!(Config::from_toml("", "", env).unwrap().postgres_writers, 2);
        let bad = Config::from_toml("postgres_writers = 0\n", "x.toml", no_env).unwrap_err();
        assert!(bad.to_string().contains("postgres_writers (x.toml line 1)"), "{bad}");
    }

    #[test]
    fn database_urls_print_without_passwords() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db.internal:5432/xiansuo").unwrap();
        assert_eq!(url.to_string(), "postgres://app@db.internal:5432/xiansuo");
        assert_eq!(DatabaseUrl::parse("sqlite://./x.db").unwrap().to_string(), "sqlite://./x.db");
    }

    #[test]
    fn environment_wins_over_the_file() {
        let text = "listen = \"127.0.0.1:9000\"\n[sources.easyliao]\ntoken = \"file-token-0123456789\"\n";
        let env = |k: &str| match k {
            "XIANSUO_LISTEN" => Some("0.0.0.0:7000".to_string()),
            "XIANSUO_PUSH_TOKEN" => Some("env-token-0123456789".to_string()),
            "XIANSUO_DATABASE_URL" => Some("postgres://x@localhost/db".to_string()),
            _ => None,
        };
        let c = Config::from_toml(text, "x.toml", env).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:7000");
        assert_eq!(c.sources["easyliao"].token.as_deref(), Some("env-token-0123456789"));
        assert_eq!(c.database_url, DatabaseUrl::Postgres("postgres://x@localhost/db".into()));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::from_toml("listen = \"127.0.0.1:1\"\nlisten_port = 3\n", "x.toml", no_env).unwrap_err();
        assert!(err.message.contains("listen_port"), "{}", err.message);
        assert!(err.message.contains("line 2"), "{}", err.message);
    }

    #[test]
    fn unknown_source_key_names_key_and_line() {
        let err =
            Config::from_toml("[sources.easyliao]\ntoken = \"0123456789abcdef\"\naccept_type = []\n", "x.toml", no_env)
                .unwrap_err();
        assert!(err.message.contains("accept_type"), "{}", err.message);
        assert!(err.message.contains("line 3"), "{}", err.message);
    }

    #[test]
    fn bad_database_url_names_key_and_line() {
        let err = Config::from_toml("\n\ndatabase_url = \"mysql://x\"\n", "x.toml", no_env).unwrap_err();
        assert!(err.message.contains("database_url (x.toml line 3)"), "{}", err.message);
    }

    #[test]
    fn duplicate_tokens_are_refused() {
        let text = "[sources.a]\ntoken = \"same-token-0123456789\"\n[sources.b]\ntoken = \"same-token-0123456789\"\n";
        let err = Config::from_toml(text, "x.toml", no_env).unwrap_err();
        assert!(err.message.contains("sources.b.token (x.toml line 3)"), "{}", err.message);
        assert!(err.message.contains("sources.a.token"), "{}", err.message);
    }

    #[test]
    fn field_map_to_unknown_key_is_refused_with_line() {
        let text = "[sources.easyliao]\n[sources.easyliao.field_map]\n\"客户手机\" = \"mobil\"\n";
        let err = Config::from_toml(text, "x.toml", no_env).unwrap_err();
        assert!(err.message.contains("line 3"), "{}", err.message);
        assert!(err.message.contains("mobil"), "{}", err.message);
    }

    #[test]
    fn field_map_renames_apply() {
        let text = "[sources.easyliao.field_map]\n\"客户手机\" = \"mobile\"\n";
        let c = Config::from_toml(text, "x.toml", no_env).unwrap();
        let target = c.sources["easyliao"].rules.target("客户手机");
        assert!(matches!(target, Some(xiansuo_push::Target::Field(f)) if f.key == "mobile"));
    }

    #[test]
    fn bad_listen_and_short_tokens_are_refused() {
        assert!(Config::from_toml("listen = \"localhost\"", "x", no_env).unwrap_err().message.contains("listen"));
        assert!(Config::from_toml("admin_token = \"short\"", "x", no_env).unwrap_err().message.contains("16"));
        assert!(Config::from_toml("max_body_bytes = 0", "x", no_env).unwrap_err().message.contains("max_body_bytes"));
        assert!(Config::from_toml("[sources.\"Bad Name\"]", "x", no_env).unwrap_err().message.contains("a-z"));
    }

    #[test]
    fn tokens_from_the_environment_are_checked_too() {
        let same = |k: &str| {
            matches!(k, "XIANSUO_PUSH_TOKEN" | "XIANSUO_ADMIN_TOKEN").then(|| "one-token-for-both-0123".to_string())
        };
        let err = Config::from_toml("", "", same).unwrap_err();
        assert!(err.message.contains("same token"), "{}", err.message);
        let short = |k: &str| (k == "XIANSUO_ADMIN_TOKEN").then(|| "short".to_string());
        assert!(Config::from_toml("", "", short).unwrap_err().message.contains("XIANSUO_ADMIN_TOKEN"));
    }

    #[test]
    fn push_token_env_needs_the_default_source() {
        let env = |k: &str| (k == "XIANSUO_PUSH_TOKEN").then(|| "env-token-0123456789".to_string());
        let err = Config::from_toml("[sources.other]\n", "x", env).unwrap_err();
        assert!(err.message.contains("XIANSUO_PUSH_TOKEN"), "{}", err.message);
    }
}

//! The configuration of issue #6: assignment rules (`[[rules]]`, `[groups]`, `[owner_map]`),
//! outbound sinks (`[[sinks]]`), delivery (`[delivery]`) and `public_url`.
//!
//! ```toml
//! public_url = "https://leads.example.com"
//!
//! [groups]
//! beijing = ["li", "wang"]
//!
//! [owner_map]                 # the vendor's userId → a local user; wins over the rules
//! "AI-omg122TianA" = "li"
//!
//! [[rules]]
//! name = "北京百度"
//! city = "北京"
//! search_engine = ["百度", "baidu"]
//! hours = "09:00-18:00"
//! group = "beijing"
//! strategy = "least_loaded"
//!
//! [[rules]]
//! name = "其余"
//! assign_to = "zhao"
//!
//! [[sinks]]
//! name = "crm"
//! kind = "webhook"            # webhook | wecom | dingtalk | feishu
//! url = "https://crm.example.com/hooks/xiansuo"
//! secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
//! events = ["lead.created", "lead.assigned"]
//!
//! [delivery]
//! timeout_ms = 10000
//! max_attempts = 15
//! backoff_ms = 5000
//! max_backoff_ms = 3600000
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use toml::Spanned;
use xiansuo_domain::routing::{Condition, EventKind, MatchField, Routing, Rule, SinkFilter, Strategy, Target};

use crate::ConfigError;

/// Where a sink's events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Any HTTP endpoint: the event as JSON, signed per Standard Webhooks.
    Webhook,
    /// 企业微信 group robot.
    Wecom,
    /// 钉钉 robot (signed when it has a secret).
    Dingtalk,
    /// 飞书 bot (signed when it has a secret).
    Feishu,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Wecom => "wecom",
            SinkKind::Dingtalk => "dingtalk",
            SinkKind::Feishu => "feishu",
        }
    }

    fn parse(s: &str) -> Option<SinkKind> {
        [SinkKind::Webhook, SinkKind::Wecom, SinkKind::Dingtalk, SinkKind::Feishu].into_iter().find(|k| k.as_str() == s)
    }

    /// Chat robots get a message per event: by default only new leads (the message names the
    /// owner the rules gave it).
    fn default_events(self) -> Vec<EventKind> {
        match self {
            SinkKind::Webhook => EventKind::ALL.to_vec(),
            _ => vec![EventKind::Created],
        }
    }
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    /// Webhook: `whsec_` + base64 (required). DingTalk, Feishu: the robot's signing secret.
    pub secret: Option<String>,
    pub filter: SinkFilter,
}

/// How deliveries are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// One attempt's time limit.
    pub timeout: Duration,
    /// Attempts before an event is dead for a sink.
    pub max_attempts: u32,
    /// The wait after the first failure; doubled after each (with jitter), up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// How often the worker looks for due deliveries when nothing wakes it.
    pub poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: Duration::from_secs(10),
            max_attempts: 15,
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(3600),
            poll: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.trim().to_string()],
            OneOrMany::Many(v) => v.iter().map(|s| s.trim().to_string()).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRule {
    name: Option<String>,
    source: Option<OneOrMany>,
    subject: Option<OneOrMany>,
    campus: Option<OneOrMany>,
    province: Option<OneOrMany>,
    city: Option<OneOrMany>,
    keyword: Option<OneOrMany>,
    keyword_regex: Option<Spanned<String>>,
    search_engine: Option<OneOrMany>,
    tag: Option<OneOrMany>,
    site: Option<OneOrMany>,
    hours: Option<Spanned<String>>,
    assign_to: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    strategy: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSink {
    name: Option<String>,
    kind: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
    events: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDelivery {
    timeout_ms: Option<Spanned<i64>>,
    max_attempts: Option<Spanned<i64>>,
    backoff_ms: Option<Spanned<i64>>,
    max_backoff_ms: Option<Spanned<i64>>,
    poll_ms: Option<Spanned<i64>>,
}

/// The file's issue-#6 sections.
#[derive(Debug, Default)]
pub(crate) struct FileRouting {
    pub public_url: Option<Spanned<String>>,
    pub rules: Vec<Spanned<FileRule>>,
    pub groups: BTreeMap<String, Spanned<Vec<String>>>,
    pub owner_map: BTreeMap<String, Spanned<String>>,
    pub sinks: Vec<Spanned<FileSink>>,
    pub delivery: Option<Spanned<FileDelivery>>,
}

/// What the sections become.
pub(crate) struct Built {
    pub public_url: Option<String>,
    pub routing: Routing,
    pub sinks: Vec<SinkConfig>,
    pub delivery: DeliveryConfig,
}

/// Environment variables of this part.
pub mod env {
    pub const PUBLIC_URL: &str = "XIANSUO_PUBLIC_URL";
    pub const DELIVERY_TIMEOUT_MS: &str = "XIANSUO_DELIVERY_TIMEOUT_MS";
    pub const DELIVERY_MAX_ATTEMPTS: &str = "XIANSUO_DELIVERY_MAX_ATTEMPTS";
    pub const DELIVERY_BACKOFF_MS: &str = "XIANSUO_DELIVERY_BACKOFF_MS";
}

fn err(message: String) -> ConfigError {
    ConfigError { message }
}

pub(crate) fn valid_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.chars().any(char::is_whitespace))
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

pub(crate) fn build(
    file: FileRouting,
    at: &dyn Fn(std::ops::Range<usize>) -> String,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Built, ConfigError> {
    let public_url = match var(env::PUBLIC_URL) {
        Some(v) => Some((v, format!("environment variable {}", env::PUBLIC_URL))),
        None => file.public_url.as_ref().map(|s| (s.get_ref().clone(), at(s.span()))),
    };
    let public_url = match public_url {
        None => None,
        Some((url, where_)) => {
            let url = url.trim().trim_end_matches('/').to_string();
            if !valid_http_url(&url) {
                return Err(err(format!(
                    "public_url ({where_}): \"{url}\" is not an http:// or https:// address such as https://leads.example.com"
                )));
            }
            Some(url)
        }
    };

    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, members) in &file.groups {
        let where_ = at(members.span());
        let list: Vec<String> = members.get_ref().iter().map(|m| m.trim().to_string()).collect();
        if list.is_empty() {
            return Err(err(format!("groups.{name} ({where_}): a group needs at least one user")));
        }
        for m in &list {
            xiansuo_domain::valid_user_name(m)
                .map_err(|e| err(format!("groups.{name} ({where_}): \"{m}\" is not a user name: {e}")))?;
        }
        groups.insert(name.clone(), list);
    }

    let mut owner_map = BTreeMap::new();
    for (vendor, user) in &file.owner_map {
        let name = xiansuo_domain::valid_user_name(user.get_ref()).map_err(|e| {
            err(format!("owner_map.\"{vendor}\" ({}): \"{}\" is not a user name: {e}", at(user.span()), user.get_ref()))
        })?;
        owner_map.insert(vendor.trim().to_string(), name.to_string());
    }

    let mut rules = Vec::new();
    let mut rule_names = BTreeSet::new();
    for (i, spanned) in file.rules.iter().enumerate() {
        let where_ = at(spanned.span());
        let r = spanned.get_ref();
        let name = r.name.as_deref().map(str::trim).unwrap_or("").to_string();
        let here = format!("rules[{i}] \"{name}\" ({where_})");
        if name.is_empty() {
            return Err(err(format!(
                "rules[{i}] ({where_}): every rule needs a name (it is recorded with each assignment)"
            )));
        }
        if name == xiansuo_domain::routing::OWNER_MAP_RULE {
            return Err(err(format!(
                "{here}: \"owner_map\" names assignments by the vendor's owner; choose another name"
            )));
        }
        if !rule_names.insert(name.clone()) {
            return Err(err(format!("{here}: another rule has this name")));
        }
        let mut conditions = Vec::new();
        for (field, values) in [
            (MatchField::Source, &r.source),
            (MatchField::Subject, &r.subject),
            (MatchField::Campus, &r.campus),
            (MatchField::Province, &r.province),
            (MatchField::City, &r.city),
            (MatchField::SearchEngine, &r.search_engine),
            (MatchField::Tag, &r.tag),
            (MatchField::Site, &r.site),
        ] {
            if let Some(v) = values {
                let values = v.values();
                if values.is_empty() || values.iter().any(String::is_empty) {
                    return Err(err(format!("{here}: {} has an empty value", field.key())));
                }
                conditions.push(Condition::Field { field, values });
            }
        }
        if let Some(k) = &r.keyword {
            let words = k.values();
            if words.is_empty() || words.iter().any(String::is_empty) {
                return Err(err(format!("{here}: keyword has an empty value")));
            }
            conditions.push(Condition::Keyword(words));
        }
        if let Some(re) = &r.keyword_regex {
            let compiled = regex::Regex::new(re.get_ref()).map_err(|e| {
                err(format!("rules[{i}] \"{name}\".keyword_regex ({}): not a regular expression: {e}", at(re.span())))
            })?;
            conditions.push(Condition::KeywordRegex(compiled));
        }
        if let Some(h) = &r.hours {
            let parsed = h.get_ref().split_once('-').and_then(|(a, b)| Some((parse_hhmm(a)?, parse_hhmm(b)?)));
            match parsed {
                Some((from, to)) if from != to => conditions.push(Condition::Hours { from, to }),
                _ => {
                    return Err(err(format!(
                        "rules[{i}] \"{name}\".hours ({}): \"{}\" is not a time range such as \"09:00-18:00\" (China time; \"18:00-09:00\" spans midnight)",
                        at(h.span()),
                        h.get_ref()
                    )));
                }
            }
        }
        let target = match (&r.assign_to, &r.group) {
            (Some(user), None) => {
                if r.strategy.is_some() {
                    return Err(err(format!("{here}: strategy goes with group, not with assign_to")));
                }
                let u = xiansuo_domain::valid_user_name(user.get_ref())
                    .map_err(|e| err(format!("rules[{i}] \"{name}\".assign_to ({}): {e}", at(user.span()))))?;
                Target::User(u.to_string())
            }
            (None, Some(group)) => {
                let members = groups.get(group.get_ref().trim()).cloned().ok_or_else(|| {
                    err(format!(
                        "rules[{i}] \"{name}\".group ({}): there is no group \"{}\" under [groups]",
                        at(group.span()),
                        group.get_ref()
                    ))
                })?;
                let strategy = match r.strategy.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
                    None | Some(("round_robin", _)) => Strategy::RoundRobin,
                    Some(("least_loaded", _)) => Strategy::LeastLoaded,
                    Some((other, span)) => {
                        return Err(err(format!(
                            "rules[{i}] \"{name}\".strategy ({}): \"{other}\" is not round_robin or least_loaded",
                            at(span)
                        )));
                    }
                };
                Target::Group { name: group.get_ref().trim().to_string(), members, strategy }
            }
            _ => {
                return Err(err(format!(
                    "{here}: a rule assigns either to a user (assign_to = \"name\") or to a group (group = \"name\"), exactly one"
                )));
            }
        };
        rules.push(Rule { name, conditions, target });
    }

    let mut sinks = Vec::new();
    let mut sink_names = BTreeSet::new();
    for (i, spanned) in file.sinks.iter().enumerate() {
        let where_ = at(spanned.span());
        let s = spanned.get_ref();
        let name = s.name.as_deref().map(str::trim).unwrap_or("").to_string();
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(err(format!(
                "sinks[{i}] ({where_}): every sink needs a name of a-z, 0-9, - and _ (deliveries are kept under it)"
            )));
        }
        let here = format!("sinks[{i}] \"{name}\"");
        if !sink_names.insert(name.clone()) {
            return Err(err(format!("{here} ({where_}): another sink has this name")));
        }
        let kind = match &s.kind {
            Some(k) => SinkKind::parse(k.get_ref().trim()).ok_or_else(|| {
                err(format!(
                    "{here}.kind ({}): \"{}\" is not webhook, wecom, dingtalk or feishu",
                    at(k.span()),
                    k.get_ref()
                ))
            })?,
            None => {
                return Err(err(format!("{here} ({where_}): kind is missing (webhook, wecom, dingtalk or feishu)")));
            }
        };
        let url = match &s.url {
            Some(u) if valid_http_url(u.get_ref().trim()) => u.get_ref().trim().to_string(),
            Some(u) => {
                return Err(err(format!("{here}.url ({}): not an http:// or https:// address", at(u.span()))));
            }
            None => return Err(err(format!("{here} ({where_}): url is missing"))),
        };
        let secret = s.secret.as_ref().map(|s| (s.get_ref().trim().to_string(), at(s.span())));
        if kind == SinkKind::Webhook {
            match &secret {
                None => {
                    return Err(err(format!(
                        "{here} ({where_}): a webhook needs a secret, \"whsec_\" followed by base64 (receivers verify the signature with it)"
                    )));
                }
                Some((sec, w)) => {
                    let decoded = sec
                        .strip_prefix("whsec_")
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                        .filter(|k| k.len() >= 16);
                    if decoded.is_none() {
                        return Err(err(format!(
                            "{here}.secret ({w}): expected \"whsec_\" followed by the base64 of at least 16 random bytes, e.g. whsec_$(head -c 24 /dev/urandom | base64)"
                        )));
                    }
                }
            }
        }
        let events = match &s.events {
            None => kind.default_events(),
            Some(list) => {
                let mut out = Vec::new();
                for e in list.get_ref() {
                    out.push(EventKind::parse(e.trim()).ok_or_else(|| {
                        let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                        err(format!("{here}.events ({}): \"{e}\" is not one of {}", at(list.span()), known.join(", ")))
                    })?);
                }
                out
            }
        };
        let filter = SinkFilter {
            name: name.clone(),
            events,
            sources: s.sources.iter().map(|x| x.trim().to_string()).collect(),
            tags: s.tags.iter().map(|x| x.trim().to_string()).collect(),
        };
        sinks.push(SinkConfig { name, kind, url, secret: secret.map(|(s, _)| s), filter });
    }

    let mut delivery = DeliveryConfig::default();
    let d = file.delivery.as_ref().map(|d| d.get_ref());
    let ms = |env_name: Option<&str>, v: Option<&Spanned<i64>>, key: &str| -> Result<Option<u64>, ConfigError> {
        let (value, where_) = match (env_name.and_then(var), v) {
            (Some(e), _) => (e.trim().parse::<i64>().ok(), format!("environment variable {}", env_name.unwrap_or(""))),
            (None, Some(s)) => (Some(*s.get_ref()), at(s.span())),
            (None, None) => return Ok(None),
        };
        value
            .filter(|v| *v > 0)
            .map(|v| Some(v as u64))
            .ok_or_else(|| err(format!("delivery.{key} ({where_}): expected a positive whole number")))
    };
    if let Some(v) = ms(Some(env::DELIVERY_TIMEOUT_MS), d.and_then(|d| d.timeout_ms.as_ref()), "timeout_ms")? {
        delivery.timeout = Duration::from_millis(v);
    }
    if let Some(v) = ms(Some(env::DELIVERY_MAX_ATTEMPTS), d.and_then(|d| d.max_attempts.as_ref()), "max_attempts")? {
        delivery.max_attempts = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = ms(Some(env::DELIVERY_BACKOFF_MS), d.and_then(|d| d.backoff_ms.as_ref()), "backoff_ms")? {
        delivery.backoff = Duration::from_millis(v);
    }
    if let Some(v) = ms(None, d.and_then(|d| d.max_backoff_ms.as_ref()), "max_backoff_ms")? {
        delivery.max_backoff = Duration::from_millis(v);
    }
    if let Some(v) = ms(None, d.and_then(|d| d.poll_ms.as_ref()), "poll_ms")? {
        delivery.poll = Duration::from_millis(v);
    }
    if delivery.max_backoff < delivery.backoff {
        delivery.max_backoff = delivery.backoff;
    }

    let routing =
        Routing { rules, owner_map, sinks: sinks.iter().map(|s| s.filter.clone()).collect(), ..Routing::default() };
    Ok(Built { public_url, routing, sinks, delivery })
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const GOOD: &str = r#"
public_url = "https://leads.example.com/"

[groups]
bj = ["li", "wang"]

[owner_map]
"AI-1" = "zhao"

[[rules]]
name = "北京"
city = "北京"
keyword = ["雅思", "托福"]
hours = "09:00-18:00"
group = "bj"
strategy = "least_loaded"

[[rules]]
name = "其余"
assign_to = "zhao"

[[sinks]]
name = "crm"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[[sinks]]
name = "group-chat"
kind = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=x"
secret = "SEC123"
events = ["lead.created"]
tags = ["VIP"]

[delivery]
timeout_ms = 500
max_attempts = 4
backoff_ms = 50
"#;

    #[test]
    fn a_full_routing_section_loads() {
        let c = Config::from_toml(GOOD, "x.toml", no_env).unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://leads.example.com"));
        assert_eq!(c.routing.rules.len(), 2);
        assert_eq!(c.routing.rules[0].conditions.len(), 3);
        assert_eq!(c.routing.owner_map["AI-1"], "zhao");
        assert_eq!(c.sinks.len(), 2);
        assert_eq!(c.sinks[0].filter.events.len(), 5);
        assert_eq!(c.sinks[1].filter.events.len(), 1);
        assert_eq!(c.delivery.max_attempts, 4);
        assert_eq!(c.delivery.timeout, std::time::Duration::from_millis(500));
        let names: Vec<String> = c.routing.user_names().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["zhao", "li", "wang", "zhao"]);
    }

    fn error(text: &str) -> String {
        Config::from_toml(text, "x.toml", no_env).unwrap_err().message
    }

    #[test]
    fn mistakes_name_the_key_and_line() {
        let e = error("[[rules]]\nname = \"a\"\ngroup = \"nope\"\n");
        assert!(e.contains("rules[0] \"a\".group (x.toml line 3)") && e.contains("nope"), "{e}");
        let e = error("[[rules]]\nname = \"a\"\n");
        assert!(e.contains("exactly one"), "{e}");
        let e = error("[[rules]]\nname = \"a\"\nassign_to = \"li\"\nhours = \"9-18\"\n");
        assert!(e.contains("hours (x.toml line 4)"), "{e}");
        let e = error("[[rules]]\nname = \"a\"\nassign_to = \"li\"\nkeyword_regex = \"(\"\n");
        assert!(e.contains("keyword_regex (x.toml line 4)"), "{e}");
        let e = error("[[rules]]\nname = \"a\"\nassign_to = \"li\"\ncolour = \"red\"\n");
        assert!(e.contains("colour") && e.contains("line 4"), "{e}");
        let e = error("[[sinks]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://x/\"\nsecret = \"plain\"\n");
        assert!(e.contains("sinks[0] \"a\".secret (x.toml line 5)"), "{e}");
        let e = error("[[sinks]]\nname = \"a\"\nkind = \"slack\"\nurl = \"http://x/\"\n");
        assert!(e.contains("kind (x.toml line 3)"), "{e}");
        let e = error("[[sinks]]\nname = \"a\"\nkind = \"wecom\"\nurl = \"http://x/\"\nevents = [\"lead.deleted\"]\n");
        assert!(e.contains("events (x.toml line 5)") && e.contains("lead.deleted"), "{e}");
        let e = error("[[rules]]\nname = \"owner_map\"\nassign_to = \"li\"\n");
        assert!(e.contains("choose another name"), "{e}");
        let e = error("public_url = \"leads.example.com\"\n");
        assert!(e.contains("public_url (x.toml line 1)"), "{e}");
        let e = error("[delivery]\nmax_attempts = 0\n");
        assert!(e.contains("delivery.max_attempts (x.toml line 2)"), "{e}");
    }
}

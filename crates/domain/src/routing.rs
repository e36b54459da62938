//! Assignment rules and outbound events (issue #6): which salesperson a new lead goes to, and
//! which events each sink wants. Pure types and matching; the store applies them inside the
//! transaction that creates or changes a lead, the configuration builds them.

use std::collections::BTreeMap;

use crate::{CHINA_TIME, Card, Instant};

/// An outbound event's kind. Each is written to the outbox in the same transaction as the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A push created the lead.
    Created,
    /// A later push (or a replay) updated the lead's card.
    Updated,
    /// Someone changed the follow-up status.
    StatusChanged,
    /// The lead got a new owner (a rule, the vendor's owner, an admin, a claim), or went back to
    /// the pool.
    Assigned,
    /// Another lead was merged into this one (the merge feature calls the outbox itself).
    Merged,
    /// Issue #11: a push body re-sent verbatim to a source's relay target. Not a lead event:
    /// not in [`EventKind::ALL`], so no sink can subscribe to it (see [`EventKind::from_stored`]).
    Relay,
}

impl EventKind {
    pub const ALL: &'static [EventKind] =
        &[EventKind::Created, EventKind::Updated, EventKind::StatusChanged, EventKind::Assigned, EventKind::Merged];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "lead.created",
            EventKind::Updated => "lead.updated",
            EventKind::StatusChanged => "lead.status_changed",
            EventKind::Assigned => "lead.assigned",
            EventKind::Merged => "lead.merged",
            EventKind::Relay => "push.relay",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// A kind as the outbox stores it: a lead event, or `push.relay` (issue #11).
    pub fn from_stored(s: &str) -> Option<EventKind> {
        if s == EventKind::Relay.as_str() { Some(EventKind::Relay) } else { EventKind::parse(s) }
    }

    /// What a chat message calls it.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Created => "新线索",
            EventKind::Updated => "线索有更新",
            EventKind::StatusChanged => "线索状态变更",
            EventKind::Assigned => "线索已分配",
            EventKind::Merged => "线索已合并",
            EventKind::Relay => "转发推送",
        }
    }
}

/// A card field a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchField {
    /// The push's source name.
    Source,
    /// `subject_name` (项目名称).
    Subject,
    /// `school_name` (校区名称).
    Campus,
    Province,
    City,
    SearchEngine,
    /// `ntag_name` or `ntag_id`.
    Tag,
    /// `site_name` or `site_id`.
    Site,
}

impl MatchField {
    pub fn key(self) -> &'static str {
        match self {
            MatchField::Source => "source",
            MatchField::Subject => "subject",
            MatchField::Campus => "campus",
            MatchField::Province => "province",
            MatchField::City => "city",
            MatchField::SearchEngine => "search_engine",
            MatchField::Tag => "tag",
            MatchField::Site => "site",
        }
    }

    /// The card's values for this field (the source is the push's).
    fn values<'a>(self, source: &'a str, card: &'a Card) -> Vec<&'a str> {
        let keys: &[&str] = match self {
            MatchField::Source => return vec![source],
            MatchField::Subject => &["subject_name"],
            MatchField::Campus => &["school_name"],
            MatchField::Province => &["province"],
            MatchField::City => &["city"],
            MatchField::SearchEngine => &["search_engine"],
            MatchField::Tag => &["ntag_name", "ntag_id"],
            MatchField::Site => &["site_name", "site_id"],
        };
        keys.iter().filter_map(|k| card.get(k)).map(str::trim).collect()
    }
}

/// One condition of a rule; a rule matches when all of its conditions do.
#[derive(Debug, Clone)]
pub enum Condition {
    /// The field equals one of the values (trimmed; ASCII letters in any case). Province and
    /// city also match by prefix, so "山西" matches "山西省".
    Field { field: MatchField, values: Vec<String> },
    /// `keyword` or `bidding_word` contains one of these (ASCII letters in any case).
    Keyword(Vec<String>),
    /// `keyword` or `bidding_word` matches this regular expression.
    KeywordRegex(regex::Regex),
    /// The lead arrives within this time of day, China time: minutes since midnight, from
    /// inclusive, to exclusive; `from > to` wraps past midnight ("18:00-09:00").
    Hours { from: u32, to: u32 },
}

impl Condition {
    pub fn matches(&self, source: &str, card: &Card, at: Instant) -> bool {
        match self {
            Condition::Field { field, values } => {
                let prefix = matches!(field, MatchField::Province | MatchField::City);
                field.values(source, card).iter().any(|have| {
                    values.iter().any(|want| {
                        have.eq_ignore_ascii_case(want)
                            || (prefix && !want.is_empty() && have.starts_with(want.as_str()))
                    })
                })
            }
            Condition::Keyword(words) => keywords(card).any(|k| {
                let k = k.to_ascii_lowercase();
                words.iter().any(|w| k.contains(&w.to_ascii_lowercase()))
            }),
            Condition::KeywordRegex(re) => keywords(card).any(|k| re.is_match(k)),
            Condition::Hours { from, to } => {
                let local = at.with_timezone(&CHINA_TIME).time();
                let minute = chrono::Timelike::hour(&local) * 60 + chrono::Timelike::minute(&local);
                if from <= to { (*from..*to).contains(&minute) } else { minute >= *from || minute < *to }
            }
        }
    }
}

fn keywords(card: &Card) -> impl Iterator<Item = &str> {
    ["keyword", "bidding_word"].into_iter().filter_map(|k| card.get(k))
}

/// How a group picks its member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In turn, in the group's order, skipping disabled users.
    RoundRobin,
    /// The enabled member with the fewest open leads (新线索, 已联系, 有意向); ties go to the
    /// first in the group's order.
    LeastLoaded,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastLoaded => "least_loaded",
        }
    }
}

/// Whom a rule assigns to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A user, by name.
    User(String),
    /// A group's member, by name.
    Group { name: String, members: Vec<String>, strategy: Strategy },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::User(u) => write!(f, "user {u}"),
            Target::Group { name, members, strategy } => {
                write!(f, "group {name} ({}: {})", strategy.as_str(), members.join(", "))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub conditions: Vec<Condition>,
    pub target: Target,
}

impl Rule {
    pub fn matches(&self, source: &str, card: &Card, at: Instant) -> bool {
        self.conditions.iter().all(|c| c.matches(source, card, at))
    }
}

/// Which events a sink wants. Empty lists filter nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkFilter {
    pub name: String,
    pub events: Vec<EventKind>,
    pub sources: Vec<String>,
    /// Tag names or ids (`ntag_name` / `ntag_id`).
    pub tags: Vec<String>,
}

impl SinkFilter {
    pub fn wants(&self, kind: EventKind, source: &str, tags: &[&str]) -> bool {
        (self.events.is_empty() || self.events.contains(&kind))
            && (self.sources.is_empty() || self.sources.iter().any(|s| s == source))
            && (self.tags.is_empty() || self.tags.iter().any(|t| tags.contains(&t.as_str())))
    }
}

/// What a rule evaluation decided for a new lead, before the store picks a group's member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// The rule's name, or `owner_map` when the vendor's owner decided.
    pub rule: &'a str,
    pub target: Target,
}

/// The rule name recorded when the vendor's owner (`userId`) mapped to a local user.
pub const OWNER_MAP_RULE: &str = "owner_map";

/// Assignment rules and sink filters, as the store applies them.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// Evaluated in order on every new lead; the first that matches assigns.
    pub rules: Vec<Rule>,
    /// The vendor's owner (`userId`) → a local user name; wins over the rules.
    pub owner_map: BTreeMap<String, String>,
    pub sinks: Vec<SinkFilter>,
    /// Issue #11: a source's relay targets (source name → the delivery names of its targets,
    /// `relay:SOURCE:N`): every push recorded for the source is queued for each of them.
    pub relays: BTreeMap<String, Vec<String>>,
}

impl Routing {
    /// Nothing to assign and nowhere to send: the store skips its hooks.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.owner_map.is_empty() && self.sinks.is_empty()
    }

    /// The candidates for a new lead, best first: the vendor's owner when mapped, then the rules
    /// that match, in order. (The store takes the first whose user can be had: a disabled user,
    /// or a group whose members are all disabled, falls through to the next.)
    pub fn decisions<'a>(&'a self, source: &str, card: &Card, at: Instant) -> Vec<Decision<'a>> {
        let mut out = Vec::new();
        if let Some(user) = card.get("user_id").and_then(|u| self.owner_map.get(u.trim())) {
            out.push(Decision { rule: OWNER_MAP_RULE, target: Target::User(user.clone()) });
        }
        out.extend(
            self.rules
                .iter()
                .filter(|r| r.matches(source, card, at))
                .map(|r| Decision { rule: r.name.as_str(), target: r.target.clone() }),
        );
        out
    }

    /// Every user name the rules and the owner map refer to, with where (for start-up checks).
    pub fn user_names(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            self.owner_map.iter().map(|(vendor, user)| (user.clone(), format!("owner_map.\"{vendor}\""))).collect();
        for rule in &self.rules {
            match &rule.target {
                Target::User(u) => out.push((u.clone(), format!("rule \"{}\" (assign_to)", rule.name))),
                Target::Group { name, members, .. } => {
                    out.extend(members.iter().map(|m| (m.clone(), format!("groups.{name}"))));
                }
            }
        }
        out
    }
}

/// A mobile number as a chat message shows it: `158****2563`.
pub fn mask_mobile(mobile: &str) -> String {
    let chars: Vec<char> = mobile.trim().chars().collect();
    if chars.len() < 7 {
        return "****".to_string();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(pairs: &[(&'static str, &str)]) -> Card {
        let mut c = Card::default();
        for (k, v) in pairs {
            c.fields.insert(k, v.to_string());
        }
        c
    }

    fn at(hour: u32, minute: u32) -> Instant {
        // China time hour:minute on 2026-11-24.
        let local = chrono::NaiveDate::from_ymd_opt(2026, 11, 24)
            .and_then(|d| d.and_hms_opt(hour, minute, 0))
            .expect("a valid time");
        chrono::TimeZone::from_local_datetime(&CHINA_TIME, &local).single().expect("one instant").to_utc()
    }

    #[test]
    fn fields_match_exactly_and_places_by_prefix() {
        let c = card(&[("province", "山西省"), ("city", "太原市"), ("search_engine", "Baidu"), ("ntag_id", "7")]);
        let f = |field, v: &str| Condition::Field { field, values: vec![v.to_string()] };
        assert!(f(MatchField::Province, "山西").matches("easyliao", &c, at(10, 0)));
        assert!(f(MatchField::City, "太原市").matches("easyliao", &c, at(10, 0)));
        assert!(!f(MatchField::City, "北京").matches("easyliao", &c, at(10, 0)));
        assert!(f(MatchField::SearchEngine, "baidu").matches("easyliao", &c, at(10, 0)));
        assert!(!f(MatchField::SearchEngine, "bai").matches("easyliao", &c, at(10, 0)));
        assert!(f(MatchField::Tag, "7").matches("easyliao", &c, at(10, 0)));
        assert!(f(MatchField::Source, "easyliao").matches("easyliao", &c, at(10, 0)));
        assert!(!f(MatchField::Subject, "x").matches("easyliao", &c, at(10, 0)));
    }

    #[test]
    fn keywords_by_substring_or_regex() {
        let c = card(&[("keyword", "太原 IELTS 培训学校")]);
        assert!(Condition::Keyword(vec!["ielts".into()]).matches("s", &c, at(1, 0)));
        assert!(!Condition::Keyword(vec!["托福".into()]).matches("s", &c, at(1, 0)));
        let re = regex::Regex::new("^太原.*学校$").expect("regex");
        assert!(Condition::KeywordRegex(re).matches("s", &c, at(1, 0)));
        let b = card(&[("bidding_word", "雅思")]);
        assert!(Condition::Keyword(vec!["雅思".into()]).matches("s", &b, at(1, 0)));
    }

    #[test]
    fn hours_in_china_time_and_across_midnight() {
        let c = Card::default();
        let day = Condition::Hours { from: 9 * 60, to: 18 * 60 };
        assert!(day.matches("s", &c, at(9, 0)));
        assert!(day.matches("s", &c, at(17, 59)));
        assert!(!day.matches("s", &c, at(18, 0)));
        let night = Condition::Hours { from: 18 * 60, to: 9 * 60 };
        assert!(night.matches("s", &c, at(23, 30)));
        assert!(night.matches("s", &c, at(3, 0)));
        assert!(!night.matches("s", &c, at(12, 0)));
    }

    #[test]
    fn the_vendors_owner_comes_first_then_rules_in_order() {
        let routing = Routing {
            rules: vec![
                Rule {
                    name: "sx".into(),
                    conditions: vec![Condition::Field { field: MatchField::Province, values: vec!["山西".into()] }],
                    target: Target::User("li".into()),
                },
                Rule { name: "all".into(), conditions: vec![], target: Target::User("wang".into()) },
            ],
            owner_map: [("AI-1".to_string(), "zhao".to_string())].into(),
            sinks: vec![],
            relays: Default::default(),
        };
        let c = card(&[("province", "山西省"), ("user_id", "AI-1")]);
        let d = routing.decisions("easyliao", &c, at(10, 0));
        let rules: Vec<&str> = d.iter().map(|d| d.rule).collect();
        assert_eq!(rules, vec![OWNER_MAP_RULE, "sx", "all"]);
        assert_eq!(d[0].target, Target::User("zhao".into()));
        let other = card(&[("province", "河北省")]);
        assert_eq!(routing.decisions("easyliao", &other, at(10, 0))[0].rule, "all");
    }

    #[test]
    fn sink_filters() {
        let f = SinkFilter {
            name: "x".into(),
            events: vec![EventKind::Created],
            sources: vec!["easyliao".into()],
            tags: vec![],
        };
        assert!(f.wants(EventKind::Created, "easyliao", &[]));
        assert!(!f.wants(EventKind::Updated, "easyliao", &[]));
        assert!(!f.wants(EventKind::Created, "other", &[]));
        let tagged = SinkFilter { tags: vec!["VIP".into()], ..f };
        assert!(tagged.wants(EventKind::Created, "easyliao", &["VIP", "3"]));
        assert!(!tagged.wants(EventKind::Created, "easyliao", &[]));
    }

    #[test]
    fn masks_mobiles() {
        assert_eq!(mask_mobile("15812342563"), "158****2563");
        assert_eq!(mask_mobile("123"), "****");
        assert_eq!(EventKind::parse("lead.status_changed"), Some(EventKind::StatusChanged));
    }
}

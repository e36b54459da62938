//! SQL shared by the backends: list filters, orders and paging, written once with a
//! [`Dialect`] for what differs (placeholders, case-insensitive LIKE).

use xiansuo_domain::{Instant, PushOutcomeKind};

use crate::write::millis;
use crate::{LeadQuery, LeadSort, OwnerFilter, PushQuery, PushResult};

/// A bound parameter of a filter.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Int(i64),
    Time(Instant),
}

pub struct Dialect {
    /// The n-th (1-based) placeholder.
    pub placeholder: fn(usize) -> String,
    /// The operator matching a `%…%` pattern with `\` as escape, ASCII case-insensitively.
    pub like: &'static str,
    /// The index of the lead search (migration 15).
    pub search: SearchIndex,
    /// The hour of day (0 to 23, China time) of a time column, as an integer expression.
    pub china_hour: fn(&str) -> String,
    /// A test that a boolean expression is false (`false`) or true, written so that the planner
    /// reads an index on that expression by equality: SQLite needs `= false`; PostgreSQL turns
    /// `(x IS NULL) = false` into `x IS NOT NULL`, which no longer matches such an index, and
    /// needs `IS FALSE`.
    pub is_bool: fn(bool) -> &'static str,
}

/// How a backend keeps the search terms of its leads ([`crate::search`]).
#[derive(Debug, Clone, Copy)]
pub enum SearchIndex {
    /// SQLite: the FTS5 table `lead_terms`, its rowid the lead's id.
    Fts5,
    /// PostgreSQL: `lead_terms.terms`, an array with a GIN index; `search_terms()` in SQL.
    TermArray,
}

/// Columns the lead search `q` looks in.
pub const SEARCHED: &[&str] =
    &["name", "mobile", "tel", "weixin", "qq", "email", "visitor_static_id", "keyword", "note", "city"];

/// `%text%` with `%`, `_` and `\` escaped by `\`.
pub fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

struct Clauses<'d> {
    dialect: &'d Dialect,
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Clauses<'_> {
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        (self.dialect.placeholder)(self.params.len())
    }

    fn eq(&mut self, column: &str, value: Option<&str>) {
        if let Some(v) = value {
            let ph = self.bind(Param::Text(v.to_string()));
            self.clauses.push(format!("{column} = {ph}"));
        }
    }

    fn finish(self) -> (String, Vec<Param>) {
        let where_ =
            if self.clauses.is_empty() { String::new() } else { format!("WHERE {}", self.clauses.join(" AND ")) };
        (where_, self.params)
    }
}

/// `WHERE …` over `leads l` for a lead query, and its parameters.
pub fn lead_where(q: &LeadQuery, dialect: &Dialect) -> (String, Vec<Param>) {
    lead_where_with(q, dialect, true)
}

/// [`lead_where`] without the search index: the search `q` only by its `LIKE`s (for a query
/// that reads the index itself, or finds its matches dense enough to read in the list's order).
pub fn lead_where_unindexed(q: &LeadQuery, dialect: &Dialect) -> (String, Vec<Param>) {
    lead_where_with(q, dialect, false)
}

fn lead_where_with(q: &LeadQuery, dialect: &Dialect, indexed: bool) -> (String, Vec<Param>) {
    let mut c = Clauses { dialect, clauses: Vec::new(), params: Vec::new() };
    c.eq("l.source", q.source.as_deref());
    c.eq("l.status", q.status.map(|s| s.as_str()));
    c.eq("l.province", q.province.as_deref());
    c.eq("l.city", q.city.as_deref());
    c.eq("l.search_engine", q.search_engine.as_deref());
    c.eq("l.ntag_id", q.ntag_id.as_deref());
    if let Some(tag) = q.tag.as_deref() {
        let ph = c.bind(Param::Text(tag.to_string()));
        c.clauses.push(format!("(l.ntag_id = {ph} OR (l.ntag_id IS NULL AND l.ntag_name = {ph}))"));
    }
    c.eq("l.user_id", q.user_id.as_deref());
    // A lead merged into another shows there, not in lists.
    c.clauses.push("l.merged_into IS NULL".into());
    match q.owner {
        Some(OwnerFilter::Unassigned) => c.clauses.push("l.owner_id IS NULL".into()),
        Some(OwnerFilter::User(id)) => {
            let ph = c.bind(Param::Int(id));
            c.clauses.push(format!("l.owner_id = {ph}"));
        }
        None => {}
    }
    if let Some(id) = q.visible_to {
        let ph = c.bind(Param::Int(id));
        c.clauses.push(format!("(l.owner_id IS NULL OR l.owner_id = {ph})"));
    }
    if let Some(from) = q.from {
        let ph = c.bind(Param::Time(millis(from)));
        c.clauses.push(format!("l.received_at >= {ph}"));
    }
    if let Some(to) = q.to {
        let ph = c.bind(Param::Time(millis(to)));
        c.clauses.push(format!("l.received_at < {ph}"));
    }
    for (column, value) in &q.fields {
        if crate::reports::FILTER_FIELDS.contains(column) {
            c.eq(&format!("l.{column}"), Some(value));
        }
    }
    if let Some(page) = q.landing.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        let n = page.chars().count();
        let ph = c.bind(Param::Text(page.to_string()));
        c.clauses.push(format!(
            "(l.first_url = {ph} OR (substr(l.first_url, 1, {n}) = {ph} AND substr(l.first_url, {}, 1) IN ('?', '#')))",
            n + 1
        ));
    }
    if let Some(hour) = q.hour.filter(|h| *h < 24) {
        // A number checked above, written into the SQL (the backends' hour expressions differ
        // in type).
        c.clauses.push(format!("{} = {hour}", (dialect.china_hour)("l.received_at")));
    }
    for filter in &q.empty {
        match *filter {
            "landing" => c
                .clauses
                .push("(l.first_url IS NULL OR l.first_url = '' OR substr(l.first_url, 1, 1) IN ('?', '#'))".into()),
            f => {
                if let Some(column) = crate::reports::empty_filter_column(f) {
                    c.clauses.push(format!("(l.{column} IS NULL OR l.{column} = '')"));
                }
            }
        }
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        // The leads holding every term of the query (a superset of the matches), when it has
        // terms; the LIKE below decides.
        let terms = crate::search::query_terms(text);
        if indexed && !terms.is_empty() {
            let clause = match dialect.search {
                SearchIndex::Fts5 => {
                    let ph = c.bind(Param::Text(crate::search::fts5_phrase(text)));
                    format!("l.id IN (SELECT rowid FROM lead_terms WHERE lead_terms MATCH {ph})")
                }
                SearchIndex::TermArray => {
                    let ph = c.bind(Param::Text(text.to_string()));
                    format!("l.id IN (SELECT t.lead_id FROM lead_terms t WHERE t.terms @> search_terms({ph}::text))")
                }
            };
            c.clauses.push(clause);
        }
        let ph = c.bind(Param::Text(like_pattern(text)));
        let like = dialect.like;
        let any: Vec<String> = SEARCHED.iter().map(|col| format!("l.{col} {like} {ph} ESCAPE '\\'")).collect();
        c.clauses.push(format!("({})", any.join(" OR ")));
    }
    c.finish()
}

/// A lead query's `WHERE …` continued after a cursor, and the `ORDER BY` of [`crate::Store::lead_batch`]:
/// by `received_at` then id, ascending when the query's sort is `received_at`.
pub fn lead_batch_where(
    q: &LeadQuery,
    after: Option<crate::LeadCursor>,
    dialect: &Dialect,
) -> (String, Vec<Param>, &'static str) {
    let (where_, mut params) = lead_where(q, dialect);
    let asc = q.sort == LeadSort::ReceivedAsc;
    let order = if asc { "l.received_at ASC, l.id ASC" } else { "l.received_at DESC, l.id DESC" };
    let Some(cursor) = after else { return (where_, params, order) };
    params.push(Param::Time(millis(cursor.received_at)));
    let at = (dialect.placeholder)(params.len());
    params.push(Param::Int(cursor.id));
    let id = (dialect.placeholder)(params.len());
    let op = if asc { ">" } else { "<" };
    let cond = format!("(l.received_at {op} {at} OR (l.received_at = {at} AND l.id {op} {id}))");
    let where_ = if where_.is_empty() { format!("WHERE {cond}") } else { format!("{where_} AND {cond}") };
    (where_, params, order)
}

/// `WHERE …` over `pushes p` for a push log query, and its parameters.
pub fn push_where(q: &PushQuery, dialect: &Dialect) -> (String, Vec<Param>) {
    let mut c = Clauses { dialect, clauses: Vec::new(), params: Vec::new() };
    c.eq("p.outcome", q.outcome.map(|o| o.as_str()));
    c.eq("p.source", q.source.as_deref());
    c.finish()
}

/// `ORDER BY` of a lead list; ties broken by id so pages never overlap.
pub fn lead_order(sort: LeadSort) -> &'static str {
    match sort {
        LeadSort::ReceivedDesc => "l.received_at DESC, l.id DESC",
        LeadSort::ReceivedAsc => "l.received_at ASC, l.id ASC",
        LeadSort::UpdatedDesc => "l.updated_at DESC, l.id DESC",
        LeadSort::UpdatedAsc => "l.updated_at ASC, l.id ASC",
        LeadSort::CreateTimeDesc => "l.create_time IS NULL, l.create_time DESC, l.id DESC",
        LeadSort::CreateTimeAsc => "l.create_time IS NULL, l.create_time ASC, l.id ASC",
        LeadSort::ScoreDesc => "l.score DESC, l.received_at DESC, l.id DESC",
        LeadSort::ScoreAsc => "l.score ASC, l.received_at ASC, l.id ASC",
    }
}

/// The `SELECT` of a page of a lead list: `select` (columns of `leads l`), `where_` (from
/// [`lead_where`]), in the sort's order. Oldest vendor time first (`sort=create_time`) lists the
/// leads with a time, then those without: the index `leads_create_time` holds them in the opposite
/// order for the newest first, and read backwards it would put those without first; so each part
/// is read from the index on its own (at most the page's end from each) and the two are merged
/// (108 ms at 100,000 leads, 728 ms at a million, when all of them were sorted).
pub fn lead_page_sql(
    select: &str,
    where_: &str,
    sort: LeadSort,
    page: u32,
    per_page: u32,
    dialect: &Dialect,
) -> String {
    if sort != LeadSort::CreateTimeAsc && page <= 1 {
        return format!(
            "SELECT {select} FROM leads l {where_} ORDER BY {} {}",
            lead_order(sort),
            limit_offset(page, per_page)
        );
    }
    if sort != LeadSort::CreateTimeAsc {
        // A later page: the ids are found first (from the order's index alone, where it covers
        // the filter) and only the page's rows read. PostgreSQL otherwise read every skipped
        // lead's row (page 100 at 100,000 leads: 6–9 ms against 1.1–1.5 ms).
        return format!(
            "SELECT {select} FROM leads l JOIN (SELECT l.id FROM leads l {where_} ORDER BY {order} {}) AS p \
             ON p.id = l.id ORDER BY {order}",
            limit_offset(page, per_page),
            order = lead_order(sort),
        );
    }
    let and = if where_.is_empty() { "WHERE" } else { "AND" };
    let end = u64::from(page.max(1)) * u64::from(per_page);
    format!(
        "SELECT {select} FROM (\
           SELECT * FROM (SELECT l.id, l.create_time FROM leads l {where_} {and} (l.create_time IS NULL) {timed} \
                          ORDER BY l.create_time ASC, l.id ASC LIMIT {end}) AS timed \
           UNION ALL \
           SELECT * FROM (SELECT l.id, l.create_time FROM leads l {where_} {and} (l.create_time IS NULL) {untimed} \
                          ORDER BY l.id ASC LIMIT {end}) AS untimed\
         ) AS u JOIN leads l ON l.id = u.id \
         ORDER BY u.create_time IS NULL, u.create_time ASC, u.id ASC {}",
        limit_offset(page, per_page),
        timed = (dialect.is_bool)(false),
        untimed = (dialect.is_bool)(true),
    )
}

/// `WITH RECURSIVE grp(id)`: a lead and every lead merged into it (directly or through
/// another), whose messages, pushes and timeline show on it.
pub fn group_cte(placeholder: &str) -> String {
    format!(
        "WITH RECURSIVE grp(id) AS (SELECT CAST({placeholder} AS BIGINT) UNION SELECT m.id FROM leads m JOIN grp ON m.merged_into = grp.id)"
    )
}

/// `LIMIT … OFFSET …` of a page (pages count from 1).
pub fn limit_offset(page: u32, per_page: u32) -> String {
    let offset = i64::from(page.max(1) - 1) * i64::from(per_page);
    format!("LIMIT {per_page} OFFSET {offset}")
}

/// A push's outcome, error, and accepted / ignored counts.
pub fn summarize(result: &PushResult) -> (PushOutcomeKind, Option<String>, usize, usize) {
    match result {
        PushResult::Cards { cards, ignored } if cards.is_empty() => (PushOutcomeKind::Ignored, None, 0, *ignored),
        PushResult::Cards { cards, ignored } => (PushOutcomeKind::Accepted, None, cards.len(), *ignored),
        PushResult::Rejected { error } => (PushOutcomeKind::Rejected, Some(error.clone()), 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
    }
}

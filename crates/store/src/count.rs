//! How a lead list counts its total (issue 8: the inbox at a million leads).
//!
//! Counting the matching leads one by one costs as much as reading them: at a million leads the
//! count alone took longer than the page it belongs to. Two ways instead:
//! - a list filtered by dates, status and at most one dimension of the dashboard (a city, a
//!   search engine, an owner or an agent's own leads and the pool, …) — most of the inbox's
//!   views — adds up the whole days of the per-day report (`report_days` and the changes not yet
//!   folded into it, in the statement's one snapshot), and counts the leads of the partial days
//!   at either end of its range;
//! - any other list counts its matches up to [`COUNT_CAP`]; beyond that the total is a lower
//!   bound, and the page says so (`total_exact: false`).

use xiansuo_domain::LeadStatus;

use crate::LeadQuery;
use crate::query::{Dialect, Param};
use crate::reports::{DIMENSIONS, HOUR_DIM, split_days};

/// The most matches a list counts one by one (its total is then "at least this many").
pub const COUNT_CAP: u64 = 10_000;

/// `SELECT count(*)` of the leads of a `WHERE` clause over `leads l`, stopping after one more
/// than [`COUNT_CAP`] matches.
pub fn capped_count_sql(where_: &str) -> String {
    format!("SELECT count(*) FROM (SELECT 1 FROM leads l {where_} LIMIT {}) AS matches", COUNT_CAP + 1)
}

/// A count of at most `COUNT_CAP + 1`: the total, and whether it is exact.
pub fn capped(counted: i64) -> (u64, bool) {
    let counted = u64::try_from(counted).unwrap_or(0);
    if counted > COUNT_CAP { (COUNT_CAP, false) } else { (counted, true) }
}

/// A total added up from the per-day report: one statement over `report_days` and
/// `report_pending`, plus the leads of the partial days.
#[derive(Debug, Clone)]
pub struct DaysCount {
    pub sql: String,
    pub params: Vec<Param>,
    /// The partial days at either end of the range, counted from the leads (capped).
    pub scans: Vec<LeadQuery>,
}

/// The dimension a filter names, and the values of it that match (`report_days.value`: the
/// column's value, `''` for none).
fn constraints(q: &LeadQuery) -> Option<Vec<(i64, Vec<String>)>> {
    let dim_of_filter = |filter: &str| DIMENSIONS.iter().position(|d| d.filter == filter).map(|i| i as i64);
    let dim_of_column = |column: &str| DIMENSIONS.iter().position(|d| d.column == Some(column)).map(|i| i as i64);
    let mut out: Vec<(i64, Vec<String>)> = Vec::new();
    let mut add = |dim: Option<i64>, values: Vec<String>| -> Option<()> {
        let dim = dim?;
        match out.iter_mut().find(|(d, _)| *d == dim) {
            Some((_, have)) => have.retain(|v| values.contains(v)),
            None => out.push((dim, values)),
        }
        Some(())
    };
    // An empty value filters `= ''` (not NULL), which the report's `''` (no value) does not
    // tell apart: leave such a list to the leads.
    let named =
        [("province", &q.province), ("city", &q.city), ("search_engine", &q.search_engine), ("ntag_id", &q.ntag_id)];
    for (filter, value) in named {
        if let Some(v) = value {
            if v.is_empty() {
                return None;
            }
            add(dim_of_filter(filter), vec![v.clone()])?;
        }
    }
    for (column, value) in &q.fields {
        if crate::reports::FILTER_FIELDS.contains(column) {
            if value.is_empty() {
                return None;
            }
            add(dim_of_column(column), vec![value.clone()])?;
        }
    }
    if let Some(page) = q.landing.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        // `first_url` equal to the page or followed by `?` or `#`: the landing dimension's value
        // is `first_url` up to its first `?` or `#`. A page holding one of them matches
        // differently; leave it to the leads.
        if page.contains(['?', '#']) {
            return None;
        }
        add(dim_of_filter("landing"), vec![page.to_string()])?;
    }
    if let Some(hour) = q.hour.filter(|h| *h < 24) {
        add(Some(HOUR_DIM), vec![hour.to_string()])?;
    }
    for filter in &q.empty {
        if crate::reports::EMPTY_FILTERS.contains(filter) {
            add(dim_of_filter(filter), vec![String::new()])?;
        }
    }
    let owner = dim_of_filter("owner");
    match q.owner {
        Some(crate::OwnerFilter::Unassigned) => add(owner, vec![String::new()])?,
        Some(crate::OwnerFilter::User(id)) => add(owner, vec![id.to_string()])?,
        None => {}
    }
    if let Some(id) = q.visible_to {
        add(owner, vec![String::new(), id.to_string()])?;
    }
    Some(out)
}

/// The per-day report's count of a lead list, when the report can answer its filter: dates,
/// status, and values of one dimension; `None` otherwise (the search, the source, the vendor's
/// user id, a tag by name, or two dimensions at once need the leads).
pub fn days_count(q: &LeadQuery, dialect: &Dialect) -> Option<DaysCount> {
    if q.q.as_deref().is_some_and(|t| !t.trim().is_empty())
        || q.source.is_some()
        || q.user_id.is_some()
        || q.tag.is_some()
    {
        return None;
    }
    let mut dims = constraints(q)?;
    if dims.len() > 1 {
        return None;
    }
    // Every lead has an hour of day: that dimension's rows, all values, count every lead.
    let (dim, values) = dims.pop().map_or((HOUR_DIM, None), |(d, v)| (d, Some(v)));
    // Whole days and partial ones, as the report splits them.
    let ((first, end), scans) = split_days(q)?;

    let mut params = Vec::new();
    let mut bind = |p: Param| {
        params.push(p);
        (dialect.placeholder)(params.len())
    };
    let mut days_where = vec![format!("d.dim = {dim}")];
    let mut pending_where = Vec::new();
    // Cast: `day` is an INTEGER column on PostgreSQL, the parameter an i64.
    if let Some(a) = first {
        let ph = format!("CAST({} AS BIGINT)", bind(Param::Int(a)));
        days_where.push(format!("d.day >= {ph}"));
        pending_where.push(format!("p.day >= {ph}"));
    }
    if let Some(b) = end {
        let ph = format!("CAST({} AS BIGINT)", bind(Param::Int(b)));
        days_where.push(format!("d.day < {ph}"));
        pending_where.push(format!("p.day < {ph}"));
    }
    if let Some(values) = values {
        if values.is_empty() {
            // Two filters on the same dimension that no lead meets at once.
            days_where.push("1 = 0".into());
            pending_where.push("1 = 0".into());
        } else {
            let phs: Vec<String> = values.into_iter().map(|v| bind(Param::Text(v))).collect();
            let list = phs.join(", ");
            let pending_column = if dim == HOUR_DIM { "p.hour".to_string() } else { format!("p.v{dim}") };
            days_where.push(format!("d.value IN ({list})"));
            pending_where.push(format!("{pending_column} IN ({list})"));
        }
    }
    let column = match q.status {
        None => "leads",
        Some(LeadStatus::New) => "new",
        Some(LeadStatus::Contacted) => "contacted",
        Some(LeadStatus::Interested) => "interested",
        Some(LeadStatus::Won) => "won",
        Some(LeadStatus::Invalid) => "invalid",
    };
    match q.status {
        None => {}
        // As the report counts them (reports::pending_days): any other status is new.
        Some(LeadStatus::New) => {
            pending_where.push("p.status NOT IN ('contacted', 'interested', 'won', 'invalid')".into())
        }
        Some(s) => pending_where.push(format!("p.status = '{}'", s.as_str())),
    }
    let pending_where =
        if pending_where.is_empty() { String::new() } else { format!("WHERE {}", pending_where.join(" AND ")) };
    let sql = format!(
        "SELECT CAST((SELECT COALESCE(sum(d.{column}), 0) FROM report_days d WHERE {}) \
         + (SELECT COALESCE(sum(p.sign), 0) FROM report_pending p {pending_where}) AS BIGINT)",
        days_where.join(" AND ")
    );
    Some(DaysCount { sql, params, scans })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OwnerFilter;
    use crate::reports::day_start;

    fn dialect() -> Dialect {
        Dialect {
            placeholder: |n| format!("?{n}"),
            like: "LIKE",
            search: crate::query::SearchIndex::Fts5,
            china_hour: |c| format!("hour({c})"),
            is_bool: |b| if b { "= true" } else { "= false" },
        }
    }

    #[test]
    fn one_dimension_dates_and_status_come_from_the_days() {
        let q = LeadQuery { city: Some("广州市".into()), status: Some(LeadStatus::Won), ..Default::default() };
        let c = days_count(&q, &dialect()).expect("a city and a status");
        assert!(
            c.sql.contains("sum(d.won)") && c.sql.contains("d.dim = 9") && c.sql.contains("p.v9 IN (?1)"),
            "{}",
            c.sql
        );
        assert!(c.sql.contains("p.status = 'won'"));
        assert!(c.scans.is_empty());
        // No filter: every lead, through the hour of day.
        let c = days_count(&LeadQuery::default(), &dialect()).expect("no filter");
        assert!(c.sql.contains(&format!("d.dim = {HOUR_DIM}")) && !c.sql.contains("IN ("), "{}", c.sql);
    }

    #[test]
    fn an_agents_view_counts_the_pool_and_its_own_leads() {
        let q = LeadQuery { visible_to: Some(7), ..Default::default() };
        let c = days_count(&q, &dialect()).expect("visibility");
        assert!(c.sql.contains("d.value IN (?1, ?2)"), "{}", c.sql);
        assert!(matches!(&c.params[..], [Param::Text(a), Param::Text(b)] if a.is_empty() && b == "7"));
        // Its own leads only: the two filters of the owner meet in one value.
        let q = LeadQuery { visible_to: Some(7), owner: Some(OwnerFilter::User(7)), ..Default::default() };
        let c = days_count(&q, &dialect()).expect("own leads");
        assert!(matches!(&c.params[..], [Param::Text(a)] if a == "7"), "{:?}", c.params);
        // Another agent's leads: none.
        let q = LeadQuery { visible_to: Some(7), owner: Some(OwnerFilter::User(8)), ..Default::default() };
        assert!(days_count(&q, &dialect()).expect("none").sql.contains("1 = 0"));
    }

    #[test]
    fn what_the_days_cannot_answer_is_counted_from_the_leads() {
        let two =
            LeadQuery { province: Some("山西省".into()), city: Some("太原市".into()), ..Default::default() };
        assert!(days_count(&two, &dialect()).is_none());
        let search = LeadQuery { q: Some("张".into()), ..Default::default() };
        assert!(days_count(&search, &dialect()).is_none());
        let tag = LeadQuery { tag: Some("意向".into()), ..Default::default() };
        assert!(days_count(&tag, &dialect()).is_none());
    }

    #[test]
    fn partial_days_are_counted_from_the_leads() {
        let from = day_start(20_000) + chrono::Duration::hours(5);
        let to = day_start(20_010) + chrono::Duration::hours(3);
        let q = LeadQuery { from: Some(from), to: Some(to), ..Default::default() };
        let c = days_count(&q, &dialect()).expect("dates");
        assert_eq!(c.scans.len(), 2);
        assert_eq!((c.scans[0].from, c.scans[0].to), (Some(from), Some(day_start(20_001))));
        assert_eq!((c.scans[1].from, c.scans[1].to), (Some(day_start(20_010)), Some(to)));
        assert!(matches!(&c.params[..], [Param::Int(20_001), Param::Int(20_010)]), "{:?}", c.params);
    }

    #[test]
    fn a_count_past_the_cap_is_a_lower_bound() {
        assert_eq!(capped(3), (3, true));
        assert_eq!(capped(COUNT_CAP as i64), (COUNT_CAP, true));
        assert_eq!(capped(COUNT_CAP as i64 + 1), (COUNT_CAP, false));
    }
}

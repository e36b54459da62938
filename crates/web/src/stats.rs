//! The attribution report of a lead filter: `GET /api/v1/stats` and the console's dashboard
//! show the same figures (the store computes them: from its per-day table for a range of whole
//! days without other filters, in one pass over the filtered leads otherwise).
//!
//! Without `from` and `to`, the report covers the last 30 days (China time): a dashboard view
//! then reads about a month of leads, however many the installation holds.

use std::collections::HashMap;

use serde_json::{Value, json};
use xiansuo_domain::{CHINA_TIME, Instant, LeadStatus};
use xiansuo_store::reports::{Counts, DimensionStats, LeadStats};
use xiansuo_store::{LeadQuery, Store, StoreError};

/// Days a report covers when the filter names no dates.
pub const DEFAULT_DAYS: i64 = 30;
/// Segments shown per dimension.
pub const TOP: usize = 20;
/// Days listed one by one at most (a longer range lists the days that have leads).
const MAX_FILLED_DAYS: i64 = 400;

/// Rounds a share to 4 decimals; 0 when there is nothing to divide.
pub fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0 }
}

/// The stages of the funnel: 新线索 (every lead) → 已联系 → 有意向 → 已成交.
pub const FUNNEL: [LeadStatus; 4] = [LeadStatus::New, LeadStatus::Contacted, LeadStatus::Interested, LeadStatus::Won];

/// A report: the filter's figures, its effective range, and the owners' names.
pub struct Report {
    pub from: Option<Instant>,
    pub to: Option<Instant>,
    pub stats: LeadStats,
    pub owners: HashMap<i64, String>,
    /// Every day of the range with its leads (days without leads included), when the range is
    /// short enough; the days with leads otherwise.
    pub days: Vec<(chrono::NaiveDate, Counts)>,
}

/// The start of the day `days - 1` days before today, China time: the default `from`.
pub fn default_from(now: Instant, days: i64) -> Instant {
    let today = now.with_timezone(&CHINA_TIME).date_naive();
    let first = today - chrono::Duration::days(days - 1);
    first.and_hms_opt(0, 0, 0).and_then(|t| t.and_local_timezone(CHINA_TIME).single()).map_or(now, |t| t.to_utc())
}

/// Applies the default range to a filter that names no dates.
pub fn with_default_range(mut query: LeadQuery) -> LeadQuery {
    if query.from.is_none() && query.to.is_none() {
        query.from = Some(default_from(xiansuo_domain::now(), DEFAULT_DAYS));
    }
    query
}

pub async fn report(store: &dyn Store, query: LeadQuery) -> Result<Report, StoreError> {
    let query = with_default_range(query);
    let (stats, users) = tokio::try_join!(store.lead_stats(&query, TOP), store.users())?;
    let owners = users.into_iter().map(|u| (u.id, u.name)).collect();
    let days = fill_days(&stats.days, query.from, query.to);
    Ok(Report { from: query.from, to: query.to, stats, owners, days })
}

fn fill_days(
    days: &[(chrono::NaiveDate, Counts)],
    from: Option<Instant>,
    to: Option<Instant>,
) -> Vec<(chrono::NaiveDate, Counts)> {
    let first = from.map(|f| f.with_timezone(&CHINA_TIME).date_naive()).or_else(|| days.first().map(|d| d.0));
    let end = to.unwrap_or_else(xiansuo_domain::now) - chrono::Duration::milliseconds(1);
    let last = Some(end.with_timezone(&CHINA_TIME).date_naive()).max(days.last().map(|d| d.0));
    let (Some(first), Some(last)) = (first, last) else { return days.to_vec() };
    if (last - first).num_days() > MAX_FILLED_DAYS || last < first {
        return days.to_vec();
    }
    let by_day: HashMap<_, _> = days.iter().copied().collect();
    first.iter_days().take_while(|d| *d <= last).map(|d| (d, by_day.get(&d).copied().unwrap_or_default())).collect()
}

impl Report {
    /// What people read for a segment of a dimension.
    pub fn segment_label(&self, dimension: &str, value: &str, label: &str) -> String {
        match (dimension, value) {
            (_, "") => "（未填）".to_string(),
            ("owner", id) => {
                id.parse::<i64>().ok().and_then(|i| self.owners.get(&i).cloned()).unwrap_or(id.to_string())
            }
            ("tag", id) if label != id => format!("{label}（{id}）"),
            _ => label.to_string(),
        }
    }
}

fn by_status(c: &Counts) -> Value {
    let mut m = serde_json::Map::new();
    for (i, s) in LeadStatus::ALL.iter().enumerate() {
        m.insert(s.as_str().into(), json!(c.by_status[i]));
    }
    Value::Object(m)
}

/// A segment's counts and rates.
fn counts_json(c: &Counts) -> Value {
    json!({
        "leads": c.total,
        "by_status": by_status(c),
        "contact": c.contact,
        "contact_rate": rate(c.contact, c.total),
        "contacted_rate": rate(c.reached(LeadStatus::Contacted), c.total),
        "interested_rate": rate(c.reached(LeadStatus::Interested), c.total),
        "won_rate": rate(c.reached(LeadStatus::Won), c.total),
        "invalid_rate": rate(c.reached(LeadStatus::Invalid), c.total),
    })
}

fn dimension_json(report: &Report, d: &DimensionStats) -> Value {
    let segments: Vec<Value> = d
        .segments
        .iter()
        .map(|s| {
            let mut v = counts_json(&s.counts);
            v["value"] = json!(s.value);
            v["label"] = json!(report.segment_label(d.dimension.key, &s.value, &s.label));
            v
        })
        .collect();
    json!({
        "key": d.dimension.key,
        "label": d.dimension.label,
        "filter": d.dimension.filter,
        "distinct": d.distinct,
        "segments": segments,
        "others": counts_json(&d.others),
    })
}

/// The report as `GET /api/v1/stats` answers it.
pub fn report_json(report: &Report) -> Value {
    let s = &report.stats;
    let funnel: Vec<Value> = FUNNEL
        .iter()
        .map(|st| {
            let n = s.counts.reached(*st);
            json!({ "status": st.as_str(), "label": st.label(), "leads": n, "rate": rate(n, s.counts.total) })
        })
        .collect();
    let days: Vec<Value> = report
        .days
        .iter()
        .map(|(d, c)| json!({ "date": d.format("%Y-%m-%d").to_string(), "leads": c.total, "won": c.reached(LeadStatus::Won), "contact": c.contact }))
        .collect();
    let follow_up: Vec<Value> = s
        .follow_up
        .iter()
        .map(|f| {
            json!({
                "owner_id": f.owner_id,
                "owner": f.owner_id.and_then(|o| report.owners.get(&o).cloned()),
                "followed": f.followed,
                "mean_seconds": f.mean_secs,
                "median_seconds": f.median_secs,
            })
        })
        .collect();
    let mut totals = counts_json(&s.counts);
    totals["from"] = json!(report.from.map(crate::repr::time));
    totals["to"] = json!(report.to.map(crate::repr::time));
    totals["funnel"] = json!(funnel);
    totals["days"] = json!(days);
    totals["hours"] = json!(s.hours);
    totals["dimensions"] = json!(s.dimensions.iter().map(|d| dimension_json(report, d)).collect::<Vec<_>>());
    totals["follow_up"] = json!(follow_up);
    totals
}

/// `GET /api/v1/stats?<the lead list's filters>`: the attribution report (admins).
pub async fn api_stats(
    axum::extract::State(app): axum::extract::State<crate::AppState>,
    axum::extract::Extension(principal): axum::extract::Extension<crate::auth::Principal>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    crate::api::ApiQuery(p): crate::api::ApiQuery<crate::api::LeadParams>,
) -> Result<axum::Json<Value>, crate::ApiError> {
    principal.require_admin()?;
    crate::api::reject_unknown(raw.as_deref(), &[crate::api::LEAD_PARAMS])?;
    let query = crate::api::lead_query(p, &principal)?;
    let report = report(app.store.as_ref(), query).await?;
    Ok(axum::Json(report_json(&report)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_default_range() {
        assert_eq!(rate(1, 3), 0.3333);
        assert_eq!(rate(1, 0), 0.0);
        let now =
            chrono::DateTime::parse_from_rfc3339("2026-11-24T23:30:00+08:00").map(|t| t.to_utc()).unwrap_or_default();
        let from = default_from(now, 30);
        assert_eq!(crate::repr::time(from), "2026-10-26T00:00:00+08:00");
    }

    #[test]
    fn days_are_filled() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default();
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).ok();
        let c = Counts { total: 2, ..Counts::default() };
        let filled =
            fill_days(&[(d("2026-11-02"), c)], at("2026-11-01T00:00:00+08:00"), at("2026-11-04T00:00:00+08:00"));
        let days: Vec<_> = filled.iter().map(|(d, c)| (d.format("%d").to_string(), c.total)).collect();
        assert_eq!(days, [("01".into(), 0), ("02".into(), 2), ("03".into(), 0)]);
    }
}

//! `GET /dashboard` (admins): the attribution report of the inbox's filters, as bar charts
//! drawn on the server (SVG inline in the page: no script, no style attribute, every label
//! escaped by the template) with the numbers in tables beside them. Every segment links to the
//! inbox filtered to it.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use xiansuo_domain::{CHINA_TIME, LeadStatus};
use xiansuo_store::reports::Counts;

use super::pages::InboxQuery;
use super::view::{self, Me};
use super::{PageError, Signed, encode, page};
use crate::AppState;
use crate::stats::{FUNNEL, Report, rate, report};

/// Width of a horizontal chart's label column and of its longest bar, in SVG units.
const LABEL_W: u32 = 170;
const BAR_W: u32 = 300;
const ROW_H: u32 = 22;

/// A bar of a horizontal bar chart.
pub struct HBar {
    pub y: u32,
    pub text_y: u32,
    pub width: u32,
    pub value_x: u32,
    pub label: String,
    pub value: String,
    pub href: Option<String>,
}

pub struct HChart {
    pub width: u32,
    pub height: u32,
    pub label_x: u32,
    pub bar_x: u32,
    pub bars: Vec<HBar>,
}

fn hchart(items: &[(String, u64, String, Option<String>)]) -> HChart {
    let max = items.iter().map(|i| i.1).max().unwrap_or(0).max(1);
    let bars = items
        .iter()
        .enumerate()
        .map(|(i, (label, n, value, href))| {
            let y = i as u32 * ROW_H;
            let width = ((*n as f64 / max as f64) * f64::from(BAR_W)).round() as u32;
            let short: String = if label.chars().count() > 14 {
                label.chars().take(13).chain(['…']).collect()
            } else {
                label.clone()
            };
            HBar {
                y: y + 3,
                text_y: y + 16,
                width: width.max(u32::from(*n > 0)),
                value_x: LABEL_W + width + 6,
                label: short,
                value: value.clone(),
                href: href.clone(),
            }
        })
        .collect();
    HChart {
        width: LABEL_W + BAR_W + 90,
        height: (items.len() as u32 * ROW_H).max(ROW_H),
        label_x: LABEL_W - 6,
        bar_x: LABEL_W,
        bars,
    }
}

/// A column of a column chart (leads per day or per hour).
pub struct Column {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub title: String,
    pub href: Option<String>,
}

pub struct VChart {
    pub width: u32,
    pub height: u32,
    pub max: u64,
    pub columns: Vec<Column>,
    /// Axis labels under some columns: (x, text).
    pub ticks: Vec<(u32, String)>,
    pub axis_y: u32,
}

fn vchart(items: &[(String, u64, Option<String>)], tick_every: usize) -> VChart {
    const H: u32 = 120;
    let w: u32 = if items.len() > 60 {
        6
    } else if items.len() > 30 {
        10
    } else {
        18
    };
    let max = items.iter().map(|i| i.1).max().unwrap_or(0);
    let columns = items
        .iter()
        .enumerate()
        .map(|(i, (title, n, href))| {
            let height = if max == 0 { 0 } else { ((*n as f64 / max as f64) * f64::from(H)).round() as u32 };
            Column {
                x: i as u32 * w,
                y: H - height,
                width: w.saturating_sub(1).max(1),
                height,
                title: format!("{title}：{n}"),
                href: href.clone(),
            }
        })
        .collect();
    let ticks = items
        .iter()
        .enumerate()
        .filter(|(i, _)| i % tick_every.max(1) == 0)
        .map(|(i, (title, _, _))| (i as u32 * w, title.rsplit('-').next().unwrap_or(title).to_string()))
        .collect();
    VChart { width: (items.len() as u32 * w).max(w), height: H + 16, max, columns, ticks, axis_y: H + 13 }
}

/// A row of a segment table.
pub struct SegmentRow {
    pub label: String,
    pub href: Option<String>,
    pub leads: u64,
    pub contact_rate: String,
    pub contacted_rate: String,
    pub interested_rate: String,
    pub won_rate: String,
}

pub struct DimensionView {
    pub key: String,
    pub label: String,
    pub distinct: usize,
    pub chart: HChart,
    pub rows: Vec<SegmentRow>,
    pub others: Option<SegmentRow>,
}

pub struct FollowUpRow {
    pub owner: String,
    pub href: String,
    pub followed: u64,
    pub mean: String,
    pub median: String,
}

pub struct FunnelRow {
    pub label: String,
    pub leads: u64,
    pub rate: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub me: Me,
    pub from: String,
    pub to: String,
    pub filters: Vec<(String, String)>,
    pub range: String,
    pub total: u64,
    pub contact_rate: String,
    pub won_rate: String,
    pub inbox_href: String,
    pub funnel: Vec<FunnelRow>,
    pub funnel_chart: HChart,
    pub days: VChart,
    pub day_rows: Vec<(String, u64, u64, String)>,
    pub hours: VChart,
    pub hour_rows: Vec<(u32, u64, String)>,
    pub dimensions: Vec<DimensionView>,
    pub follow_up: Vec<FollowUpRow>,
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", rate(part, whole) * 100.0)
}

/// `3 小时 20 分`, `2 天 4 小时`, `45 分`, `30 秒`.
fn duration(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} 秒"),
        (0, 0, m) => format!("{m} 分"),
        (0, h, m) => format!("{h} 小时 {m} 分"),
        (d, h, _) => format!("{d} 天 {h} 小时"),
    }
}

fn segment_row(label: String, href: Option<String>, c: &Counts) -> SegmentRow {
    SegmentRow {
        label,
        href,
        leads: c.total,
        contact_rate: percent(c.contact, c.total),
        contacted_rate: percent(c.reached(LeadStatus::Contacted), c.total),
        interested_rate: percent(c.reached(LeadStatus::Interested), c.total),
        won_rate: percent(c.reached(LeadStatus::Won), c.total),
    }
}

/// The inbox filtered to a segment of a dimension: its value, or, for the empty segment, the
/// pool (owner) or `empty=<filter>` added to the page's empty filters. The dimension's own
/// filters (value or empty) are replaced.
fn segment_href(base: &[(String, String)], key: &str, filter: &str, value: &str) -> String {
    let others: Vec<&str> = base
        .iter()
        .filter(|(k, _)| k == "empty")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != filter)
        .collect();
    let mut empty = others.join(",");
    let base: Vec<(String, String)> = base.iter().filter(|(k, _)| k != "empty" && k != filter).cloned().collect();
    match (key, value) {
        ("owner", "") => inbox_href(&base, &[("owner", "none"), ("empty", &empty)]),
        (_, "") => {
            if !empty.is_empty() {
                empty.push(',');
            }
            empty.push_str(filter);
            inbox_href(&base, &[("empty", &empty)])
        }
        (_, v) => inbox_href(&base, &[(filter, v), ("empty", &empty)]),
    }
}

/// The inbox with the dashboard's filters plus (or instead of) some (empty values left out).
fn inbox_href(base: &[(String, String)], set: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = base
        .iter()
        .filter(|(k, _)| !set.iter().any(|(s, _)| s == k))
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    pairs.extend(set.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", encode(v))));
    format!("/?{}", pairs.join("&"))
}

fn date(t: xiansuo_domain::Instant) -> String {
    t.with_timezone(&CHINA_TIME).format("%Y-%m-%d").to_string()
}

pub async fn dashboard(
    State(app): State<AppState>,
    signed: Signed,
    Query(q): Query<InboxQuery>,
) -> Result<Response, PageError> {
    signed.require_admin()?;
    let user = &signed.0.user;
    let query = q.lead_query(user, 1, 1)?;
    let report = report(app.store.as_ref(), query).await?;
    Ok(page(view::render(&dashboard_page(&report, &q, Me::of(user, &signed.0.csrf)))))
}

fn dashboard_page(report: &Report, q: &InboxQuery, me: Me) -> DashboardPage {
    let s = &report.stats;
    // The filters the links carry: the page's, with the effective dates.
    let mut base: Vec<(String, String)> = q.filter_pairs().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let from = report.from.map(date).unwrap_or_default();
    if !from.is_empty() && !base.iter().any(|(k, _)| k == "from") {
        base.push(("from".into(), from.clone()));
    }
    let to_shown = base.iter().find(|(k, _)| k == "to").map(|(_, v)| v.clone()).unwrap_or_default();
    let range = match (from.as_str(), to_shown.as_str()) {
        ("", "") => "全部时间".to_string(),
        (f, "") => format!("{f} 至今"),
        ("", t) => format!("截至 {t}"),
        (f, t) => format!("{f} 至 {t}"),
    };

    let funnel: Vec<FunnelRow> = FUNNEL
        .iter()
        .map(|st| FunnelRow {
            label: st.label().to_string(),
            leads: s.counts.reached(*st),
            rate: percent(s.counts.reached(*st), s.counts.total),
            href: if *st == LeadStatus::New {
                inbox_href(&base, &[])
            } else {
                inbox_href(&base, &[("status", st.as_str())])
            },
        })
        .collect();
    let funnel_chart = hchart(
        &funnel
            .iter()
            .map(|f| (f.label.clone(), f.leads, format!("{}（{}）", f.leads, f.rate), Some(f.href.clone())))
            .collect::<Vec<_>>(),
    );

    let day_items: Vec<(String, u64, Option<String>)> = report
        .days
        .iter()
        .map(|(d, c)| {
            let day = d.format("%Y-%m-%d").to_string();
            let href = inbox_href(&base, &[("from", &day), ("to", &day)]);
            (day, c.total, Some(href))
        })
        .collect();
    let days = vchart(&day_items, (day_items.len() / 8).max(1));
    let day_rows = report
        .days
        .iter()
        .rev()
        .filter(|(_, c)| c.total > 0)
        .map(|(d, c)| {
            (d.format("%Y-%m-%d").to_string(), c.total, c.reached(LeadStatus::Won), percent(c.contact, c.total))
        })
        .collect();
    let hour_href = |h: usize| inbox_href(&base, &[("hour", &h.to_string())]);
    let hour_items: Vec<(String, u64, Option<String>)> =
        s.hours.iter().enumerate().map(|(h, n)| (format!("{h:02}"), *n, Some(hour_href(h)))).collect();
    let hours = vchart(&hour_items, 3);
    let hour_rows = s.hours.iter().enumerate().map(|(h, n)| (h as u32, *n, hour_href(h))).collect();

    let dimensions = s
        .dimensions
        .iter()
        .map(|d| {
            let rows: Vec<SegmentRow> = d
                .segments
                .iter()
                .map(|seg| {
                    let label = report.segment_label(d.dimension.key, &seg.value, &seg.label);
                    let href = Some(segment_href(&base, d.dimension.key, d.dimension.filter, &seg.value));
                    segment_row(label, href, &seg.counts)
                })
                .collect();
            let chart = hchart(
                &rows
                    .iter()
                    .map(|r| (r.label.clone(), r.leads, format!("{}（成交 {}）", r.leads, r.won_rate), r.href.clone()))
                    .collect::<Vec<_>>(),
            );
            DimensionView {
                key: d.dimension.key.to_string(),
                label: d.dimension.label.to_string(),
                distinct: d.distinct,
                chart,
                rows,
                others: (d.others.total > 0).then(|| segment_row("其他".into(), None, &d.others)),
            }
        })
        .collect();
    let follow_up = s
        .follow_up
        .iter()
        .map(|f| FollowUpRow {
            owner: f
                .owner_id
                .map(|o| report.owners.get(&o).cloned().unwrap_or_else(|| o.to_string()))
                .unwrap_or_else(|| "待分配".into()),
            href: inbox_href(&base, &[("owner", &f.owner_id.map_or("none".to_string(), |o| o.to_string()))]),
            followed: f.followed,
            mean: duration(f.mean_secs),
            median: duration(f.median_secs),
        })
        .collect();
    DashboardPage {
        me,
        from,
        to: to_shown,
        filters: base.iter().filter(|(k, _)| k != "from" && k != "to").cloned().collect(),
        range,
        total: s.counts.total,
        contact_rate: percent(s.counts.contact, s.counts.total),
        won_rate: percent(s.counts.reached(LeadStatus::Won), s.counts.total),
        inbox_href: inbox_href(&base, &[]),
        funnel,
        funnel_chart,
        days,
        day_rows,
        hours,
        hour_rows,
        dimensions,
        follow_up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_chinese() {
        assert_eq!(duration(30), "30 秒");
        assert_eq!(duration(600), "10 分");
        assert_eq!(duration(3 * 3600 + 20 * 60), "3 小时 20 分");
        assert_eq!(duration(2 * 86_400 + 4 * 3600), "2 天 4 小时");
    }

    #[test]
    fn links_replace_the_dimension_filter() {
        let base = vec![("from".to_string(), "2026-11-01".to_string()), ("city".to_string(), "太原市".to_string())];
        assert_eq!(inbox_href(&base, &[("city", "北京市")]), "/?from=2026-11-01&city=%E5%8C%97%E4%BA%AC%E5%B8%82");
    }

    #[test]
    fn empty_segments_link_to_the_empty_filter() {
        let base = vec![
            ("from".to_string(), "2026-11-01".to_string()),
            ("keyword".to_string(), "考研".to_string()),
            ("empty".to_string(), "city".to_string()),
        ];
        assert_eq!(segment_href(&base, "keyword", "keyword", ""), "/?from=2026-11-01&empty=city%2Ckeyword");
        assert_eq!(
            segment_href(&base, "city", "city", "太原市"),
            "/?from=2026-11-01&keyword=%E8%80%83%E7%A0%94&city=%E5%A4%AA%E5%8E%9F%E5%B8%82"
        );
        assert_eq!(
            segment_href(&base, "owner", "owner", ""),
            "/?from=2026-11-01&keyword=%E8%80%83%E7%A0%94&owner=none&empty=city"
        );
    }
}

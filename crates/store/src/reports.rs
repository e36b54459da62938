//! Reports: the export log, leads in batches for streamed exports, and the dashboard's figures
//! (grouped counts, the status funnel per segment, contact rate, time to first follow-up),
//! computed by one pass over the filtered leads that both backends feed row by row, or, for a
//! report of whole days without other filters, from the per-day table `report_days` that
//! triggers keep (migration 0011) plus a pass over the leads of partial days ([`plan`]).

use std::collections::{BTreeMap, HashMap};

use xiansuo_domain::{CHINA_TIME, Instant, LeadStatus};

/// An export to record in the export log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExport {
    pub at: Instant,
    /// The signed-in user or the user whose API token was used; `None` for the admin token and
    /// the command line.
    pub user_id: Option<i64>,
    /// Who, for people: the user's name, `admin token`, or `cli`.
    pub actor: String,
    /// `api`, `console` or `cli`.
    pub via: String,
    /// `csv` or `xlsx`.
    pub format: String,
    pub columns: Vec<String>,
    /// The inbox filter's parameters, as given.
    pub filter: serde_json::Value,
    pub rows: i64,
    /// False when the download was cut short (the client went away).
    pub completed: bool,
}

/// An entry of the export log.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportEntry {
    pub id: i64,
    pub export: NewExport,
}

/// Where a batch of a streamed export starts: after this lead in the export's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadCursor {
    pub received_at: Instant,
    pub id: i64,
}

/// A dimension of the dashboard: how leads are grouped, and the inbox parameter that filters
/// to one of its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimension {
    /// The key in `GET /api/v1/stats`.
    pub key: &'static str,
    pub label: &'static str,
    /// The inbox (and API) filter parameter of a segment.
    pub filter: &'static str,
    /// The leads column grouped by; `None` for the owner (an id).
    pub column: Option<&'static str>,
}

const fn dim(key: &'static str, label: &'static str, filter: &'static str, column: &'static str) -> Dimension {
    Dimension { key, label, filter, column: Some(column) }
}

/// Every dimension, in the order the dashboard shows them.
pub const DIMENSIONS: &[Dimension] = &[
    dim("search_engine", "搜索引擎", "search_engine", "search_engine"),
    dim("search_host", "搜索域名", "search_host", "search_host"),
    dim("keyword", "搜索词", "keyword", "keyword"),
    dim("bidding_word", "关键词（竞价词）", "bidding_word", "bidding_word"),
    dim("promotion_id", "渠道ID", "promotion_id", "promotion_id"),
    dim("landing", "落地页（首次访问页，不含参数）", "landing", "first_url"),
    dim("site", "子站点", "site_name", "site_name"),
    dim("device_type", "设备类型", "device_type", "device_type"),
    dim("province", "省", "province", "province"),
    dim("city", "市", "city", "city"),
    dim("subject", "项目", "subject_name", "subject_name"),
    dim("campus", "校区", "school_name", "school_name"),
    Dimension { key: "owner", label: "负责人", filter: "owner", column: None },
    dim("tag", "总结标签", "ntag_id", "ntag_id"),
];

/// Canonical columns a lead list may be filtered on exactly, beyond [`crate::LeadQuery`]'s
/// named filters (the dashboard's segments link to them).
pub const FILTER_FIELDS: &[&str] = &[
    "keyword",
    "bidding_word",
    "promotion_id",
    "site_name",
    "device_type",
    "subject_name",
    "school_name",
    "search_host",
];

/// Filters that take the dashboard's empty segments (`empty=keyword`): every dimension's
/// filter except the owner's (`owner=none` is the pool).
pub const EMPTY_FILTERS: &[&str] = &[
    "search_engine",
    "search_host",
    "keyword",
    "bidding_word",
    "promotion_id",
    "landing",
    "site_name",
    "device_type",
    "province",
    "city",
    "subject_name",
    "school_name",
    "ntag_id",
];

/// The column an empty filter tests (`landing` tests `first_url` without query and fragment).
pub fn empty_filter_column(filter: &str) -> Option<&'static str> {
    DIMENSIONS.iter().filter(|d| d.filter == filter && EMPTY_FILTERS.contains(&d.filter)).find_map(|d| d.column)
}

/// The `SELECT` list of a fact row, read by the backends in this order: received_at, status,
/// owner_id, mobile, ntag_name, followed_at, then each dimension's column (the owner's excepted).
pub fn fact_select() -> String {
    let mut cols = vec!["l.received_at", "l.status", "l.owner_id", "l.mobile", "l.ntag_name", "l.followed_at"];
    cols.extend(DIMENSIONS.iter().filter_map(|d| d.column));
    cols.iter()
        .map(|c| if c.starts_with("l.") { c.to_string() } else { format!("l.{c}") })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the covering index `leads_report` holds every column a filter reads (the search
/// `q`, `source` and the vendor's `user_id` are not in it).
pub fn covered(q: &crate::LeadQuery) -> bool {
    q.q.as_deref().is_none_or(|t| t.trim().is_empty()) && q.source.is_none() && q.user_id.is_none()
}

/// How many columns precede the dimensions in a fact row.
pub const FACT_FIXED: usize = 6;

/// How many dimensions are a column of their own (all but the owner's): the values of a fact row.
pub const COLUMN_DIMS: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < DIMENSIONS.len() {
        if DIMENSIONS[i].column.is_some() {
            n += 1;
        }
        i += 1;
    }
    n
};

/// The dimension number of the hour of day in `report_days` (after [`DIMENSIONS`]).
pub const HOUR_DIM: i64 = DIMENSIONS.len() as i64;

/// The `SELECT` of `report_days` rows, read by the backends in this order: dim, day, value,
/// label, leads, then the leads of each status ([`LeadStatus::ALL`]'s order) and contact.
pub const DAYS_SELECT: &str = "SELECT d.dim, d.day, d.value, d.label, d.leads, d.new, d.contacted, d.interested, d.won, d.invalid, d.contact FROM report_days d";

/// The dimension number of the tag in `report_days`, whose rows also carry the tag's name.
const TAG_DIM: i64 = 13;

/// The per-day report's pending changes (migration 0013: the triggers append one row per change
/// of a lead to `report_pending`, signed) grouped into `report_days` rows: day, dim, value, label,
/// leads, the leads of each status ([`LeadStatus::ALL`]'s order), contact. `src` is the table, or
/// on PostgreSQL the rows a fold deletes; `filter` a condition on its rows `p` (`true`: all).
pub fn pending_days(src: &str, filter: &str) -> String {
    let values: String = (0..TAG_DIM + 1).map(|d| format!(" WHEN {d} THEN p.v{d}")).collect();
    let status = |s: &str| format!("sum(CASE WHEN p.status = '{s}' THEN p.sign ELSE 0 END)");
    format!(
        "SELECT p.day, k.dim, CASE k.dim{values} ELSE p.hour END, CASE k.dim WHEN {TAG_DIM} THEN p.tag_name ELSE '' END, \
         sum(p.sign), sum(CASE WHEN p.status NOT IN ('contacted', 'interested', 'won', 'invalid') THEN p.sign ELSE 0 END), \
         {}, {}, {}, {}, sum(p.sign * p.contact) \
         FROM {src} p CROSS JOIN report_dims k WHERE {filter} GROUP BY 1, 2, 3, 4",
        status("contacted"),
        status("interested"),
        status("won"),
        status("invalid"),
    )
}

/// Adds grouped pending rows ([`pending_days`]) to `report_days`.
pub const FOLD_UPSERT: &str = "ON CONFLICT (day, dim, value, label) DO UPDATE SET \
    leads = report_days.leads + excluded.leads, new = report_days.new + excluded.new, \
    contacted = report_days.contacted + excluded.contacted, interested = report_days.interested + excluded.interested, \
    won = report_days.won + excluded.won, invalid = report_days.invalid + excluded.invalid, \
    contact = report_days.contact + excluded.contact";

/// The columns of `report_days` in [`pending_days`]' order.
pub const DAYS_COLUMNS: &str = "day, dim, value, label, leads, new, contacted, interested, won, invalid, contact";

/// How often a writer folds the pending changes of the per-day report into `report_days`: each
/// change costs a report one more row to add up until then, and a fold rewrites the day's few
/// hot rows once for every change since the last.
pub const FOLD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// When a writer folds the report's pending changes (both backends' writers keep one).
#[derive(Debug)]
pub struct FoldSchedule {
    last: std::time::Instant,
    /// Whether a batch committed since the last fold that finished (changes may be pending).
    unfolded: bool,
}

impl Default for FoldSchedule {
    /// Unfolded at first: what an earlier run, `xiansuo copy` or a crash left pending is folded a
    /// moment after start.
    fn default() -> Self {
        FoldSchedule { last: std::time::Instant::now(), unfolded: true }
    }
}

impl FoldSchedule {
    /// How long to wait for the next job before folding; `None`: nothing to fold, wait for it.
    pub fn wait(&self) -> Option<std::time::Duration> {
        self.unfolded.then(|| FOLD_EVERY.saturating_sub(self.last.elapsed()))
    }

    /// A batch committed: it may have left changes pending.
    pub fn committed(&mut self) {
        self.unfolded = true;
    }

    /// Whether to fold now (between two batches).
    pub fn due(&self) -> bool {
        self.unfolded && self.last.elapsed() >= FOLD_EVERY
    }

    /// Whether changes this writer committed may still be pending.
    pub fn unfolded(&self) -> bool {
        self.unfolded
    }

    /// A fold was tried now; `done`: it folded what this writer had committed.
    pub fn tried(&mut self, done: bool) {
        self.last = std::time::Instant::now();
        if done {
            self.unfolded = false;
        }
    }
}

/// Milliseconds in a day, and China time's offset from UTC (UTC+8 all year).
const DAY_MS: i64 = 86_400_000;
const CHINA_MS: i64 = 8 * 3_600_000;

/// The day (since 1970-01-01, China time) of an instant, as `report_days.day` counts them.
pub fn china_day(t: Instant) -> i64 {
    (t.timestamp_millis() + CHINA_MS).div_euclid(DAY_MS)
}

/// Midnight (China time) starting a day of [`china_day`].
pub fn day_start(day: i64) -> Instant {
    chrono::DateTime::from_timestamp_millis(day.saturating_mul(DAY_MS) - CHINA_MS).unwrap_or_default()
}

/// How the backends read a report.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The leads to read one by one (each a query of its own: the whole filter, or the partial
    /// days at the ends of the range).
    pub scans: Vec<crate::LeadQuery>,
    /// Whole days read from `report_days`: from this day, before this day (`None`: no bound).
    pub days: Option<DayRange>,
    /// Where the follow-up times come from when `days` is set: the leads of this query (the
    /// scans then skip them); `None` when the scans read them.
    pub follow_up: Option<crate::LeadQuery>,
}

/// Whether `report_days` answers a filter: dates only (the table counts every lead not merged,
/// by day, so any other filter, visibility included, needs the leads themselves).
pub fn dates_only(q: &crate::LeadQuery) -> bool {
    q.q.as_deref().is_none_or(|t| t.trim().is_empty())
        && q.status.is_none()
        && q.source.is_none()
        && q.province.is_none()
        && q.city.is_none()
        && q.search_engine.is_none()
        && q.ntag_id.is_none()
        && q.tag.is_none()
        && q.user_id.is_none()
        && q.owner.is_none()
        && q.visible_to.is_none()
        && q.fields.is_empty()
        && q.landing.as_deref().is_none_or(|l| l.trim().is_empty())
        && q.hour.is_none()
        && q.empty.is_empty()
}

/// The plan of a report: the leads themselves when `report_days` cannot answer the filter (or
/// `use_days` is false); otherwise the range's whole days from `report_days`, and the leads of
/// the partial days at either end.
pub fn plan(q: &crate::LeadQuery, use_days: bool) -> Plan {
    let whole = || Plan { scans: vec![q.clone()], days: None, follow_up: None };
    if !use_days || !dates_only(q) {
        return whole();
    }
    match split_days(q) {
        Some((days, scans)) => Plan { scans, days: Some(days), follow_up: Some(q.clone()) },
        None => whole(),
    }
}

/// Whole days of `report_days`: from this day, before this day (`None`: no bound).
pub type DayRange = (Option<i64>, Option<i64>);

/// A query's date range as `report_days` reads it: its whole days (from this day, before this
/// day; `None`: no bound) and the partial days at either end, as queries of the leads (the same
/// query with the partial day's bounds). `None` when the range holds no whole day. Reports
/// ([`plan`]) and list totals ([`crate::count`]) split alike.
pub fn split_days(q: &crate::LeadQuery) -> Option<(DayRange, Vec<crate::LeadQuery>)> {
    if matches!((q.from, q.to), (Some(f), Some(t)) if f >= t) {
        return None;
    }
    // Whole days: from the first midnight at or after `from`, to the last midnight at or
    // before `to`.
    let first = q.from.map(|f| if day_start(china_day(f)) == f { china_day(f) } else { china_day(f) + 1 });
    let end = q.to.map(china_day);
    if let (Some(a), Some(b)) = (first, end)
        && a >= b
    {
        return None;
    }
    let mut scans = Vec::new();
    if let (Some(from), Some(a)) = (q.from, first)
        && day_start(a) > from
    {
        scans.push(crate::LeadQuery { from: Some(from), to: Some(day_start(a)), ..q.clone() });
    }
    if let (Some(to), Some(b)) = (q.to, end)
        && day_start(b) < to
    {
        scans.push(crate::LeadQuery { from: Some(day_start(b)), to: Some(to), ..q.clone() });
    }
    Some(((first, end), scans))
}

/// Leads counted by status, and how many have a valid mobile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    /// By [`LeadStatus::ALL`]'s order: new, contacted, interested, won, invalid.
    pub by_status: [u64; 5],
    /// Leads with a valid Chinese mobile number.
    pub contact: u64,
}

impl Counts {
    fn add(&mut self, status: usize, contact: bool) {
        self.total += 1;
        self.by_status[status] += 1;
        self.contact += u64::from(contact);
    }

    fn merge(&mut self, other: &Counts) {
        self.total += other.total;
        for (a, b) in self.by_status.iter_mut().zip(other.by_status) {
            *a += b;
        }
        self.contact += other.contact;
    }

    fn of(&self, s: LeadStatus) -> u64 {
        LeadStatus::ALL.iter().position(|x| *x == s).map_or(0, |i| self.by_status[i])
    }

    /// Leads that reached at least this stage of 新线索 → 已联系 → 有意向 → 已成交 (a lead's
    /// current status counts for every stage before it; 无效 reaches none past 新线索).
    pub fn reached(&self, s: LeadStatus) -> u64 {
        use LeadStatus::*;
        match s {
            New => self.total,
            Contacted => self.of(Contacted) + self.of(Interested) + self.of(Won),
            Interested => self.of(Interested) + self.of(Won),
            Won => self.of(Won),
            Invalid => self.of(Invalid),
        }
    }
}

/// One value of a dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The value the inbox filter takes (empty: the value was never sent).
    pub value: String,
    /// What people read (a tag's name, say); the value itself otherwise.
    pub label: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionStats {
    pub dimension: Dimension,
    /// The largest segments, most leads first (ties by value).
    pub segments: Vec<Segment>,
    /// The segments beyond the largest, counted together.
    pub others: Counts,
    /// How many distinct values there are in all.
    pub distinct: usize,
}

/// Time from push to first follow-up (the first status change or note) of an owner's leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUp {
    /// The lead's current owner; `None` for the unassigned pool.
    pub owner_id: Option<i64>,
    /// Leads followed up at least once.
    pub followed: u64,
    pub mean_secs: i64,
    pub median_secs: i64,
}

/// The dashboard's figures for a lead filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeadStats {
    pub counts: Counts,
    /// Leads per day received (China time), days with leads only, in date order.
    pub days: Vec<(chrono::NaiveDate, Counts)>,
    /// Leads per hour of day received (China time), 0 to 23.
    pub hours: [u64; 24],
    pub dimensions: Vec<DimensionStats>,
    /// By owner, owners with at least one followed-up lead.
    pub follow_up: Vec<FollowUp>,
}

/// Whether a mobile field holds a Chinese mobile number (spaces, dashes and +86 allowed).
pub fn valid_mobile(s: &str) -> bool {
    // Digits only (no allocation: this runs once per lead of a report).
    let mut digits = [0u8; 16];
    let mut n = 0;
    for b in s.bytes() {
        match b {
            b'0'..=b'9' if n < digits.len() => {
                digits[n] = b;
                n += 1;
            }
            b' ' | b'-' | b'+' | b'(' | b')' => {}
            _ => return false,
        }
    }
    let d = &digits[..n];
    let national = match d {
        [b'0', b'0', b'8', b'6', rest @ ..] if rest.len() == 11 => rest,
        [b'8', b'6', rest @ ..] if rest.len() == 11 => rest,
        _ => d,
    };
    national.len() == 11 && national[0] == b'1' && (b'3'..=b'9').contains(&national[1])
}

/// A landing page without its query string and fragment (the ad platforms' click ids): what
/// precedes the first `?` or `#` (the inbox's `landing` filter matches exactly these leads).
pub fn landing_page(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

/// One lead as the dashboard sees it.
pub struct FactRow<'a> {
    pub received_at: Instant,
    pub status: &'a str,
    pub owner_id: Option<i64>,
    pub mobile: Option<&'a str>,
    pub tag_name: Option<&'a str>,
    /// The first follow-up (first status change or note); read only when the scan counts them.
    pub followed_at: Option<Instant>,
    /// The values of [`DIMENSIONS`] that have a column, in order (an array: no allocation per
    /// lead).
    pub values: [Option<&'a str>; COLUMN_DIMS],
}

/// Segments by value. (The default hasher: the values come from pushes, so a cheaper hash
/// would let someone who sends crafted keywords slow the report down.)
type Groups = HashMap<String, Group>;

#[derive(Default)]
struct Group {
    /// The smallest non-empty label seen (the tag's name: leads may carry different names).
    label: Option<String>,
    counts: Counts,
}

impl Group {
    fn label(&mut self, label: &str) {
        if !label.is_empty() && self.label.as_deref().is_none_or(|l| label < l) {
            self.label = Some(label.to_string());
        }
    }
}

/// Accumulates fact rows into [`LeadStats`].
pub struct Aggregator {
    counts: Counts,
    /// By day number since the epoch, China time.
    days: BTreeMap<i64, Counts>,
    hours: [u64; 24],
    groups: Vec<Groups>,
    /// The owner dimension's segments of leads read one by one, by id (`None`: the pool), made
    /// text once in [`Aggregator::finish`] rather than for every lead.
    owners: HashMap<Option<i64>, Counts>,
    follow: HashMap<Option<i64>, Vec<i64>>,
    /// Changes not yet folded into `report_days`, by its key (dim, day, value, label): added to
    /// the rows as they are read, the rest by [`Aggregator::finish`].
    pending: HashMap<(i64, i64, String, String), DayRow>,
}

/// A `report_days` row's figures, or a change of them (signed): leads, the leads of each status
/// ([`LeadStatus::ALL`]'s order), contact.
pub type DayRow = [i64; 7];

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator {
            counts: Counts::default(),
            days: BTreeMap::new(),
            hours: [0; 24],
            groups: DIMENSIONS.iter().map(|_| Groups::default()).collect(),
            owners: HashMap::new(),
            follow: HashMap::new(),
            pending: HashMap::new(),
        }
    }
}

impl Aggregator {
    pub fn add(&mut self, row: &FactRow) {
        let status = LeadStatus::ALL.iter().position(|s| s.as_str() == row.status).unwrap_or(0);
        let contact = row.mobile.is_some_and(valid_mobile);
        self.counts.add(status, contact);
        // China time is UTC+8 all year: the day and hour come from the epoch seconds.
        let secs = row.received_at.timestamp() + i64::from(CHINA_TIME.local_minus_utc());
        let (day, hour) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) / 3600);
        self.days.entry(day).or_default().add(status, contact);
        self.hours[hour as usize] += 1;
        if let Some(at) = row.followed_at {
            self.follow_up(row.owner_id, (at - row.received_at).num_seconds());
        }
        self.owners.entry(row.owner_id).or_default().add(status, contact);
        let mut values = row.values.iter();
        for (d, groups) in DIMENSIONS.iter().zip(self.groups.iter_mut()) {
            if d.column.is_none() {
                continue;
            }
            // As stored (pushes are trimmed when decoded): the inbox filter matches it.
            let v = values.next().copied().flatten().unwrap_or("");
            let (value, label) = match d.key {
                "landing" => (landing_page(v), None),
                "tag" => (v, row.tag_name),
                _ => (v, None),
            };
            // Looked up by reference: a value is copied only the first time it is seen.
            let group = match groups.get_mut(value) {
                Some(g) => g,
                None => groups.entry(value.to_string()).or_default(),
            };
            if let Some(l) = label {
                group.label(l);
            }
            group.counts.add(status, contact);
        }
    }

    /// A grouped row of the per-day report's pending changes ([`pending_days`]), read before the
    /// `report_days` rows (in the same snapshot): added to its row when that is read, or on its
    /// own by [`Aggregator::finish`].
    pub fn add_pending_day(&mut self, dim: i64, day: i64, value: String, label: String, change: DayRow) {
        let entry = self.pending.entry((dim, day, value, label)).or_insert([0; 7]);
        for (a, b) in entry.iter_mut().zip(change) {
            *a += b;
        }
    }

    /// A row of `report_days`: the leads of one value of dimension `dim` (or of one hour, for
    /// [`HOUR_DIM`]) received on `day`.
    pub fn add_day(&mut self, dim: i64, day: i64, value: &str, label: &str, mut row: DayRow) {
        if !self.pending.is_empty()
            && let Some(change) = self.pending.remove(&(dim, day, value.to_string(), label.to_string()))
        {
            for (a, b) in row.iter_mut().zip(change) {
                *a += b;
            }
        }
        let n = |i: usize| row[i].max(0) as u64;
        let counts = Counts { total: n(0), by_status: [n(1), n(2), n(3), n(4), n(5)], contact: n(6) };
        if counts.total == 0 {
            return;
        }
        if dim == HOUR_DIM {
            self.counts.merge(&counts);
            self.days.entry(day).or_default().merge(&counts);
            if let Some(h) = value.parse::<usize>().ok().and_then(|h| self.hours.get_mut(h)) {
                *h += counts.total;
            }
            return;
        }
        let Some(groups) = usize::try_from(dim).ok().and_then(|d| self.groups.get_mut(d)) else { return };
        let group = match groups.get_mut(value) {
            Some(g) => g,
            None => groups.entry(value.to_string()).or_default(),
        };
        group.label(label);
        group.counts.merge(&counts);
    }

    /// A lead's first follow-up, `secs` after it was received.
    pub fn follow_up(&mut self, owner_id: Option<i64>, secs: i64) {
        self.follow.entry(owner_id).or_default().push(secs.max(0));
    }

    /// The figures, with the `top` largest segments of each dimension.
    pub fn finish(mut self, top: usize) -> LeadStats {
        // Pending changes of segments `report_days` has no row (or no leads) for yet.
        for ((dim, day, value, label), row) in std::mem::take(&mut self.pending) {
            self.add_day(dim, day, &value, &label, row);
        }
        if let Some(groups) = DIMENSIONS.iter().position(|d| d.column.is_none()).and_then(|i| self.groups.get_mut(i)) {
            for (owner, counts) in self.owners.drain() {
                // The pool is the empty value, as in `report_days`.
                groups.entry(owner.map(|o| o.to_string()).unwrap_or_default()).or_default().counts.merge(&counts);
            }
        }
        let dimensions = DIMENSIONS
            .iter()
            .zip(self.groups)
            .map(|(d, groups)| {
                let distinct = groups.len();
                let mut segments: Vec<Segment> = groups
                    .into_iter()
                    .map(|(value, g)| Segment {
                        label: g.label.unwrap_or_else(|| value.clone()),
                        value,
                        counts: g.counts,
                    })
                    .collect();
                segments.sort_by(|a, b| b.counts.total.cmp(&a.counts.total).then_with(|| a.value.cmp(&b.value)));
                let mut others = Counts::default();
                for s in segments.iter().skip(top) {
                    others.merge(&s.counts);
                }
                segments.truncate(top);
                DimensionStats { dimension: *d, segments, others, distinct }
            })
            .collect();
        let mut follow_up: Vec<FollowUp> = self
            .follow
            .into_iter()
            .map(|(owner_id, mut secs)| {
                secs.sort_unstable();
                let n = secs.len().max(1);
                let mean = secs.iter().map(|s| i128::from(*s)).sum::<i128>() / n as i128;
                let median = if secs.is_empty() {
                    0
                } else if secs.len() % 2 == 1 {
                    secs[secs.len() / 2]
                } else {
                    (secs[secs.len() / 2 - 1] + secs[secs.len() / 2]) / 2
                };
                FollowUp {
                    owner_id,
                    followed: secs.len() as u64,
                    mean_secs: i64::try_from(mean).unwrap_or(i64::MAX),
                    median_secs: median,
                }
            })
            .collect();
        follow_up.sort_by_key(|f| (f.owner_id.is_none(), f.owner_id));
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        LeadStats {
            counts: self.counts,
            days: self.days.into_iter().map(|(d, c)| (epoch + chrono::Duration::days(d), c)).collect(),
            hours: self.hours,
            dimensions,
            follow_up,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pending changes are added to the rows of `report_days` they belong to: a status change
    /// (-1 new, +1 won on the same segment), a segment the table has no row for yet, and a
    /// segment whose last lead left it (it disappears).
    #[test]
    fn pending_changes_add_to_their_rows() {
        let city = DIMENSIONS.iter().position(|d| d.key == "city").unwrap() as i64;
        let mut agg = Aggregator::default();
        agg.add_pending_day(city, 20_000, "太原市".into(), String::new(), [0, -1, 0, 0, 1, 0, 0]);
        agg.add_pending_day(city, 20_000, "广州市".into(), String::new(), [1, 1, 0, 0, 0, 0, 1]);
        agg.add_pending_day(city, 20_000, "广州市".into(), String::new(), [1, 1, 0, 0, 0, 0, 0]);
        agg.add_pending_day(city, 20_000, "北京市".into(), String::new(), [-1, -1, 0, 0, 0, 0, 0]);
        agg.add_day(city, 20_000, "太原市", "", [2, 2, 0, 0, 0, 0, 1]);
        agg.add_day(city, 20_000, "北京市", "", [1, 1, 0, 0, 0, 0, 0]);
        // The same value on another day is another row: the change is not added to it.
        agg.add_day(city, 20_001, "太原市", "", [1, 1, 0, 0, 0, 0, 0]);
        let stats = agg.finish(10);
        let cities = &stats.dimensions[city as usize];
        let of = |v: &str| cities.segments.iter().find(|g| g.value == v).map(|g| g.counts);
        let taiyuan = of("太原市").unwrap();
        assert_eq!((taiyuan.total, taiyuan.by_status, taiyuan.contact), (3, [2, 0, 0, 1, 0], 1));
        let guangzhou = of("广州市").unwrap();
        assert_eq!((guangzhou.total, guangzhou.by_status, guangzhou.contact), (2, [2, 0, 0, 0, 0], 1));
        assert_eq!(of("北京市"), None, "its only lead left it");
    }

    #[test]
    fn mobiles() {
        for ok in ["13800138000", "+86 138-0013-8000", "008613800138000", "8613800138000"] {
            assert!(valid_mobile(ok), "{ok}");
        }
        for bad in ["", "12800138000", "1380013800", "0351-7654321", "138001380001", "稍后发"] {
            assert!(!valid_mobile(bad), "{bad}");
        }
    }

    #[test]
    fn landing_pages_lose_their_query() {
        assert_eq!(landing_page("http://a.cn/zt/x.html?bd_vid=1#top"), "http://a.cn/zt/x.html");
        assert_eq!(landing_page("http://a.cn/"), "http://a.cn/");
        assert_eq!(landing_page("http://a.cn/x#a?b"), "http://a.cn/x");
        assert_eq!(landing_page("?bd_vid=1"), "");
    }

    #[test]
    fn plans_read_whole_days_from_the_table() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).ok();
        let q = |from: &str, to: &str| crate::LeadQuery { from: at(from), to: at(to), ..Default::default() };
        // Midnight to midnight: days only.
        let p = plan(&q("2026-11-01T00:00:00+08:00", "2026-11-04T00:00:00+08:00"), true);
        let d = china_day(at("2026-11-01T00:00:00+08:00").unwrap_or_default());
        assert_eq!(p.days, Some((Some(d), Some(d + 3))));
        assert!(p.scans.is_empty());
        // Partial days at both ends are read from the leads.
        let p = plan(&q("2026-11-01T10:00:00+08:00", "2026-11-04T09:00:00+08:00"), true);
        assert_eq!(p.days, Some((Some(d + 1), Some(d + 3))));
        let scans: Vec<_> = p.scans.iter().map(|s| (s.from, s.to)).collect();
        assert_eq!(
            scans,
            [
                (at("2026-11-01T10:00:00+08:00"), at("2026-11-02T00:00:00+08:00")),
                (at("2026-11-04T00:00:00+08:00"), at("2026-11-04T09:00:00+08:00"))
            ]
        );
        // Within a day, or with any other filter: the leads.
        assert!(plan(&q("2026-11-01T10:00:00+08:00", "2026-11-01T12:00:00+08:00"), true).days.is_none());
        let city = crate::LeadQuery { city: Some("广州市".into()), ..Default::default() };
        assert!(plan(&city, true).days.is_none());
        assert!(plan(&crate::LeadQuery::default(), false).days.is_none());
        assert_eq!(plan(&crate::LeadQuery::default(), true).days, Some((None, None)));
    }

    #[test]
    fn aggregates_segments_funnel_and_follow_up() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut a = Aggregator::default();
        for (status, engine, mobile) in
            [("won", "百度", "13800138000"), ("contacted", "百度", ""), ("new", "搜狗", "13900000000")]
        {
            let mut values = [None; COLUMN_DIMS];
            values[0] = Some(engine);
            a.add(&FactRow {
                received_at: t,
                status,
                owner_id: Some(3),
                mobile: Some(mobile),
                tag_name: None,
                followed_at: None,
                values,
            });
        }
        a.follow_up(Some(3), 60);
        a.follow_up(Some(3), 180);
        let s = a.finish(1);
        assert_eq!(s.counts.total, 3);
        assert_eq!(s.counts.contact, 2);
        assert_eq!(s.counts.reached(LeadStatus::Contacted), 2);
        let engines = &s.dimensions[0];
        assert_eq!(engines.segments.len(), 1);
        assert_eq!(engines.segments[0].value, "百度");
        assert_eq!(engines.segments[0].counts.reached(LeadStatus::Won), 1);
        assert_eq!(engines.others.total, 1);
        assert_eq!(engines.distinct, 2);
        assert_eq!(s.follow_up, vec![FollowUp { owner_id: Some(3), followed: 2, mean_secs: 120, median_secs: 120 }]);
        assert_eq!(s.hours.iter().sum::<u64>(), 3);
    }
}

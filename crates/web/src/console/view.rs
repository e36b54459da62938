//! What the console's templates show: view models built from store data, and the templates
//! themselves (`crates/web/templates`, compiled into the binary, HTML-escaped by default).

use askama::Template;
use xiansuo_domain::{CHINA_TIME, Instant, LeadStatus, User};

/// Renders a template; a template that fails to render becomes a plain message.
pub fn render(t: &impl Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template rendering failed");
        "内部错误".to_string()
    })
}

/// The signed-in user, as the layout shows them.
pub struct Me {
    pub name: String,
    pub is_admin: bool,
    pub csrf: String,
}

impl Me {
    pub fn of(user: &User, csrf: &str) -> Me {
        Me { name: user.name.clone(), is_admin: user.is_admin(), csrf: csrf.to_string() }
    }
}

/// `2026-11-24 10:30`, China time.
pub fn full_time(t: Instant) -> String {
    t.with_timezone(&CHINA_TIME).format("%Y-%m-%d %H:%M").to_string()
}

/// `刚刚`, `3 分钟前`, `2 小时前`, `5 天前`, then the date.
pub fn ago(t: Instant, now: Instant) -> String {
    let secs = (now - t).num_seconds().max(0);
    match secs {
        0..60 => "刚刚".to_string(),
        60..3600 => format!("{} 分钟前", secs / 60),
        3600..86_400 => format!("{} 小时前", secs / 3600),
        86_400..2_592_000 => format!("{} 天前", secs / 86_400),
        _ => t.with_timezone(&CHINA_TIME).format("%Y-%m-%d").to_string(),
    }
}

/// An option of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub fn status_choices(selected: Option<LeadStatus>, with_any: bool) -> Vec<Choice> {
    let mut out = Vec::new();
    if with_any {
        out.push(Choice { value: String::new(), label: "全部状态".into(), selected: selected.is_none() });
    }
    out.extend(LeadStatus::ALL.iter().map(|s| Choice {
        value: s.as_str().into(),
        label: s.label().into(),
        selected: Some(*s) == selected,
    }));
    out
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub message: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub next: String,
    pub name: String,
    pub error: Option<String>,
}

pub struct InboxRow {
    pub id: i64,
    pub name: String,
    pub mobile: String,
    pub city: String,
    pub keyword: String,
    pub search_engine: String,
    pub tag: Option<TagView>,
    pub score: i32,
    pub owner: String,
    pub status: String,
    pub status_label: String,
    pub received_ago: String,
    pub received_at: String,
    pub visitor_messages: i64,
}

/// The inbox's filters as they came in the URL (echoed into the form).
#[derive(Default)]
pub struct InboxFilters {
    pub q: String,
    pub province: String,
    pub city: String,
    pub search_engine: String,
    pub from: String,
    pub to: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
pub struct InboxPage {
    pub me: Me,
    pub filters: InboxFilters,
    pub statuses: Vec<Choice>,
    pub owners: Vec<Choice>,
    pub sources: Vec<Choice>,
    pub tags: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub rows: Vec<InboxRow>,
    pub total: u64,
    /// False: `total` is a lower bound (the list stopped counting), shown as "10000+".
    pub total_exact: bool,
    pub page: u32,
    pub pages: u64,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
    /// The export form: the current filters (hidden fields) and the columns to choose from.
    pub export: ExportForm,
}

/// A filter of the inbox that the form has no field for (set by a dashboard link).
pub struct ActiveFilter {
    pub param: String,
    pub label: String,
    pub value: String,
}

/// A column of the export form.
pub struct ColumnChoice {
    pub key: String,
    pub header: String,
    pub checked: bool,
}

/// The inbox's export form.
pub struct ExportForm {
    /// Every filter of the current view, as hidden fields.
    pub filters: Vec<(String, String)>,
    /// Attribution filters set by a dashboard link, shown and kept by the filter form.
    pub attribution: Vec<ActiveFilter>,
    pub columns: Vec<ColumnChoice>,
}

#[derive(Template)]
#[template(path = "inbox_rows.html")]
pub struct InboxRows {
    pub rows: Vec<InboxRow>,
}

/// A labelled value of the lead card.
pub struct FieldView {
    pub label: String,
    pub value: String,
    /// `tel`: a tel: link; `url`: an http(s) link; `copy`: with a copy button; `text`.
    pub kind: &'static str,
}

pub struct MessageView {
    pub from_visitor: bool,
    pub who: String,
    pub time: String,
    pub text: String,
}

pub struct ChatView {
    pub chat_id: String,
    pub messages: Vec<MessageView>,
}

pub struct TimelineItem {
    pub time: String,
    pub who: String,
    pub text: String,
    pub kind: &'static str,
    /// Another lead the entry names (a merge, a duplicate), linked after the text.
    pub link: Option<i64>,
}

/// A summary tag as a coloured chip: the dictionary's colour comes from /assets/tags.css.
pub struct TagView {
    pub name: String,
    pub class: String,
    pub key: String,
}

impl TagView {
    pub fn of(tag: &xiansuo_domain::Tag, tags: &xiansuo_domain::TagDictionary) -> TagView {
        let class = tag
            .id
            .as_deref()
            .and_then(|id| tags.iter().position(|t| t.id == id && t.colour.is_some()))
            .map(|i| format!("tag tag-c{i}"))
            .unwrap_or_else(|| "tag".into());
        TagView { name: tag.name.clone(), class, key: tag.key.clone() }
    }
}

/// `.tag-cN { … }` for every tag of the dictionary with a colour (checked as `#rgb`/`#rrggbb`
/// when the configuration was loaded, so nothing else can reach the stylesheet).
pub fn tag_css(tags: &xiansuo_domain::TagDictionary) -> String {
    let mut css = String::from("/* summary-tag colours from the configuration's [tags.ID] */\n");
    for (i, t) in tags.iter().enumerate() {
        if let Some(colour) = &t.colour {
            css.push_str(&format!(".tag.tag-c{i} {{ background: {colour}; color: #fff; border-color: {colour}; }}\n"));
        }
    }
    css
}

/// A possible duplicate on the lead page.
pub struct DuplicateView {
    pub id: i64,
    pub title: String,
    pub summary: String,
    pub shared: String,
}

#[derive(Template)]
#[template(path = "lead.html")]
pub struct LeadPage {
    pub me: Me,
    pub id: i64,
    pub title: String,
    pub status: String,
    pub status_label: String,
    pub status_reason: String,
    pub owner: String,
    pub can_claim: bool,
    pub statuses: Vec<Choice>,
    pub assignees: Vec<Choice>,
    pub tag: Option<TagView>,
    pub score: i32,
    pub score_reasons: Vec<String>,
    pub merged_into: Option<i64>,
    pub duplicates: Vec<DuplicateView>,
    pub contact: Vec<FieldView>,
    pub origin: Vec<FieldView>,
    pub vendor: Vec<FieldView>,
    pub other: Vec<FieldView>,
    pub chats: Vec<ChatView>,
    pub timeline: Vec<TimelineItem>,
    pub received: String,
    pub push_count: i64,
}

pub struct PushRow {
    pub id: i64,
    pub received_at: String,
    pub source: String,
    pub outcome: String,
    pub error: String,
    pub body: String,
    pub lead_ids: Vec<i64>,
    /// Issue #11: one line per relay target (where it stands, attempts, last answer).
    pub relays: Vec<String>,
}

#[derive(Template)]
#[template(path = "pushes.html")]
pub struct PushesPage {
    pub me: Me,
    pub outcome: String,
    pub rows: Vec<PushRow>,
    pub total: u64,
    pub page: u32,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
    pub notice: Option<String>,
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub label: String,
    pub target: String,
    pub detail: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub me: Me,
    pub rows: Vec<AuditRow>,
    pub total: u64,
    pub page: u32,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
}

pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub created: String,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub me: Me,
    pub rows: Vec<UserRow>,
    /// A secret shown once (a new password or API token), with what it is for.
    pub secret: Option<(String, String)>,
    pub error: Option<String>,
}

/// An entry of the export log, for the admins' page.
pub struct ExportRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub via: String,
    pub format: String,
    pub rows: i64,
    pub completed: bool,
    pub filter: String,
    pub columns: String,
}

#[derive(Template)]
#[template(path = "exports.html")]
pub struct ExportsPage {
    pub me: Me,
    pub rows: Vec<ExportRow>,
    pub total: u64,
    pub page: u32,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
}

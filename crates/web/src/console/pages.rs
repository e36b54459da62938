//! The console's handlers.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Form;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::stream::Stream;
use serde::Deserialize;
use xiansuo_domain::{
    FIELDS, Lead, LeadChange, LeadStatus, PushOutcomeKind, Role, Sender, User, plain_text, valid_user_name,
};
use xiansuo_store::{Actor, LeadQuery, LeadSort, LeadUpdate, NewSession, OwnerFilter, PushQuery, UserChange};

use super::view::{self, Choice, FieldView, InboxFilters, InboxRow, Me};
use super::{PageError, SESSION_HOURS, Signed, encode, page, session_cookie, session_token};
use crate::AppState;
use crate::audit::{self, Who};
use crate::merging::{self, DuplicateAction};
use crate::security::{generate_password, hash_password, random_hex, sha256_hex, verify_password};
use serde_json::json;

const PER_PAGE: u32 = 50;

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, PageError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| PageError::Internal(format!("a blocking task failed: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this site may follow sign-in: visible ASCII only (browsers drop tabs and
/// line breaks from URLs, which would turn `/\t/evil` into `//evil`), starting with one `/`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic())
                && !n.contains('\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

pub async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    page(view::render(&view::LoginPage { next: safe_next(q.next.as_deref()), name: String::new(), error: None }))
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// The client address for rate limiting: the peer's address; behind a reverse proxy on this
/// machine (a loopback peer), the hop that proxy appended to X-Forwarded-For (the last one:
/// earlier hops are whatever the client claimed).
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let next = safe_next(form.next.as_deref());
    let refuse = |name: String| {
        let page_html =
            view::render(&view::LoginPage {
                next: next.clone(), name, error: Some("用户名或密码不正确".into())
            });
        Ok((axum::http::StatusCode::UNAUTHORIZED, page(page_html)).into_response())
    };
    let client = crate::access::client_ip(peer.ip(), &headers, &app.trusted_proxies);
    let ip_key = format!("ip:{client}");
    // A name that cannot exist is refused before anything is looked up, hashed or logged.
    let Ok(name) = valid_user_name(&form.name).map(str::to_string) else {
        app.login_limiter.failed(&ip_key);
        return refuse(String::new());
    };
    let user_key = format!("user:{name}");
    if let Some(wait) = app.login_limiter.locked(&user_key).or_else(|| app.login_limiter.locked(&ip_key)) {
        return Err(PageError::TooManyAttempts(wait));
    }
    // Counted before the (slow) check, so parallel guesses cannot slip past the limit.
    app.login_limiter.failed(&user_key);
    app.login_limiter.failed(&ip_key);
    let user = app.store.user_by_name(&name).await?;
    // Verify against a real hash even for unknown users, so timing does not tell names apart.
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
    let password = form.password;
    let matches = {
        // Each check takes ~19 MiB for a moment: a few at a time, however many arrive.
        let _permit = app.password_checks.acquire().await.map_err(|e| PageError::Internal(e.to_string()))?;
        blocking(move || verify_password(&password, &hash)).await?
    };
    let user = match user {
        Some(u) if matches && !u.disabled => u,
        _ => {
            tracing::info!(user = %name, "sign-in failed");
            let target = Some(format!("user {name}"));
            audit::record(app.store.as_ref(), Who::claimed(&name), "sign_in_failed", target, json!({}), Some(client))
                .await;
            return refuse(name);
        }
    };
    app.login_limiter.succeeded(&ip_key);
    app.login_limiter.succeeded(&user_key);
    // A new session at every sign-in (the old one, if any, ends).
    if let Some(old) = session_token(&headers) {
        app.store.delete_session(&sha256_hex(&old)).await?;
    }
    let token = random_hex(32).map_err(PageError::Internal)?;
    let csrf = random_hex(16).map_err(PageError::Internal)?;
    let now = xiansuo_domain::now();
    app.store
        .create_session(NewSession {
            token_hash: sha256_hex(&token),
            user_id: user.id,
            csrf,
            created_at: now,
            expires_at: now + chrono::Duration::hours(SESSION_HOURS),
        })
        .await?;
    tracing::info!(user = %user.name, "signed in");
    audit::record(app.store.as_ref(), Who::user(&user), "sign_in", None, json!({}), Some(client)).await;
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&token, SESSION_HOURS * 3600));
    Ok(response)
}

/// An argon2id hash of a random password, checked when the user name is unknown.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let password = random_hex(16).unwrap_or_else(|_| "unknown-user".to_string());
    hash_password(&password).unwrap_or_default()
});

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    State(app): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    if let Some(token) = session_token(&headers) {
        app.store.delete_session(&sha256_hex(&token)).await?;
    }
    audit::record(app.store.as_ref(), Who::user(&signed.0.user), "sign_out", None, json!({}), None).await;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0));
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Inbox

#[derive(Deserialize, Default)]
pub struct InboxQuery {
    q: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    tag: Option<String>,
    source: Option<String>,
    province: Option<String>,
    city: Option<String>,
    search_engine: Option<String>,
    from: Option<String>,
    to: Option<String>,
    sort: Option<String>,
    page: Option<u32>,
    fragment: Option<String>,
    // Attribution filters: the dashboard's segments link here with them.
    ntag_id: Option<String>,
    keyword: Option<String>,
    bidding_word: Option<String>,
    promotion_id: Option<String>,
    site_name: Option<String>,
    device_type: Option<String>,
    subject_name: Option<String>,
    school_name: Option<String>,
    search_host: Option<String>,
    landing: Option<String>,
    hour: Option<String>,
    empty: Option<String>,
}

/// The inbox's sort orders: (value, label).
const SORTS: &[(&str, &str)] = &[("-received_at", "最新收到"), ("-updated_at", "最近更新"), ("-score", "评分最高")];

/// The attribution filters (inbox parameter, label): shown above the rows when set, and kept
/// by the filter form in hidden fields.
pub const ATTRIBUTION_FILTERS: &[(&str, &str)] = &[
    ("ntag_id", "总结标签ID"),
    ("keyword", "搜索词"),
    ("bidding_word", "关键词"),
    ("promotion_id", "渠道ID"),
    ("site_name", "子站点"),
    ("device_type", "设备类型"),
    ("subject_name", "项目"),
    ("school_name", "校区"),
    ("search_host", "搜索域名"),
    ("landing", "落地页"),
    ("hour", "收到时段（时）"),
    ("empty", "未填"),
];

impl InboxQuery {
    /// Every filter given, as (parameter, value), paging left out.
    pub fn filter_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        for (k, v) in [
            ("q", &self.q),
            ("status", &self.status),
            ("owner", &self.owner),
            ("tag", &self.tag),
            ("source", &self.source),
            ("province", &self.province),
            ("city", &self.city),
            ("search_engine", &self.search_engine),
            ("from", &self.from),
            ("to", &self.to),
            ("sort", &self.sort),
            ("ntag_id", &self.ntag_id),
            ("keyword", &self.keyword),
            ("bidding_word", &self.bidding_word),
            ("promotion_id", &self.promotion_id),
            ("site_name", &self.site_name),
            ("device_type", &self.device_type),
            ("subject_name", &self.subject_name),
            ("school_name", &self.school_name),
            ("search_host", &self.search_host),
            ("landing", &self.landing),
            ("hour", &self.hour),
            ("empty", &self.empty),
        ] {
            if let Some(v) = non_empty(v) {
                pairs.push((k, v));
            }
        }
        pairs
    }

    /// The query string of these filters at another page.
    fn url_at(&self, page: u32) -> String {
        let mut pairs: Vec<String> = self.filter_pairs().iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        pairs.push(format!("page={page}"));
        format!("/?{}", pairs.join("&"))
    }

    /// The lead filter of these parameters, with the user's visibility.
    pub fn lead_query(&self, user: &User, page: u32, per_page: u32) -> Result<LeadQuery, PageError> {
        let status = match non_empty(&self.status) {
            None => None,
            Some(s) => Some(LeadStatus::parse(&s).ok_or_else(|| PageError::BadRequest(format!("没有“{s}”这个状态")))?),
        };
        let owner = match non_empty(&self.owner).as_deref() {
            None => None,
            Some("none") => Some(OwnerFilter::Unassigned),
            Some("me") => Some(OwnerFilter::User(user.id)),
            Some(v) => Some(OwnerFilter::User(v.parse().map_err(|_| PageError::BadRequest("负责人参数无效".into()))?)),
        };
        let fields = [
            ("keyword", &self.keyword),
            ("bidding_word", &self.bidding_word),
            ("promotion_id", &self.promotion_id),
            ("site_name", &self.site_name),
            ("device_type", &self.device_type),
            ("subject_name", &self.subject_name),
            ("school_name", &self.school_name),
            ("search_host", &self.search_host),
        ]
        .into_iter()
        .filter_map(|(k, v)| non_empty(v).map(|v| (k, v)))
        .collect();
        Ok(LeadQuery {
            q: non_empty(&self.q),
            status,
            source: non_empty(&self.source),
            province: non_empty(&self.province),
            city: non_empty(&self.city),
            search_engine: non_empty(&self.search_engine),
            ntag_id: non_empty(&self.ntag_id),
            tag: non_empty(&self.tag),
            sort: match non_empty(&self.sort) {
                None => LeadSort::default(),
                Some(s) => LeadSort::parse(&s).ok_or_else(|| PageError::BadRequest("排序参数无效".into()))?,
            },
            owner,
            visible_to: (!user.is_admin()).then_some(user.id),
            from: date_bound(&self.from, false)?,
            to: date_bound(&self.to, true)?,
            fields,
            landing: non_empty(&self.landing),
            hour: crate::api::hour_filter(self.hour.as_deref()).map_err(PageError::BadRequest)?,
            empty: crate::api::empty_filters(self.empty.as_deref()).map_err(PageError::BadRequest)?,
            page,
            per_page,
            ..Default::default()
        })
    }
}

fn date_bound(v: &Option<String>, end_of_day: bool) -> Result<Option<xiansuo_domain::Instant>, PageError> {
    let Some(v) = non_empty(v) else { return Ok(None) };
    let parsed = xiansuo_push::parse_time_bound(&v, end_of_day);
    parsed.map(Some).ok_or_else(|| PageError::BadRequest(format!("日期“{v}”无法识别")))
}

fn user_names(users: &[User]) -> HashMap<i64, String> {
    users.iter().map(|u| (u.id, u.name.clone())).collect()
}

fn inbox_row(
    lead: &Lead,
    names: &HashMap<i64, String>,
    tags: &xiansuo_domain::TagDictionary,
    now: xiansuo_domain::Instant,
) -> InboxRow {
    let f = |k: &str| lead.fields.get(k).cloned().unwrap_or_default();
    InboxRow {
        id: lead.id,
        name: f("name"),
        mobile: if lead.fields.contains_key("mobile") { f("mobile") } else { f("tel") },
        city: f("city"),
        keyword: if lead.fields.contains_key("keyword") { f("keyword") } else { f("bidding_word") },
        search_engine: f("search_engine"),
        tag: crate::repr::tag_of(lead, tags).map(|t| view::TagView::of(&t, tags)),
        score: lead.score,
        owner: lead.owner_id.and_then(|o| names.get(&o).cloned()).unwrap_or_default(),
        status: lead.status.as_str().into(),
        status_label: lead.status.label().into(),
        received_ago: view::ago(lead.received_at, now),
        received_at: view::full_time(lead.received_at),
        visitor_messages: lead.visitor_message_count,
    }
}

pub async fn inbox(
    State(app): State<AppState>,
    signed: Signed,
    Query(q): Query<InboxQuery>,
) -> Result<Response, PageError> {
    let user = &signed.0.user;
    let page_no = q.page.unwrap_or(1).max(1);
    let sort_value = non_empty(&q.sort).unwrap_or_else(|| SORTS[0].0.to_string());
    let query = q.lead_query(user, page_no, PER_PAGE)?;
    let status = query.status;
    let (leads, users) = tokio::try_join!(app.store.list_leads(&query), app.store.users())?;
    let names = user_names(&users);
    let now = xiansuo_domain::now();
    let rows: Vec<InboxRow> = leads.items.iter().map(|l| inbox_row(l, &names, &app.tags, now)).collect();
    if q.fragment.as_deref() == Some("rows") {
        let mut response = page(view::render(&view::InboxRows { rows }));
        // The count as the heading shows it: "10000+" when the list stopped counting.
        let shown = if leads.total_exact { leads.total.to_string() } else { format!("{}+", leads.total) };
        if let Ok(value) = axum::http::HeaderValue::from_str(&shown) {
            response.headers_mut().insert("x-total-count", value);
        }
        return Ok(response);
    }
    let pages = leads.total.div_ceil(u64::from(PER_PAGE)).max(1);
    // A total that is a lower bound: there is a next page as long as this one is full.
    let more = if leads.total_exact { u64::from(page_no) < pages } else { leads.items.len() >= PER_PAGE as usize };
    let owner_value = non_empty(&q.owner).unwrap_or_default();
    let mut owners = vec![
        Choice { value: String::new(), label: "全部负责人".into(), selected: owner_value.is_empty() },
        Choice { value: "me".into(), label: "我的".into(), selected: owner_value == "me" },
        Choice { value: "none".into(), label: "待分配".into(), selected: owner_value == "none" },
    ];
    if user.is_admin() {
        owners.extend(users.iter().map(|u| Choice {
            value: u.id.to_string(),
            label: u.name.clone(),
            selected: owner_value == u.id.to_string(),
        }));
    }
    let source_value = non_empty(&q.source).unwrap_or_default();
    let mut sources =
        vec![Choice { value: String::new(), label: "全部来源".into(), selected: source_value.is_empty() }];
    let mut names_of_sources: Vec<&String> = app.sources.keys().collect();
    names_of_sources.sort();
    sources.extend(names_of_sources.into_iter().map(|s| Choice {
        value: s.clone(),
        label: s.clone(),
        selected: &source_value == s,
    }));
    let tag_value = non_empty(&q.tag).unwrap_or_default();
    let mut tags = vec![Choice { value: String::new(), label: "全部标签".into(), selected: tag_value.is_empty() }];
    tags.extend(app.tags.iter().map(|t| Choice {
        value: t.id.clone(),
        label: t.name.clone(),
        selected: tag_value == t.id,
    }));
    if !tag_value.is_empty() && !tags.iter().any(|c| c.selected) {
        tags.push(Choice { value: tag_value.clone(), label: tag_value.clone(), selected: true });
    }
    let sorts = SORTS
        .iter()
        .map(|(value, label)| Choice {
            value: value.to_string(),
            label: label.to_string(),
            selected: sort_value == *value,
        })
        .collect();
    let filters = InboxFilters {
        q: non_empty(&q.q).unwrap_or_default(),
        province: non_empty(&q.province).unwrap_or_default(),
        city: non_empty(&q.city).unwrap_or_default(),
        search_engine: non_empty(&q.search_engine).unwrap_or_default(),
        from: non_empty(&q.from).unwrap_or_default(),
        to: non_empty(&q.to).unwrap_or_default(),
    };
    let inbox_page = view::InboxPage {
        me: Me::of(user, &signed.0.csrf),
        filters,
        statuses: view::status_choices(status, true),
        owners,
        sources,
        tags,
        sorts,
        rows,
        total: leads.total,
        total_exact: leads.total_exact,
        page: page_no,
        pages,
        prev_url: (page_no > 1).then(|| q.url_at(page_no - 1)),
        next_url: more.then(|| q.url_at(page_no + 1)),
        export: export_form(&q),
    };
    Ok(page(view::render(&inbox_page)))
}

fn export_form(q: &InboxQuery) -> view::ExportForm {
    let pairs = q.filter_pairs();
    let attribution = pairs
        .iter()
        .filter_map(|(k, v)| {
            ATTRIBUTION_FILTERS.iter().find(|(p, _)| p == k).map(|(param, label)| view::ActiveFilter {
                param: param.to_string(),
                label: label.to_string(),
                value: v.clone(),
            })
        })
        .collect();
    let columns = crate::export::all_columns()
        .into_iter()
        .map(|(key, header)| view::ColumnChoice {
            key: key.to_string(),
            header: header.to_string(),
            checked: crate::export::DEFAULT_COLUMNS.contains(&key),
        })
        .collect();
    view::ExportForm { filters: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), attribution, columns }
}

/// Server-sent events: `lead` whenever this process stores a new lead; the inbox then reloads
/// its rows (which applies the viewer's visibility).
pub async fn events(
    State(app): State<AppState>,
    _signed: Signed,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = app.new_leads.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let data = match receiver.recv().await {
            Ok(id) => id.to_string(),
            // Missed some: one event tells the page to reload all the same.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => "0".to_string(),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().event("lead").data(data)), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

// ---------------------------------------------------------------------------------------------
// Lead page

fn lead_id(raw: &str) -> Result<i64, PageError> {
    raw.parse().map_err(|_| PageError::NotFound)
}

fn label(key: &str) -> String {
    xiansuo_domain::field(key).map_or_else(|| key.to_string(), |f| f.label.to_string())
}

fn fields_of(lead: &Lead, keys: &[&str], kind: impl Fn(&str, &str) -> &'static str) -> Vec<FieldView> {
    keys.iter()
        .filter_map(|k| {
            let value = lead.fields.get(k).cloned().or_else(|| lead.times.get(k).map(|t| view::full_time(*t)))?;
            // A contact the agent did not enter: found in what the visitor typed.
            let label =
                if lead.found_in_chat.contains(k) { format!("{}（聊天中找到）", label(k)) } else { label(k) };
            Some(FieldView { label, kind: kind(k, &value), value })
        })
        .collect()
}

const CONTACT: &[&str] =
    &["mobile", "tel", "weixin", "qq", "email", "name", "sex", "area", "district", "country", "province", "city"];
const ORIGIN: &[&str] = &[
    "search_engine",
    "search_host",
    "keyword",
    "bidding_word",
    "promotion_id",
    "promotion_name",
    "first_url",
    "refer",
    "chat_url",
    "last_landing_page",
    "device_type",
    "ip",
    "ipv6",
    "site_name",
    "tg_ad_account_name",
    "tg_plan_name",
    "tg_group_name",
    "tg_creative_name",
    "tg_keyword_name",
];
const VENDOR: &[&str] = &[
    "user_real_name",
    "user_id",
    "user_no",
    "create_user_real_name",
    "create_user_id",
    "edit_user_real_name",
    "edit_user_display_name",
    "subject_name",
    "school_name",
    "ntag_name",
    "ntag_message",
    "card_type",
    "note",
    "create_time",
    "edit_time",
    "allocation_time",
    "company_name",
    "group_name",
    "visitor_static_id",
    "chat_id",
];

async fn visible_lead(app: &AppState, user: &User, id: i64) -> Result<xiansuo_store::LeadDetail, PageError> {
    match app.store.lead(id).await? {
        Some(d) if user.may_see(d.lead.owner_id) => Ok(d),
        // Not theirs: as if it did not exist.
        _ => Err(PageError::NotFound),
    }
}

pub async fn lead_page(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let user = &signed.0.user;
    let id = lead_id(&raw)?;
    let detail = visible_lead(&app, user, id).await?;
    let (events, users, mut duplicates) =
        tokio::try_join!(app.store.lead_events(id), app.store.users(), app.store.duplicates(id))?;
    duplicates.retain(|d| user.may_see(d.lead.owner_id));
    let names = user_names(&users);
    let lead = &detail.lead;
    let name_of = |id: Option<i64>| id.and_then(|i| names.get(&i).cloned()).unwrap_or_else(|| "待分配".to_string());

    let mut contact = fields_of(lead, CONTACT, |k, _| if matches!(k, "mobile" | "tel") { "tel" } else { "copy" });
    // What the visitor typed in the chat and the card does not already hold.
    for c in crate::repr::found_in_chat(&detail) {
        if lead.fields.get(c.kind.field()).is_some_and(|v| v == &c.value) {
            continue;
        }
        let kind = if matches!(c.kind, xiansuo_contacts::ContactKind::Mobile | xiansuo_contacts::ContactKind::Tel) {
            "tel"
        } else {
            "copy"
        };
        contact.push(FieldView { label: format!("{}（聊天中）", label(c.kind.field())), value: c.value, kind });
    }
    let origin =
        fields_of(
            lead,
            ORIGIN,
            |_, v| {
                if v.starts_with("http://") || v.starts_with("https://") { "url" } else { "text" }
            },
        );
    let vendor = fields_of(lead, VENDOR, |_, _| "text");
    let shown: Vec<&str> = CONTACT.iter().chain(ORIGIN).chain(VENDOR).copied().collect();
    let rest: Vec<&str> = FIELDS.iter().map(|f| f.key).filter(|k| !shown.contains(k)).collect();
    let mut other = fields_of(lead, &rest, |_, _| "text");
    other.extend(lead.extra.iter().map(|(k, v)| FieldView { label: k.clone(), value: v.clone(), kind: "text" }));

    // Messages grouped by chat, chats in the order their first message came.
    let mut chats: Vec<view::ChatView> = Vec::new();
    for m in &detail.messages {
        let chat_id = m.chat_id.clone().unwrap_or_else(|| "—".to_string());
        let from_visitor = m.sender == Sender::Visitor;
        let message = view::MessageView {
            from_visitor,
            who: if from_visitor { "访客".to_string() } else { m.from_id.clone().unwrap_or_else(|| "客服".into()) },
            time: m.create_time.map(view::full_time).unwrap_or_default(),
            text: plain_text(&m.message, m.kind.as_deref()),
        };
        match chats.iter_mut().find(|c| c.chat_id == chat_id) {
            Some(c) => c.messages.push(message),
            None => chats.push(view::ChatView { chat_id, messages: vec![message] }),
        }
    }

    let mut timeline: Vec<(xiansuo_domain::Instant, view::TimelineItem)> = events
        .iter()
        .map(|e| {
            let who = match &e.change {
                // Issue #11: the vendor's event came through the lead's source.
                LeadChange::VendorEvent { .. } => lead.source.clone(),
                _ => e.user_id.and_then(|u| names.get(&u).cloned()).unwrap_or_else(|| "系统".into()),
            };
            let (kind, text) = match &e.change {
                LeadChange::Status { from, to, reason } => (
                    "status",
                    match reason {
                        Some(r) => format!("把状态从「{}」改为「{}」，原因：{r}", from.label(), to.label()),
                        None => format!("把状态从「{}」改为「{}」", from.label(), to.label()),
                    },
                ),
                LeadChange::Owner { to, claimed: true, .. } => {
                    ("owner", format!("认领了线索（负责人：{}）", name_of(*to)))
                }
                LeadChange::Owner { from, to, .. } => {
                    ("owner", format!("把负责人从「{}」改为「{}」", name_of(*from), name_of(*to)))
                }
                LeadChange::Note { text } => ("note", format!("备注：{text}")),
                LeadChange::Duplicate { leads, contacts } => {
                    let shared: Vec<String> = contacts.iter().map(|(k, v)| format!("{} {v}", label(k))).collect();
                    let others: Vec<String> = leads.iter().map(|l| format!("#{l}")).collect();
                    ("duplicate", format!("可能与线索 {} 重复（相同{}）", others.join("、"), shared.join("、")))
                }
                LeadChange::Merged { other, filled } if filled.is_empty() => {
                    ("merge", format!("把线索 #{other} 合并到这里"))
                }
                LeadChange::Merged { other, filled } => {
                    let filled: Vec<String> = filled.iter().map(|f| label(f)).collect();
                    ("merge", format!("把线索 #{other} 合并到这里，补充了：{}", filled.join("、")))
                }
                LeadChange::MergedInto { into } => ("merge", format!("合并到了线索 #{into}")),
                LeadChange::Unmerged { other } => ("merge", format!("撤销了与线索 #{other} 的合并")),
                LeadChange::Dismissed { other } => ("merge", format!("确认与线索 #{other} 不是同一人")),
                // Issue #6: the rule that assigned a new lead.
                LeadChange::AutoAssigned { to, rule } if rule == xiansuo_domain::routing::OWNER_MAP_RULE => {
                    ("owner", format!("按易聊所属者自动分配给「{}」", name_of(Some(*to))))
                }
                LeadChange::AutoAssigned { to, rule } => {
                    ("owner", format!("按规则「{rule}」自动分配给「{}」", name_of(Some(*to))))
                }
                // Issue #11: a chat started or ended, a rating: `七鱼: 访客评价 5 星`.
                LeadChange::VendorEvent { vendor, text, .. } => {
                    ("vendor", format!("{}: {text}", xiansuo_domain::vendor_label(vendor)))
                }
            };
            let link = match &e.change {
                LeadChange::Duplicate { leads, .. } => leads.first().copied(),
                LeadChange::Merged { other, .. } | LeadChange::Unmerged { other } | LeadChange::Dismissed { other } => {
                    Some(*other)
                }
                LeadChange::MergedInto { into } => Some(*into),
                _ => None,
            };
            // Entries of leads merged into this one say so.
            let text = if e.lead_id == id { text } else { format!("（线索 #{}）{text}", e.lead_id) };
            (e.at, view::TimelineItem { time: view::full_time(e.at), who, text, kind, link })
        })
        .collect();
    timeline.extend(detail.pushes.iter().map(|p| {
        let text = match p.outcome {
            PushOutcomeKind::Accepted => format!("推送 #{} 更新了名片", p.id),
            other => format!("推送 #{}（{}）", p.id, other.as_str()),
        };
        (
            p.received_at,
            view::TimelineItem {
                time: view::full_time(p.received_at),
                who: lead.source.clone(),
                text,
                kind: "push",
                link: None,
            },
        )
    }));
    timeline.sort_by_key(|(at, _)| *at);

    let mut assignees =
        vec![Choice { value: String::new(), label: "待分配".into(), selected: lead.owner_id.is_none() }];
    assignees.extend(users.iter().filter(|u| !u.disabled).map(|u| Choice {
        value: u.id.to_string(),
        label: format!("{}（{}）", u.name, u.role.label()),
        selected: lead.owner_id == Some(u.id),
    }));
    let title = lead
        .fields
        .get("name")
        .or_else(|| lead.fields.get("mobile"))
        .cloned()
        .unwrap_or_else(|| format!("线索 {}", lead.id));
    let lead_page = view::LeadPage {
        me: Me::of(user, &signed.0.csrf),
        id,
        title,
        status: lead.status.as_str().into(),
        status_label: lead.status.label().into(),
        status_reason: lead.status_reason.clone().unwrap_or_default(),
        owner: lead.owner_id.and_then(|o| names.get(&o).cloned()).unwrap_or_default(),
        can_claim: lead.owner_id.is_none(),
        statuses: view::status_choices(Some(lead.status), false),
        assignees,
        tag: crate::repr::tag_of(lead, &app.tags).map(|t| view::TagView::of(&t, &app.tags)),
        score: lead.score,
        score_reasons: lead.score_reasons.iter().map(|r| format!("{} +{}", r.label(), r.points)).collect(),
        merged_into: lead.merged_into,
        duplicates: duplicates
            .iter()
            .map(|d| {
                let l = &d.lead;
                let name = l.fields.get("name").or_else(|| l.fields.get("mobile")).cloned();
                view::DuplicateView {
                    id: l.id,
                    title: name.unwrap_or_else(|| format!("线索 {}", l.id)),
                    summary: format!(
                        "#{} · {} · {} · 收到 {}",
                        l.id,
                        l.source,
                        l.status.label(),
                        view::full_time(l.received_at)
                    ),
                    shared: d.contacts.iter().map(|(k, v)| format!("{} {v}", label(k))).collect::<Vec<_>>().join("、"),
                }
            })
            .collect(),
        contact,
        origin,
        vendor,
        other,
        chats,
        timeline: timeline.into_iter().map(|(_, item)| item).collect(),
        received: view::full_time(lead.received_at),
        push_count: lead.push_count,
    };
    Ok(page(view::render(&lead_page)))
}

#[derive(Deserialize)]
pub struct StatusForm {
    csrf: String,
    status: String,
    reason: Option<String>,
}

fn back_to(id: i64) -> Response {
    Redirect::to(&format!("/leads/{id}")).into_response()
}

pub async fn set_status(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<StatusForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    let id = lead_id(&raw)?;
    let to = LeadStatus::parse(&form.status).ok_or_else(|| PageError::BadRequest("没有这个状态".into()))?;
    let reason = non_empty(&form.reason);
    if to.needs_reason() && reason.is_none() {
        return Err(PageError::BadRequest("标记为“无效”时请填写原因".into()));
    }
    app.store
        .update_lead(id, Actor::of(&signed.0.user), LeadUpdate::Status { to, reason }, xiansuo_domain::now())
        .await?;
    Ok(back_to(id))
}

#[derive(Deserialize)]
pub struct OwnerForm {
    csrf: String,
    owner: String,
}

pub async fn set_owner(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<OwnerForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    signed.require_admin()?;
    let id = lead_id(&raw)?;
    let to = match form.owner.trim() {
        "" => None,
        v => {
            let uid: i64 = v.parse().map_err(|_| PageError::BadRequest("负责人无效".into()))?;
            match app.store.user(uid).await? {
                Some(u) if !u.disabled => Some(u.id),
                _ => return Err(PageError::BadRequest("这个用户不存在或已停用".into())),
            }
        }
    };
    app.store.update_lead(id, Actor::of(&signed.0.user), LeadUpdate::Assign { to }, xiansuo_domain::now()).await?;
    Ok(back_to(id))
}

pub async fn claim(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    let id = lead_id(&raw)?;
    app.store.update_lead(id, Actor::of(&signed.0.user), LeadUpdate::Claim, xiansuo_domain::now()).await?;
    Ok(back_to(id))
}

#[derive(Deserialize)]
pub struct NoteForm {
    csrf: String,
    text: String,
}

pub async fn add_note(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<NoteForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    let id = lead_id(&raw)?;
    let text = form.text.trim();
    if text.is_empty() || text.chars().count() > 5000 {
        return Err(PageError::BadRequest("备注需要 1 到 5000 个字".into()));
    }
    app.store
        .update_lead(id, Actor::of(&signed.0.user), LeadUpdate::Note { text: text.to_string() }, xiansuo_domain::now())
        .await?;
    Ok(back_to(id))
}

#[derive(Deserialize)]
pub struct OtherLeadForm {
    csrf: String,
    other: String,
}

fn other_lead(form: &OtherLeadForm) -> Result<i64, PageError> {
    form.other.trim().parse().map_err(|_| PageError::BadRequest("请选择另一条线索".into()))
}

/// The console's merge, unmerge and dismiss forms (admins).
async fn duplicate_form(
    app: &AppState,
    signed: &Signed,
    id: i64,
    action: DuplicateAction,
) -> Result<Response, PageError> {
    signed.require_admin()?;
    let user = &signed.0.user;
    merging::apply(app, Who::user(user), Actor::of(user), id, action).await?;
    Ok(back_to(id))
}

/// Admin: merges the other lead into this one.
pub async fn merge(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<OtherLeadForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    let (id, other) = (lead_id(&raw)?, other_lead(&form)?);
    duplicate_form(&app, &signed, id, DuplicateAction::Merge { other }).await
}

/// Admin: undoes this lead's merge into another; back on this lead, in the lists again.
pub async fn unmerge(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    duplicate_form(&app, &signed, lead_id(&raw)?, DuplicateAction::Unmerge).await
}

/// Admin: the other lead is not the same visitor.
pub async fn dismiss(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<OtherLeadForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    let (id, other) = (lead_id(&raw)?, other_lead(&form)?);
    duplicate_form(&app, &signed, id, DuplicateAction::Dismiss { other }).await
}

// ---------------------------------------------------------------------------------------------
// Push log

#[derive(Deserialize)]
pub struct PushesQuery {
    outcome: Option<String>,
    page: Option<u32>,
    /// A push just replayed: its outcome is shown on top.
    replayed: Option<i64>,
}

async fn pushes_page(
    app: &AppState,
    signed: &Signed,
    q: PushesQuery,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let outcome = non_empty(&q.outcome).and_then(|o| PushOutcomeKind::parse(&o));
    let page_no = q.page.unwrap_or(1).max(1);
    let list = app.store.list_pushes(&PushQuery { outcome, source: None, page: page_no, per_page: 20 }).await?;
    let outcome_value = outcome.map(|o| o.as_str().to_string()).unwrap_or_default();
    let url = |p: u32| {
        if outcome_value.is_empty() {
            format!("/admin/pushes?page={p}")
        } else {
            format!("/admin/pushes?outcome={outcome_value}&page={p}")
        }
    };
    // Issue #11: each push's relay attempts.
    let ids: Vec<i64> = list.items.iter().map(|p| p.id).collect();
    let by_push = crate::sources::relays_of(app, &ids).await?;
    let relays: Vec<Vec<String>> =
        list.items.iter().map(|p| crate::sources::relay_lines(by_push.get(&p.id).map_or(&[], Vec::as_slice))).collect();
    let rows = list
        .items
        .iter()
        .zip(relays)
        .map(|(p, relays)| {
            let body = String::from_utf8_lossy(&p.body);
            let body: String = if body.chars().count() > 2000 {
                body.chars().take(2000).chain("…".chars()).collect()
            } else {
                body.into()
            };
            view::PushRow {
                id: p.id,
                received_at: view::full_time(p.received_at),
                source: p.source.clone(),
                outcome: p.outcome.as_str().into(),
                error: p.error.clone().unwrap_or_default(),
                body,
                lead_ids: p.lead_ids.clone(),
                relays,
            }
        })
        .collect();
    let pages_page = view::PushesPage {
        me: Me::of(&signed.0.user, &signed.0.csrf),
        outcome: outcome_value.clone(),
        rows,
        total: list.total,
        page: page_no,
        prev_url: (page_no > 1).then(|| url(page_no - 1)),
        next_url: (u64::from(page_no) * 20 < list.total).then(|| url(page_no + 1)),
        notice,
    };
    Ok(page(view::render(&pages_page)))
}

pub async fn pushes(
    State(app): State<AppState>,
    signed: Signed,
    Query(q): Query<PushesQuery>,
) -> Result<Response, PageError> {
    signed.require_admin()?;
    let notice = match q.replayed {
        Some(id) => app.store.push(id).await?.map(|p| match &p.error {
            Some(e) => format!("推送 #{id} 重放后仍被拒绝：{e}"),
            None => format!("推送 #{id} 已重放：{}，{} 条线索", p.outcome.as_str(), p.lead_ids.len()),
        }),
        None => None,
    };
    pushes_page(&app, &signed, q, notice).await
}

pub async fn replay(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    signed.require_admin()?;
    let id: i64 = raw.parse().map_err(|_| PageError::NotFound)?;
    match crate::push::replay(&app, id).await {
        // Back to the log (a reload of it does not replay again), which tells the outcome.
        Ok(_) => {
            let target = Some(format!("push {id}"));
            audit::record(app.store.as_ref(), Who::user(&signed.0.user), "push_replayed", target, json!({}), None)
                .await;
            Ok(Redirect::to(&format!("/admin/pushes?replayed={id}")).into_response())
        }
        Err(crate::ApiError::Store(e)) => Err(e.into()),
        Err(crate::ApiError::NotFound(_)) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Conflict(e.to_string())),
    }
}

// ---------------------------------------------------------------------------------------------
// Audit log

#[derive(Deserialize)]
pub struct AuditPageQuery {
    page: Option<u32>,
}

pub async fn audit_log(
    State(app): State<AppState>,
    signed: Signed,
    Query(q): Query<AuditPageQuery>,
) -> Result<Response, PageError> {
    signed.require_admin()?;
    let page_no = q.page.unwrap_or(1).clamp(1, 100_000);
    let list = app.store.audit_log(&xiansuo_store::AuditQuery { action: None, page: page_no, per_page: 50 }).await?;
    let rows = list
        .items
        .iter()
        .map(|r| {
            let e = &r.entry;
            view::AuditRow {
                at: view::full_time(e.at),
                actor: e.actor.clone(),
                action: e.action.clone(),
                label: audit::label(&e.action).to_string(),
                target: e.target.clone().unwrap_or_default(),
                detail: if e.detail.as_object().is_some_and(|o| o.is_empty()) {
                    String::new()
                } else {
                    e.detail.to_string()
                },
                ip: e.ip.clone().unwrap_or_default(),
            }
        })
        .collect();
    let audit_page = view::AuditPage {
        me: Me::of(&signed.0.user, &signed.0.csrf),
        rows,
        total: list.total,
        page: page_no,
        prev_url: (page_no > 1).then(|| format!("/admin/audit?page={}", page_no - 1)),
        next_url: (u64::from(page_no) * 50 < list.total).then(|| format!("/admin/audit?page={}", page_no + 1)),
    };
    Ok(page(view::render(&audit_page)))
}

// ---------------------------------------------------------------------------------------------
// Users

async fn users_page(
    app: &AppState,
    signed: &Signed,
    secret: Option<(String, String)>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let users = app.store.users().await?;
    let rows = users
        .iter()
        .map(|u| view::UserRow {
            id: u.id,
            name: u.name.clone(),
            role: u.role.label().into(),
            disabled: u.disabled,
            created: view::full_time(u.created_at),
            is_me: u.id == signed.0.user.id,
        })
        .collect();
    let status = if error.is_some() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
    let users_page = view::UsersPage { me: Me::of(&signed.0.user, &signed.0.csrf), rows, secret, error };
    Ok((status, page(view::render(&users_page))).into_response())
}

/// A generated password and its hash (hashed off the async threads).
async fn fresh_password() -> Result<(String, String), PageError> {
    let password = generate_password().map_err(PageError::Internal)?;
    let for_hash = password.clone();
    let hash = blocking(move || hash_password(&for_hash)).await?.map_err(PageError::Internal)?;
    Ok((password, hash))
}

pub async fn users(State(app): State<AppState>, signed: Signed) -> Result<Response, PageError> {
    signed.require_admin()?;
    users_page(&app, &signed, None, None).await
}

#[derive(Deserialize)]
pub struct NewUserForm {
    csrf: String,
    name: String,
    role: String,
}

pub async fn add_user(
    State(app): State<AppState>,
    signed: Signed,
    Form(form): Form<NewUserForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    signed.require_admin()?;
    let name = match valid_user_name(&form.name) {
        Ok(n) => n.to_string(),
        Err(e) => return users_page(&app, &signed, None, Some(e)).await,
    };
    let role = Role::parse(&form.role).ok_or_else(|| PageError::BadRequest("角色无效".into()))?;
    let (password, hash) = fresh_password().await?;
    match app.store.create_user(&name, role, &hash).await {
        Ok(user) => {
            tracing::info!(by = %signed.0.user.name, user = %user.name, role = role.as_str(), "user added");
            let (target, detail) = (Some(format!("user {}", user.name)), json!({ "role": role.as_str() }));
            audit::record(app.store.as_ref(), Who::user(&signed.0.user), "user_added", target, detail, None).await;
            users_page(&app, &signed, Some((format!("用户 {name} 的初始密码"), password)), None).await
        }
        Err(xiansuo_store::StoreError::Conflict(m)) => users_page(&app, &signed, None, Some(m)).await,
        Err(e) => Err(e.into()),
    }
}

pub async fn user_action(
    State(app): State<AppState>,
    signed: Signed,
    Path((raw, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    signed.require_admin()?;
    let id: i64 = raw.parse().map_err(|_| PageError::NotFound)?;
    let user = app.store.user(id).await?.ok_or(PageError::NotFound)?;
    let (change, secret) = match action.as_str() {
        "disable" if user.id == signed.0.user.id => return Err(PageError::BadRequest("不能停用自己".into())),
        "disable" => (UserChange::Disabled(true), None),
        "enable" => (UserChange::Disabled(false), None),
        "reset-password" => {
            let (password, hash) = fresh_password().await?;
            (UserChange::Password(hash), Some((format!("用户 {} 的新密码", user.name), password)))
        }
        "api-token" => {
            let token = random_hex(24).map_err(PageError::Internal)?;
            (UserChange::ApiToken(Some(sha256_hex(&token))), Some((format!("用户 {} 的 API 令牌", user.name), token)))
        }
        _ => return Err(PageError::NotFound),
    };
    app.store.update_user(id, change).await?;
    tracing::info!(by = %signed.0.user.name, user = %user.name, action = %action, "user changed");
    let what = match action.as_str() {
        "disable" => "user_disabled",
        "enable" => "user_enabled",
        "reset-password" => "user_password_reset",
        _ => "user_api_token_issued",
    };
    audit::record(
        app.store.as_ref(),
        Who::user(&signed.0.user),
        what,
        Some(format!("user {}", user.name)),
        json!({}),
        None,
    )
    .await;
    users_page(&app, &signed, secret, None).await
}

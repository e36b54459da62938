//! `/api/v1`: leads and the push log (admin token required, see [`crate::auth`]).

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use xiansuo_domain::{Instant, LeadStatus, PushOutcomeKind};
use xiansuo_store::{LeadQuery, LeadSort, OwnerFilter, Page, PushQuery};

use axum::extract::rejection::JsonRejection;

use crate::audit::{self, Who};
use crate::auth::Principal;
use crate::merging::{self, DuplicateAction};
use crate::push::{push_answer, replay};
use crate::{ApiError, AppState, repr};

pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 200;

#[derive(Debug, Default, Deserialize)]
pub struct LeadParams {
    q: Option<String>,
    status: Option<String>,
    source: Option<String>,
    province: Option<String>,
    city: Option<String>,
    search_engine: Option<String>,
    ntag_id: Option<String>,
    tag: Option<String>,
    user_id: Option<String>,
    owner: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    sort: Option<String>,
    // Attribution filters (the dashboard's segments link to them).
    keyword: Option<String>,
    bidding_word: Option<String>,
    promotion_id: Option<String>,
    site_name: Option<String>,
    device_type: Option<String>,
    subject_name: Option<String>,
    school_name: Option<String>,
    search_host: Option<String>,
    landing: Option<String>,
    // The dashboard's hour-of-day and empty segments link to these.
    hour: Option<String>,
    empty: Option<String>,
}

impl LeadParams {
    /// The attribution filters given, as (column, value).
    fn field_filters(&mut self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (column, value) in [
            ("keyword", self.keyword.take()),
            ("bidding_word", self.bidding_word.take()),
            ("promotion_id", self.promotion_id.take()),
            ("site_name", self.site_name.take()),
            ("device_type", self.device_type.take()),
            ("subject_name", self.subject_name.take()),
            ("school_name", self.school_name.take()),
            ("search_host", self.search_host.take()),
        ] {
            if let Some(v) = non_empty(value) {
                out.push((column, v));
            }
        }
        out
    }

    /// The filter's parameters as given (for the export log), paging left out.
    pub fn filter_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("q", &self.q),
            ("status", &self.status),
            ("source", &self.source),
            ("province", &self.province),
            ("city", &self.city),
            ("search_engine", &self.search_engine),
            ("ntag_id", &self.ntag_id),
            ("user_id", &self.user_id),
            ("owner", &self.owner),
            ("from", &self.from),
            ("to", &self.to),
            ("sort", &self.sort),
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
            if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                m.insert(k.into(), json!(v));
            }
        }
        Value::Object(m)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct PushParams {
    outcome: Option<String>,
    source: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A parameter that, when present, must have a value (an enumeration or a number): `page=`
/// is an error, not the default.
fn given(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.trim().is_empty() => {
            Err(ApiError::BadRequest(format!("{name}: empty; leave the parameter out instead")))
        }
        other => Ok(other.map(|v| v.trim().to_string())),
    }
}

/// Query parameters, with a malformed query string (a repeated parameter, say) answered as a
/// JSON 400 like every other API error.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest(format!("the query string is not valid: {}", e.body_text())))
    }
}

fn number(name: &str, value: Option<String>, default: u32, max: u32) -> Result<u32, ApiError> {
    match given(name, value)? {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("{name}: \"{v}\" is not a whole number from 1 to {max}"))),
    }
}

/// `from`/`to`: RFC 3339, `YYYY-MM-DD HH:MM:SS` (China time) or a date. A date as `to`
/// includes that whole day.
fn bound(name: &str, value: Option<String>, end_of_day: bool) -> Result<Option<Instant>, ApiError> {
    let Some(v) = given(name, value)? else { return Ok(None) };
    let parsed = xiansuo_push::parse_time_bound(&v, end_of_day);
    parsed.map(Some).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name}: \"{v}\" is not a time: use YYYY-MM-DD, YYYY-MM-DD HH:MM:SS (China time), RFC 3339 or epoch seconds"
        ))
    })
}

/// `owner`: `none` for the unassigned pool, or a user id.
fn owner_filter(value: Option<String>) -> Result<Option<OwnerFilter>, ApiError> {
    match given("owner", value)?.as_deref() {
        None => Ok(None),
        Some("none") => Ok(Some(OwnerFilter::Unassigned)),
        Some(v) => v
            .parse::<i64>()
            .map(|id| Some(OwnerFilter::User(id)))
            .map_err(|_| ApiError::BadRequest(format!("owner: \"{v}\" is neither none nor a user id"))),
    }
}

/// `hour`: the hour of day a lead was received, China time, 0 to 23 (an empty value filters
/// nothing, as the inbox form sends it).
pub fn hour_filter(value: Option<&str>) -> Result<Option<u32>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|h| *h < 24)
            .map(Some)
            .ok_or_else(|| format!("hour: \"{v}\" is not an hour of day from 0 to 23")),
    }
}

/// `empty`: comma-separated filters whose field must be empty (`empty=keyword,city`): the
/// dashboard's "（未填）" segments.
pub fn empty_filters(value: Option<&str>) -> Result<Vec<&'static str>, String> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in value.unwrap_or_default().split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let known = xiansuo_store::reports::EMPTY_FILTERS;
        let Some(f) = known.iter().find(|f| **f == name) else {
            return Err(format!("empty: \"{name}\" is not a filter that can be empty; known: {}", known.join(", ")));
        };
        if !out.contains(f) {
            out.push(*f);
        }
    }
    Ok(out)
}

/// The lead filter's parameter names.
pub const LEAD_PARAMS: &[&str] = &[
    "q",
    "status",
    "source",
    "province",
    "city",
    "search_engine",
    "ntag_id",
    "tag",
    "user_id",
    "owner",
    "from",
    "to",
    "page",
    "per_page",
    "sort",
    "keyword",
    "bidding_word",
    "promotion_id",
    "site_name",
    "device_type",
    "subject_name",
    "school_name",
    "search_host",
    "landing",
    "hour",
    "empty",
];

/// A 400 naming the first query parameter that is none of `known` (a misspelt filter would
/// otherwise widen an export or a report silently).
pub fn reject_unknown(raw: Option<&str>, known: &[&[&str]]) -> Result<(), ApiError> {
    for (name, _) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !known.iter().any(|set| set.contains(&name.as_ref())) {
            let all: Vec<&str> = known.iter().flat_map(|s| s.iter().copied()).collect();
            return Err(ApiError::BadRequest(format!(
                "\"{name}\" is not a parameter of this request; known: {}",
                all.join(", ")
            )));
        }
    }
    Ok(())
}

/// `page`: from 1.
pub fn page_number(value: Option<String>) -> Result<u32, ApiError> {
    number("page", value, 1, u32::MAX / MAX_PER_PAGE)
}

/// `per_page`: 1 to 200, 50 by default.
pub fn per_page_number(value: Option<String>) -> Result<u32, ApiError> {
    number("per_page", value, DEFAULT_PER_PAGE, MAX_PER_PAGE)
}

fn page_json(page: &Page<Value>) -> Value {
    json!({ "total": page.total, "total_exact": page.total_exact, "page": page.page, "per_page": page.per_page, "items": page.items })
}

/// The lead filter of API parameters, with the caller's visibility: the one filter of the lead
/// list, the export and the stats.
pub fn lead_query(mut p: LeadParams, principal: &Principal) -> Result<LeadQuery, ApiError> {
    let fields = p.field_filters();
    let landing = non_empty(p.landing.take());
    let hour = hour_filter(p.hour.as_deref()).map_err(ApiError::BadRequest)?;
    let empty = empty_filters(p.empty.as_deref()).map_err(ApiError::BadRequest)?;
    let status = match given("status", p.status)? {
        None => None,
        Some(s) => Some(LeadStatus::parse(&s).ok_or_else(|| {
            let known: Vec<&str> = LeadStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::BadRequest(format!("status: \"{s}\" is not a status; known: {}", known.join(", ")))
        })?),
    };
    let sort = match given("sort", p.sort)? {
        None => LeadSort::default(),
        Some(s) => LeadSort::parse(&s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "sort: \"{s}\" is not a sort order; use one of {}",
                LeadSort::NAMES.join(", ")
            ))
        })?,
    };
    let query = LeadQuery {
        q: non_empty(p.q),
        status,
        source: non_empty(p.source),
        province: non_empty(p.province),
        city: non_empty(p.city),
        search_engine: non_empty(p.search_engine),
        ntag_id: non_empty(p.ntag_id),
        tag: non_empty(p.tag),
        user_id: non_empty(p.user_id),
        owner: owner_filter(p.owner)?,
        visible_to: principal.visible_to(),
        from: bound("from", p.from, false)?,
        to: bound("to", p.to, true)?,
        page: number("page", p.page, 1, u32::MAX / MAX_PER_PAGE)?,
        per_page: number("per_page", p.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
        sort,
        fields,
        landing,
        hour,
        empty,
    };
    Ok(query)
}

pub async fn list_leads(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(p): ApiQuery<LeadParams>,
) -> Result<Json<Value>, ApiError> {
    let query = lead_query(p, &principal)?;
    let page = app.store.list_leads(&query).await?;
    let page = Page {
        total: page.total,
        total_exact: page.total_exact,
        page: page.page,
        per_page: page.per_page,
        items: page.items.iter().map(|l| repr::lead(l, &app.tags)).collect(),
    };
    Ok(Json(page_json(&page)))
}

fn id(value: &str, what: &str) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::NotFound(format!("no {what} with id \"{value}\"")))
}

pub async fn get_lead(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(lead_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lead_id = id(&lead_id, "lead")?;
    // A lead the caller may not see does not exist for them.
    let detail = app
        .store
        .lead(lead_id)
        .await?
        .filter(|d| principal.may_see(d.lead.owner_id))
        .ok_or_else(|| ApiError::NotFound(format!("no lead with id {lead_id}")))?;
    let duplicates = visible_duplicates(&app, &principal, lead_id).await?;
    let events = app.store.lead_events(lead_id).await?;
    Ok(Json(repr::lead_detail(&detail, &duplicates, &events, &app.tags)))
}

/// The duplicates of a lead that the caller may see.
async fn visible_duplicates(
    app: &AppState,
    principal: &Principal,
    lead_id: i64,
) -> Result<Vec<xiansuo_store::Duplicate>, ApiError> {
    let mut duplicates = app.store.duplicates(lead_id).await?;
    duplicates.retain(|d| principal.may_see(d.lead.owner_id));
    Ok(duplicates)
}

/// A lead the caller may see, or 404.
async fn visible_lead(app: &AppState, principal: &Principal, lead_id: i64) -> Result<xiansuo_domain::Lead, ApiError> {
    app.store
        .lead(lead_id)
        .await?
        .map(|d| d.lead)
        .filter(|l| principal.may_see(l.owner_id))
        .ok_or_else(|| ApiError::NotFound(format!("no lead with id {lead_id}")))
}

pub async fn lead_duplicates(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(lead_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let lead_id = id(&lead_id, "lead")?;
    visible_lead(&app, &principal, lead_id).await?;
    let duplicates = visible_duplicates(&app, &principal, lead_id).await?;
    Ok(Json(json!({ "items": duplicates.iter().map(|d| repr::duplicate(d, &app.tags)).collect::<Vec<_>>() })))
}

#[derive(Debug, Deserialize)]
pub struct OtherLead {
    lead_id: i64,
}

fn event_json(event: &xiansuo_domain::LeadEvent) -> Value {
    json!({ "id": event.id, "lead_id": event.lead_id, "at": repr::time(event.at), "kind": event.change.kind() })
}

/// The other lead named in a merge or dismissal body.
fn other_lead(body: Result<Json<OtherLead>, JsonRejection>, what: &str) -> Result<i64, ApiError> {
    body.map(|Json(o)| o.lead_id).map_err(|e| ApiError::BadRequest(format!("send {{\"lead_id\": N}}, {what}: {e}")))
}

async fn duplicate_change(
    app: &AppState,
    principal: &Principal,
    lead_id: &str,
    action: impl FnOnce() -> Result<DuplicateAction, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let actor = principal.admin_actor()?;
    let lead_id = id(lead_id, "lead")?;
    let event = merging::apply(app, Who::principal(principal), actor, lead_id, action()?).await?;
    Ok(Json(event_json(&event)))
}

/// Admin: merges the lead in the body into this one.
pub async fn merge_lead(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(lead_id): Path<String>,
    body: Result<Json<OtherLead>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    duplicate_change(&app, &principal, &lead_id, || {
        Ok(DuplicateAction::Merge { other: other_lead(body, "the lead to merge into this one")? })
    })
    .await
}

/// Admin: undoes the merge of this lead into another.
pub async fn unmerge_lead(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(lead_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    duplicate_change(&app, &principal, &lead_id, || Ok(DuplicateAction::Unmerge)).await
}

/// Admin: the lead in the body is not a duplicate of this one.
pub async fn dismiss_duplicate(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(lead_id): Path<String>,
    body: Result<Json<OtherLead>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    duplicate_change(&app, &principal, &lead_id, || {
        Ok(DuplicateAction::Dismiss { other: other_lead(body, "the lead that is no duplicate")? })
    })
    .await
}

pub async fn list_pushes(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(p): ApiQuery<PushParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let outcome = match given("outcome", p.outcome)? {
        None => None,
        Some(o) => Some(PushOutcomeKind::parse(&o).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "outcome: \"{o}\" is not an outcome; use accepted, ignored, rejected or queued"
            ))
        })?),
    };
    let query = PushQuery {
        outcome,
        source: non_empty(p.source),
        page: number("page", p.page, 1, u32::MAX / MAX_PER_PAGE)?,
        per_page: number("per_page", p.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
    };
    let page = app.store.list_pushes(&query).await?;
    // Issue #11: each relay attempt of each push.
    let ids: Vec<i64> = page.items.iter().map(|p| p.id).collect();
    let relays = crate::sources::relays_of(&app, &ids).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for p in &page.items {
        let mut item = repr::push(p);
        item["relays"] = crate::sources::relays_json(relays.get(&p.id).map_or(&[], Vec::as_slice));
        items.push(item);
    }
    let page =
        Page { total: page.total, total_exact: page.total_exact, page: page.page, per_page: page.per_page, items };
    Ok(Json(page_json(&page)))
}

/// Decodes a stored body again under today's configuration and applies the result.
pub async fn replay_push(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(push_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let push_id = id(&push_id, "push")?;
    let (recorded, decoded) = replay(&app, push_id).await?;
    let target = Some(format!("push {push_id}"));
    audit::record(app.store.as_ref(), Who::principal(&principal), "push_replayed", target, json!({}), None).await;
    Ok(Json(match decoded {
        Ok(warnings) => push_answer(&recorded, &warnings),
        Err(error) => json!({
            "code": 0,
            "msg": "replayed; the body is still rejected",
            "push_id": recorded.push_id,
            "outcome": recorded.outcome.as_str(),
            "error": error.to_string(),
            "accepted": 0,
            "ignored": 0,
            "leads": [],
            "warnings": [],
        }),
    }))
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    action: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

/// Admin: the audit log, newest first.
pub async fn audit_log(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    principal.require_admin()?;
    let query = xiansuo_store::AuditQuery {
        action: non_empty(p.action),
        page: number("page", p.page, 1, u32::MAX / MAX_PER_PAGE)?,
        per_page: number("per_page", p.per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
    };
    let page = app.store.audit_log(&query).await?;
    let page = Page {
        total: page.total,
        total_exact: page.total_exact,
        page: page.page,
        per_page: page.per_page,
        items: page
            .items
            .iter()
            .map(|r| {
                let e = &r.entry;
                json!({ "id": r.id, "at": repr::time(e.at), "user_id": e.user_id, "actor": e.actor, "action": e.action,
                        "target": e.target, "detail": e.detail, "ip": e.ip })
            })
            .collect(),
    };
    Ok(Json(page_json(&page)))
}

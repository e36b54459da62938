//! Issue #6: the admin page of outbound deliveries — per sink, with status, attempts and the
//! last error — and redelivery of dead ones.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use xiansuo_store::outbox::{DeliveryQuery, DeliveryStatus, Redeliver};

use super::view::{self, Me};
use super::{PageError, Signed, encode, page};
use crate::AppState;

const PER_PAGE: u32 = 50;

pub struct SinkSummary {
    pub name: String,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
    pub selected: bool,
}

pub struct DeliveryView {
    pub id: i64,
    pub event_id: i64,
    pub kind: String,
    pub lead_id: i64,
    /// Issue #11: a relay delivery re-sends this push (and is about no lead).
    pub push_id: Option<i64>,
    pub sink: String,
    pub status: String,
    pub status_label: &'static str,
    pub attempts: i64,
    /// When it was delivered, or when the next attempt is due.
    pub when: String,
    pub created: String,
    pub last_status: String,
    pub last_error: String,
    pub dead: bool,
}

#[derive(askama::Template)]
#[template(path = "deliveries.html")]
pub struct DeliveriesPage {
    pub me: Me,
    pub sinks: Vec<SinkSummary>,
    pub sink: String,
    pub status: String,
    pub rows: Vec<DeliveryView>,
    pub total: u64,
    pub page: u32,
    pub prev_url: Option<String>,
    pub next_url: Option<String>,
    pub notice: Option<String>,
    /// The link of this view with another status (sink kept).
    pub base: String,
}

fn label(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "待投递",
        DeliveryStatus::Delivered => "已投递",
        DeliveryStatus::Dead => "已放弃",
    }
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    sink: Option<String>,
    status: Option<String>,
    page: Option<u32>,
    redelivered: Option<u64>,
}

pub async fn list(
    State(app): State<AppState>,
    signed: Signed,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Response, PageError> {
    signed.require_admin()?;
    let sink = q.sink.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| PageError::BadRequest(format!("没有“{s}”这个状态")))?),
    };
    let page_no = q.page.unwrap_or(1).max(1);
    let query = DeliveryQuery { sink: sink.clone(), status, lead_id: None, page: page_no, per_page: PER_PAGE };
    let (list, counts) = tokio::try_join!(app.store.list_deliveries(&query), app.store.delivery_counts())?;
    let mut sinks: Vec<SinkSummary> = Vec::new();
    for c in counts {
        let i = match sinks.iter().position(|s| s.name == c.sink) {
            Some(i) => i,
            None => {
                let selected = sink.as_deref() == Some(c.sink.as_str());
                sinks.push(SinkSummary { name: c.sink.clone(), pending: 0, delivered: 0, dead: 0, selected });
                sinks.len() - 1
            }
        };
        match c.status {
            DeliveryStatus::Pending => sinks[i].pending += c.count,
            DeliveryStatus::Delivered => sinks[i].delivered += c.count,
            DeliveryStatus::Dead => sinks[i].dead += c.count,
        }
    }
    let sink_value = sink.clone().unwrap_or_default();
    let status_value = status.map(|s| s.as_str().to_string()).unwrap_or_default();
    let base = if sink_value.is_empty() {
        "/admin/deliveries?".to_string()
    } else {
        format!("/admin/deliveries?sink={}&", encode(&sink_value))
    };
    let url = |p: u32| {
        if status_value.is_empty() {
            format!("{base}page={p}")
        } else {
            format!("{base}status={status_value}&page={p}")
        }
    };
    let rows = list
        .items
        .iter()
        .map(|d| DeliveryView {
            id: d.id,
            event_id: d.event_id,
            kind: d.kind.clone(),
            lead_id: d.lead_id,
            push_id: d.push_id,
            sink: d.sink.clone(),
            status: d.status.as_str().to_string(),
            status_label: label(d.status),
            attempts: d.attempts,
            when: match (d.status, d.delivered_at) {
                (DeliveryStatus::Delivered, Some(at)) => view::full_time(at),
                (DeliveryStatus::Pending, _) => format!("下次 {}", view::full_time(d.next_at)),
                _ => String::new(),
            },
            created: view::full_time(d.created_at),
            last_status: d.last_status.map(|s| s.to_string()).unwrap_or_default(),
            last_error: d.last_error.clone().unwrap_or_default(),
            dead: d.status == DeliveryStatus::Dead,
        })
        .collect();
    let deliveries_page = DeliveriesPage {
        me: Me::of(&signed.0.user, &signed.0.csrf),
        sinks,
        sink: sink_value,
        status: status_value.clone(),
        rows,
        total: list.total,
        page: page_no,
        prev_url: (page_no > 1).then(|| url(page_no - 1)),
        next_url: (u64::from(page_no) * u64::from(PER_PAGE) < list.total).then(|| url(page_no + 1)),
        notice: q.redelivered.map(|n| format!("已重新排队 {n} 条投递")),
        base,
    };
    Ok(page(view::render(&deliveries_page)))
}

#[derive(Deserialize)]
pub struct RedeliverForm {
    csrf: String,
    /// For "all dead of a sink".
    sink: Option<String>,
}

/// `POST /admin/deliveries/{id}/redeliver`, or `/admin/deliveries/all/redeliver` with a sink:
/// dead deliveries are queued again, due now, attempts from zero.
pub async fn redeliver(
    State(app): State<AppState>,
    signed: Signed,
    Path(raw): Path<String>,
    Form(form): Form<RedeliverForm>,
) -> Result<Response, PageError> {
    signed.check_csrf(&form.csrf)?;
    signed.require_admin()?;
    let (which, back) = if raw == "all" {
        let sink = form.sink.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or(PageError::NotFound)?;
        (Redeliver::AllDeadOf(sink.to_string()), format!("sink={}&", encode(sink)))
    } else {
        (Redeliver::One(raw.parse().map_err(|_| PageError::NotFound)?), String::new())
    };
    let n = app.store.redeliver(which, xiansuo_domain::now()).await?;
    tracing::info!(by = %signed.0.user.name, count = n, "dead deliveries queued again");
    let detail = serde_json::json!({ "count": n, "which": raw });
    crate::audit::record(
        app.store.as_ref(),
        crate::audit::Who::user(&signed.0.user),
        "deliveries_redelivered",
        None,
        detail,
        None,
    )
    .await;
    Ok(Redirect::to(&format!("/admin/deliveries?{back}redelivered={n}")).into_response())
}

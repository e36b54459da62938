//! Issue #11: what the web layer shows of a source's relays (and, later, its kinds).

use serde_json::{Value, json};
use xiansuo_store::outbox::{DeliveryQuery, DeliveryStatus};

use crate::repr::time;
use crate::{ApiError, AppState};

/// Most relay targets listed per push (a source has a handful).
const MAX_RELAYS: u32 = 50;

/// The relay deliveries of a push, one per target: where each stands, its attempts and the
/// last answer.
pub async fn relays_json(app: &AppState, push_id: i64) -> Result<Value, ApiError> {
    let query = DeliveryQuery { push_id: Some(push_id), page: 1, per_page: MAX_RELAYS, ..Default::default() };
    let page = app.store.list_deliveries(&query).await?;
    let mut rows = page.items;
    rows.sort_by_key(|d| d.id);
    Ok(Value::Array(
        rows.iter()
            .map(|d| {
                json!({
                    "delivery_id": d.id,
                    "target": d.sink,
                    "status": d.status.as_str(),
                    "attempts": d.attempts,
                    "last_status": d.last_status,
                    "last_error": d.last_error,
                    "delivered_at": d.delivered_at.map(time),
                    "next_at": (d.status == DeliveryStatus::Pending).then(|| time(d.next_at)),
                })
            })
            .collect(),
    ))
}

/// The push log page's lines about a push's relays: `relay:easyliao:1 已投递 · 尝试 2 次 · HTTP 200`.
pub async fn relay_lines(app: &AppState, push_id: i64) -> Result<Vec<String>, xiansuo_store::StoreError> {
    let query = DeliveryQuery { push_id: Some(push_id), page: 1, per_page: MAX_RELAYS, ..Default::default() };
    let mut rows = app.store.list_deliveries(&query).await?.items;
    rows.sort_by_key(|d| d.id);
    Ok(rows
        .iter()
        .map(|d| {
            let status = match d.status {
                DeliveryStatus::Pending => "待投递",
                DeliveryStatus::Delivered => "已投递",
                DeliveryStatus::Dead => "已放弃",
            };
            let mut line = format!("{} {status} · 尝试 {} 次", d.sink, d.attempts);
            if let Some(s) = d.last_status {
                line.push_str(&format!(" · HTTP {s}"));
            }
            if let Some(e) = &d.last_error {
                line.push_str(&format!(" · {e}"));
            }
            line
        })
        .collect())
}

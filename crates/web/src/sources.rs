//! Issue #11: what the web layer shows of a source's relays (and, later, its kinds).

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::{Value, json};
use xiansuo_push::vendors::{Kind, Request, Vendor};
use xiansuo_push::{DecodeError, DecodedPush};
use xiansuo_store::outbox::{DeliveryRow, DeliveryStatus};
use xiansuo_store::{NewPush, PushRecorded, PushResult, UNAUTHENTICATED_PREFIX, VendorPush};

use crate::repr::time;
use crate::{ApiError, AppState, Source};

/// The relay deliveries of these pushes (one per target: where each stands, its attempts and
/// the last answer), by push, oldest first; read in one query for a whole page of the push log.
pub async fn relays_of(
    app: &AppState,
    push_ids: &[i64],
) -> Result<HashMap<i64, Vec<DeliveryRow>>, xiansuo_store::StoreError> {
    let mut by_push: HashMap<i64, Vec<DeliveryRow>> = HashMap::new();
    for d in app.store.relay_deliveries(push_ids).await? {
        if let Some(push_id) = d.push_id {
            by_push.entry(push_id).or_default().push(d);
        }
    }
    Ok(by_push)
}

/// The API's `relays` of a push: each attempt, oldest first.
pub fn relays_json(rows: &[DeliveryRow]) -> Value {
    Value::Array(
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
    )
}

/// The push log page's lines about a push's relays: `relay:easyliao:1 已投递 · 尝试 2 次 · HTTP 200`.
pub fn relay_lines(rows: &[DeliveryRow]) -> Vec<String> {
    rows.iter()
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
        .collect()
}

/// Issue #11: a source's decoder and, for vendors that sign, its secret.
#[derive(Clone)]
pub struct SourceKind {
    pub vendor: std::sync::Arc<dyn Vendor>,
    pub secret: Option<String>,
}

impl Default for SourceKind {
    fn default() -> Self {
        SourceKind { vendor: Kind::EasyLiao.vendor(None), secret: None }
    }
}

impl SourceKind {
    pub fn new(
        kind: Kind,
        mapped: Option<xiansuo_push::vendors::mapped::MappedSpec>,
        secret: Option<String>,
    ) -> SourceKind {
        SourceKind { vendor: kind.vendor(mapped), secret }
    }

    /// Vendors that sign their requests are authenticated by the signature, not a token.
    pub fn signs(&self) -> bool {
        self.vendor.signs()
    }
}

/// The push endpoint's decoding step for every kind of source: the vendor's signature is checked
/// first (a bad or stale one: the body is kept as rejected, never relayed, and answered 401), then
/// the body is decoded by the source's vendor module. Also returns what the store writes in the
/// push's transaction beside it: the vendor's event id (a resent event is answered like the first
/// and not stored again) and, for an event without lead data, the visitor it names.
#[allow(clippy::too_many_arguments)]
pub async fn decode_request(
    app: &AppState,
    source: &Source,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    body: &[u8],
    content_type: Option<&str>,
    received_at: xiansuo_domain::Instant,
) -> Result<(PushResult, Result<Vec<String>, DecodeError>, VendorPush), ApiError> {
    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_string())))
        .collect();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()).into_owned().collect();
    let request = Request { body, content_type, headers: &header_list, query: &query, now: received_at };
    let vendor = source.kind.vendor.as_ref();
    if vendor.signs() {
        let verdict = match &source.kind.secret {
            Some(secret) => vendor.verify(&request, secret).map_err(|e| e.to_string()),
            None => Err(format!(
                "the source \"{}\" has no secret: set sources.{}.secret to the webhook's secret",
                source.name, source.name
            )),
        };
        if let Err(reason) = verdict {
            tracing::warn!(source = %source.name, %reason, "push with a bad signature");
            let error = format!("{UNAUTHENTICATED_PREFIX}{reason}");
            let recorded = app
                .store
                .record_push(NewPush {
                    source: source.name.clone(),
                    received_at,
                    content_type: content_type.map(str::to_string),
                    body: body.to_vec(),
                    query: kept_query(raw_query),
                    result: PushResult::Rejected { error },
                })
                .await?;
            return Err(ApiError::BadSignature { error: reason, push_id: recorded.push_id });
        }
    }
    let (result, decoded, events) = decode_with_events(source, &request);
    let extra = VendorPush { event_id: vendor.event_id(&request), events };
    Ok((result, decoded, extra))
}

/// A request's cards (what the store keeps, and the warnings or the refusal for the answer) and,
/// when it carries no card, the visitor's event it reports (a 七鱼 session end, say).
pub fn decode_with_events(
    source: &Source,
    request: &Request,
) -> (PushResult, Result<Vec<String>, DecodeError>, Vec<xiansuo_domain::VisitorEvent>) {
    let vendor = source.kind.vendor.as_ref();
    let decoded = vendor.decode(request, &source.rules);
    let events = match &decoded {
        Ok(d) if d.accepted() == 0 => vendor.visitor_event(request).into_iter().collect(),
        _ => Vec::new(),
    };
    let (result, decoded) = split(decoded);
    (result, decoded, events)
}

/// The query string kept with a push: its pairs but the token (which the push log must not
/// show); `None` when nothing is left.
pub fn kept_query(raw_query: Option<&str>) -> Option<String> {
    let pairs = form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()).filter(|(k, _)| k != "token");
    let kept = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    (!kept.is_empty()).then_some(kept)
}

/// The answer to a resent event (an event id the source has stored): a success, as the first
/// time, naming the push that stored it.
pub fn retry_answer(source: &Source, event_id: Option<&str>, first: &PushRecorded) -> axum::response::Response {
    let push_id = first.push_id;
    let answer = json!({
        "code": 0,
        "msg": format!("already received: a retry of push {push_id} (vendor event {}), not stored again", event_id.unwrap_or("")),
        "push_id": push_id,
        "outcome": first.outcome.as_str(),
        "accepted": first.accepted,
        "ignored": first.ignored,
        "leads": first.leads.iter().map(|l| json!({ "id": l.id, "created": false, "duplicates": [] })).collect::<Vec<_>>(),
        "warnings": [],
        "duplicate": true,
    });
    success(source, answer)
}

/// A decoded push as the store keeps it, and the warnings (or the error) for the answer.
pub fn split(decoded: Result<DecodedPush, DecodeError>) -> (PushResult, Result<Vec<String>, DecodeError>) {
    match decoded {
        Ok(decoded) => {
            let ignored = decoded.ignored();
            let mut warnings = Vec::new();
            let mut cards = Vec::with_capacity(decoded.cards.len());
            for c in decoded.cards {
                warnings.extend(c.warnings);
                if !c.ignored {
                    cards.push(c.card);
                }
            }
            (PushResult::Cards { cards, ignored }, Ok(warnings))
        }
        Err(e) => (PushResult::Rejected { error: e.to_string().replace('\0', "\u{FFFD}") }, Err(e)),
    }
}

/// The answer to a stored push: the vendor's idea of success (七鱼: an empty body), else the
/// push endpoint's JSON answer.
pub fn success(source: &Source, answer: Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    match source.kind.vendor.success() {
        Some(a) => {
            let status = axum::http::StatusCode::from_u16(a.status).unwrap_or(axum::http::StatusCode::OK);
            (status, [(axum::http::header::CONTENT_TYPE, a.content_type)], a.body).into_response()
        }
        None => axum::Json(answer).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::kept_query;

    #[test]
    fn the_kept_query_string_has_no_token() {
        assert_eq!(
            kept_query(Some("token=secret&appKey=k%201&eventType=MSG")).as_deref(),
            Some("appKey=k+1&eventType=MSG")
        );
        // A percent-encoded key is the same key.
        assert_eq!(kept_query(Some("%74oken=secret&a=1")).as_deref(), Some("a=1"));
        assert_eq!(kept_query(Some("token=secret")), None);
        assert_eq!(kept_query(Some("")), None);
        assert_eq!(kept_query(None), None);
        // Values decode back to what they were (what the vendor's decoder reads).
        let kept = kept_query(Some("appKey=%E4%B8%83%E9%B1%BC&x=a%26b")).unwrap_or_default();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(kept.as_bytes()).into_owned().collect();
        assert_eq!(pairs, [("appKey".to_string(), "七鱼".to_string()), ("x".to_string(), "a&b".to_string())]);
    }
}

//! `POST /push/{source}`: authenticate, read, decode, store durably, answer.

use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use xiansuo_push::DecodeError;
use xiansuo_store::{NewPush, PushRecorded, PushResult, StoreError, VendorRecorded};

use std::net::SocketAddr;

use axum::extract::ConnectInfo;

use crate::access::client_ip;
use crate::auth::bearer;
use crate::{ApiError, AppState, Source};

#[derive(Debug, Deserialize)]
pub struct PushParams {
    token: Option<String>,
}

/// Decodes a stored body (with the query string kept beside it) under a source's rules, into
/// what the store keeps, the decoder's warnings (or why the body was refused) and, for a body
/// without cards, its visitor's event. For a replay, a spooled push and a queued one.
pub fn decode_for_store(
    source: &Source,
    body: &[u8],
    content_type: Option<&str>,
    query: Option<&str>,
) -> (PushResult, Result<Vec<String>, DecodeError>, Vec<xiansuo_domain::VisitorEvent>) {
    // Issue #11: the source's vendor module decodes (the signature was checked on arrival).
    let query: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    let request =
        xiansuo_push::vendors::Request { body, content_type, headers: &[], query: &query, now: xiansuo_domain::now() };
    crate::sources::decode_with_events(source, &request)
}

/// The answer to a push (and to a replay) whose body decoded.
pub fn push_answer(recorded: &PushRecorded, warnings: &[String]) -> serde_json::Value {
    json!({
        "code": 0,
        "msg": "ok",
        "push_id": recorded.push_id,
        "outcome": recorded.outcome.as_str(),
        "accepted": recorded.accepted,
        "ignored": recorded.ignored,
        "leads": recorded
            .leads
            .iter()
            .map(|l| json!({ "id": l.id, "created": l.created, "duplicates": l.duplicates }))
            .collect::<Vec<_>>(),
        "warnings": warnings,
    })
}

fn presented_token<'a>(params: &'a PushParams, headers: &'a HeaderMap) -> impl Iterator<Item = &'a str> {
    params
        .token
        .as_deref()
        .into_iter()
        .chain(bearer(headers))
        .chain(headers.get("x-push-token").and_then(|v| v.to_str().ok()).map(str::trim))
}

pub async fn receive_push(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(source_name): Path<String>,
    Query(params): Query<PushParams>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received_at = xiansuo_domain::now();
    let source = app
        .sources
        .get(&source_name)
        .ok_or_else(|| ApiError::NotFound(format!("no source named \"{source_name}\" is configured")))?;
    let ip = client_ip(peer.ip(), &headers, &app.trusted_proxies);
    if !source.access.allows(ip) {
        tracing::warn!(source = %source.name, %ip, "push from an address the source does not accept");
        return Err(ApiError::AddressRefused { ip, name: source.name.clone() });
    }
    // Issue #11: a vendor that signs its requests is authenticated by the signature (checked
    // once the body is read, in `sources::decode_request`), not by a token.
    let presented: Vec<&str> = presented_token(&params, &headers).collect();
    if presented.is_empty() && !source.kind.signs() {
        return Err(ApiError::Unauthorized(
            "send the source's token as ?token=, Authorization: Bearer or X-Push-Token",
        ));
    }
    if !source.kind.signs() && !source.access.accepts(app.store.as_ref(), &presented).await? {
        return Err(ApiError::Unauthorized("the token is not this source's token"));
    }
    if let Err(wait) = source.access.take() {
        return Err(ApiError::RateLimited { name: source.name.clone(), wait });
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);

    let body = match read_limited(body, app.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(BodyReadError::TooLarge) => {
            // The body itself is not kept (that is the point of the limit), but the refusal is.
            let error = ApiError::TooLarge { limit: app.max_body_bytes, push_id: None }.to_string();
            let recorded = app
                .store
                .record_push(NewPush {
                    source: source.name.clone(),
                    received_at,
                    content_type,
                    body: Vec::new(),
                    query: crate::sources::kept_query(raw_query.as_deref()),
                    result: PushResult::Rejected { error },
                })
                .await?;
            return Err(ApiError::TooLarge { limit: app.max_body_bytes, push_id: Some(recorded.push_id) });
        }
        Err(BodyReadError::Io(e)) => return Err(ApiError::BadRequest(format!("could not read the request body: {e}"))),
    };

    // Issue #11: the source's vendor module checks the signature and decodes.
    let (result, decoded, vendor) = crate::sources::decode_request(
        &app,
        source,
        &headers,
        raw_query.as_deref(),
        &body,
        content_type.as_deref(),
        received_at,
    )
    .await?;
    // Entries wait in the spool: this push queues behind them, so that cards land in order.
    if let Some(spool) = app.spool.as_ref().filter(|s| s.has_waiting()) {
        return spooled(spool, source, received_at, content_type.as_deref(), raw_query.as_deref(), &body, decoded)
            .await;
    }
    let push = NewPush {
        source: source.name.clone(),
        received_at,
        content_type: content_type.clone(),
        body: body.to_vec(),
        query: crate::sources::kept_query(raw_query.as_deref()),
        result,
    };
    // Issue #11: the vendor's event id and its visitor's event, in the push's transaction (a body
    // that did not decode is kept as rejected, with neither).
    let event_id = vendor.event_id.clone();
    let stored = match &decoded {
        Ok(_) => app.store.record_vendor_push(push, vendor).await,
        Err(_) => app.store.record_push(push).await.map(|recorded| VendorRecorded {
            recorded,
            retry: false,
            events: Vec::new(),
        }),
    };
    let recorded = match stored {
        // A resent event: answered like the first time, stored once.
        Ok(VendorRecorded { recorded, retry: true, .. }) => {
            return Ok(crate::sources::retry_answer(source, event_id.as_deref(), &recorded));
        }
        Ok(VendorRecorded { recorded, .. }) => recorded,
        // The database refuses what the cards hold: keep the body as rejected, and say so with a
        // 4xx, since sending it again cannot help. (`body` is shared bytes: the second copy is
        // made only on this rare path.)
        Err(StoreError::Invalid(reason)) => {
            let error = format!("the database refused the card: {reason}");
            let rejected = NewPush {
                source: source.name.clone(),
                received_at,
                content_type,
                body: body.to_vec(),
                query: crate::sources::kept_query(raw_query.as_deref()),
                result: PushResult::Rejected { error: error.clone() },
            };
            let recorded = app.store.record_push(rejected).await?;
            return Err(ApiError::Refused { error, push_id: recorded.push_id });
        }
        // The database cannot be reached: with a spool, the push waits on disk.
        Err(StoreError::Unavailable(reason)) if app.spool.is_some() => {
            tracing::warn!(error = %reason, "database unavailable: the push goes to the spool");
            let spool = app.spool.as_ref().ok_or(ApiError::Store(StoreError::Unavailable(reason)))?;
            return spooled(spool, source, received_at, content_type.as_deref(), raw_query.as_deref(), &body, decoded)
                .await;
        }
        Err(e) => return Err(e.into()),
    };
    app.stored(&recorded);
    match decoded {
        // Issue #11: the answer the source's vendor counts as success.
        Ok(warnings) => Ok(crate::sources::success(source, push_answer(&recorded, &warnings))),
        Err(error) => Err(ApiError::Decode { error, push_id: Some(recorded.push_id) }),
    }
}

/// Keeps a push in the spool (on disk, fsynced) and answers 202; a body that does not decode is
/// kept too (to be stored as rejected) and answered with its error.
async fn spooled(
    spool: &crate::spool::Spool,
    source: &Source,
    received_at: xiansuo_domain::Instant,
    content_type: Option<&str>,
    raw_query: Option<&str>,
    body: &[u8],
    decoded: Result<Vec<String>, DecodeError>,
) -> Result<Response, ApiError> {
    let query = crate::sources::kept_query(raw_query);
    let id = spool.append(&source.name, received_at, content_type, query.as_deref(), body).await.map_err(|e| {
        tracing::error!(error = %e, "the spool cannot be written");
        ApiError::Store(StoreError::Unavailable(e))
    })?;
    match decoded {
        // A vendor with its own idea of success (七鱼: an empty body) gets it, or it sends again.
        Ok(_) if source.kind.vendor.success().is_some() => Ok(crate::sources::success(source, json!({}))),
        Ok(warnings) => Ok((
            axum::http::StatusCode::ACCEPTED,
            axum::Json(json!({
                "code": 0,
                "msg": "accepted: kept on disk while the database is unavailable, and stored in order once it is back",
                "outcome": "spooled",
                "spool_id": id,
                "warnings": warnings,
            })),
        )
            .into_response()),
        Err(error) => Err(ApiError::Decode { error, push_id: None }),
    }
}

enum BodyReadError {
    TooLarge,
    Io(axum::Error),
}

async fn read_limited(body: Body, limit: usize) -> Result<axum::body::Bytes, BodyReadError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.downcast_ref::<http_body_util::LengthLimitError>().is_some());
        if too_large { BodyReadError::TooLarge } else { BodyReadError::Io(e) }
    })
}

/// Decodes a stored push again under today's configuration and applies it (filling gaps only:
/// see the store). Shared by the API and the console.
pub async fn replay(
    app: &AppState,
    push_id: i64,
) -> Result<(PushRecorded, Result<Vec<String>, DecodeError>), ApiError> {
    let entry =
        app.store.push(push_id).await?.ok_or_else(|| ApiError::NotFound(format!("no push with id {push_id}")))?;
    let source = app.sources.get(&entry.source).ok_or_else(|| {
        ApiError::Conflict(format!(
            "push {push_id} came to the source \"{}\", which is no longer configured: add it back to replay",
            entry.source
        ))
    })?;
    if entry.body.is_empty() {
        // A refusal kept without its body (over max_body_bytes), or an empty body: nothing to decode.
        return Err(ApiError::Conflict(format!("push {push_id} has no stored body to replay")));
    }
    let (result, decoded, _) =
        decode_for_store(source, &entry.body, entry.content_type.as_deref(), entry.query.as_deref());
    let recorded = app.store.replay_push(push_id, result, xiansuo_domain::now()).await?;
    Ok((recorded, decoded))
}

//! The one error type of the HTTP layer, mapped to responses in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use xiansuo_push::DecodeError;
use xiansuo_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong token: {0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// A push from an address the source does not accept.
    #[error(
        "pushes from {ip} are not accepted for this source: add the address (or its network) to sources.{name}.allow_ips"
    )]
    AddressRefused { ip: std::net::IpAddr, name: String },
    /// Over the source's rate limit: nothing was stored.
    #[error("more pushes than sources.{name}.rate_limit allows: nothing was stored, send it again after Retry-After")]
    RateLimited { name: String, wait: std::time::Duration },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// The push body could not be decoded; `push_id` is its push log entry.
    #[error("{error}")]
    Decode { error: DecodeError, push_id: Option<i64> },
    /// The database refused the decoded cards; the body is kept as rejected.
    #[error("{error}")]
    Refused { error: String, push_id: i64 },
    /// Issue #11: a vendor's retry of an event already stored: answered as a success, without
    /// storing it again (the response is built by `sources`).
    #[error("a retry of an event already received")]
    AlreadyReceived(Box<axum::response::Response>),
    /// Issue #11: the vendor's signature does not hold (the body is kept as rejected).
    #[error("{error}")]
    BadSignature { error: String, push_id: i64 },
    #[error("the body is larger than {limit} bytes (max_body_bytes): split the batch, or raise the limit")]
    TooLarge { limit: usize, push_id: Option<i64> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) | ApiError::BadSignature { .. } => StatusCode::UNAUTHORIZED,
            ApiError::AlreadyReceived(r) => r.status(),
            ApiError::Forbidden(_) | ApiError::AddressRefused { .. } => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Decode { error, .. } if error.is_malformed() => StatusCode::BAD_REQUEST,
            ApiError::Decode { .. } | ApiError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Store(StoreError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store(StoreError::Overloaded | StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(StoreError::Setup(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::AlreadyReceived(response) = self {
            return *response;
        }
        let status = self.status();
        let message = match &self {
            ApiError::Store(StoreError::Overloaded) => {
                "the service is busy: nothing was stored, send the same request again in a second".to_string()
            }
            ApiError::Store(StoreError::Unavailable(_)) => {
                tracing::error!(error = %self, "storage unavailable");
                "the database is unavailable: nothing was stored, send the same request again later".to_string()
            }
            ApiError::Store(StoreError::Setup(_)) => {
                tracing::error!(error = %self, "storage failure");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let mut body = json!({ "code": status.as_u16(), "msg": message });
        if let ApiError::Decode { push_id: Some(id), .. }
        | ApiError::TooLarge { push_id: Some(id), .. }
        | ApiError::Refused { push_id: id, .. }
        | ApiError::BadSignature { push_id: id, .. } = &self
        {
            body["push_id"] = json!(id);
        }
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Store(StoreError::Overloaded | StoreError::Unavailable(_)) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited { wait, .. } => {
                let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}

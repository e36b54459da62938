//! Token checks: constant-time comparison, tokens from the places vendors and clients put them.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// Compares a presented token with the expected one in constant time.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Lets a request through to the API only with the admin token.
pub async fn require_admin(State(app): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    match bearer(request.headers()) {
        Some(token) if token_matches(token, &app.admin_token) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::Unauthorized("the bearer token is not the admin token")),
        None => Err(ApiError::Unauthorized("send Authorization: Bearer <admin_token>")),
    }
}

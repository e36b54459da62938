//! Token checks: constant-time comparison, tokens from the places vendors and clients put them.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use xiansuo_domain::User;

use crate::security::sha256_hex;
use crate::{ApiError, AppState};

/// Compares a presented token with the expected one in constant time. Both are hashed first,
/// so the comparison does not even reveal the expected token's length.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(presented.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who is calling the API.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The installation's admin token.
    AdminToken,
    /// A user's own API token, with the user's role and visibility.
    User(User),
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::AdminToken => true,
            Principal::User(u) => u.is_admin(),
        }
    }

    /// The agent whose visibility applies; `None` for admins.
    pub fn visible_to(&self) -> Option<i64> {
        match self {
            Principal::User(u) if !u.is_admin() => Some(u.id),
            _ => None,
        }
    }

    pub fn may_see(&self, owner_id: Option<i64>) -> bool {
        match self {
            Principal::AdminToken => true,
            Principal::User(u) => u.may_see(owner_id),
        }
    }

    /// An admin user, for changes recorded under a person (merges): the installation's admin
    /// token names nobody.
    pub fn admin_actor(&self) -> Result<xiansuo_store::Actor, ApiError> {
        match self {
            Principal::User(u) if u.is_admin() => Ok(xiansuo_store::Actor::of(u)),
            Principal::User(_) => Err(ApiError::Forbidden("this needs an admin's token")),
            Principal::AdminToken => Err(ApiError::Forbidden(
                "this change is recorded under a person: call with an admin user's API token (console: 用户 → API token), not the installation's admin token",
            )),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("this needs an admin's token")) }
    }
}

/// Lets a request through to the API with the admin token or an enabled user's API token, and
/// hands the handler the [`Principal`].
pub async fn require_token(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = match bearer(request.headers()) {
        Some(token) if token_matches(token, &app.admin_token) => Principal::AdminToken,
        Some(token) => match app.store.user_by_api_token(&sha256_hex(token)).await? {
            Some(user) if !user.disabled => Principal::User(user),
            _ => {
                return Err(ApiError::Unauthorized(
                    "the bearer token is neither the admin token nor a user's API token",
                ));
            }
        },
        None => return Err(ApiError::Unauthorized("send Authorization: Bearer <admin_token or your API token>")),
    };
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

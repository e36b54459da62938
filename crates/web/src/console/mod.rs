//! The sales console: server-rendered pages (templates compiled into the binary, assets
//! embedded), signed-in sessions in an HttpOnly cookie, a CSRF token on every form.

mod dashboard;
mod deliveries;
mod pages;
mod reports;
mod view;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use xiansuo_store::{Session, StoreError};

use crate::AppState;
use crate::auth::token_matches;
use crate::security::sha256_hex;

pub const SESSION_COOKIE: &str = "xiansuo_session";
/// A session lasts this long after sign-in.
pub const SESSION_HOURS: i64 = 12;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::inbox))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/events", get(pages::events))
        .route("/leads/{id}", get(pages::lead_page))
        .route("/leads/{id}/status", post(pages::set_status))
        .route("/leads/{id}/owner", post(pages::set_owner))
        .route("/leads/{id}/claim", post(pages::claim))
        .route("/leads/{id}/notes", post(pages::add_note))
        .route("/leads/{id}/merge", post(pages::merge))
        .route("/leads/{id}/unmerge", post(pages::unmerge))
        .route("/leads/{id}/dismiss", post(pages::dismiss))
        .route("/admin/pushes", get(pages::pushes))
        .route("/admin/pushes/{id}/replay", post(pages::replay))
        .route("/admin/users", get(pages::users).post(pages::add_user))
        .route("/admin/users/{id}/{action}", post(pages::user_action))
        // Issue #6: outbound deliveries.
        .route("/admin/deliveries", get(deliveries::list))
        .route("/admin/deliveries/{id}/redeliver", post(deliveries::redeliver))
        .route("/export", get(reports::export))
        .route("/dashboard", get(dashboard::dashboard))
        .route("/admin/exports", get(reports::exports))
        .route("/admin/audit", get(pages::audit_log))
        .route("/assets/{file}", get(asset))
}

/// Why a console request failed; rendered as a page (or a redirect to sign in).
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("sign in first")]
    SignIn { next: String },
    #[error("没有找到这个页面或线索")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("登录失败次数过多，请 {0} 秒后再试")]
    TooManyAttempts(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self {
            PageError::SignIn { next } => {
                let target = if next == "/" { "/login".to_string() } else { format!("/login?next={}", encode(next)) };
                return Redirect::to(&target).into_response();
            }
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::Forbidden(_) => StatusCode::FORBIDDEN,
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Conflict(_) | PageError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            PageError::Store(StoreError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            PageError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            PageError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            PageError::Store(StoreError::Overloaded | StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Store(StoreError::Setup(_)) | PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            PageError::Store(StoreError::Conflict(m)) => m.clone(),
            PageError::Store(e @ StoreError::Invalid(_)) => e.to_string(),
            PageError::Store(StoreError::NotFound(_)) => "没有找到这个页面或线索".to_string(),
            PageError::Store(e) => {
                tracing::error!(error = %e, "console storage error");
                "数据库暂时不可用，请稍后重试".to_string()
            }
            PageError::Internal(e) => {
                tracing::error!(error = %e, "console error");
                "内部错误".to_string()
            }
            other => other.to_string(),
        };
        // As HTML (a bare String would go out as text/plain, which browsers show as source).
        let html = view::render(&view::ErrorPage { status: status.as_u16(), message });
        (status, page(html)).into_response()
    }
}

/// Percent-encodes a value for a query parameter, leaving `/` readable (`next=/leads/7`).
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signed-in user's session; a request without one is sent to sign in.
pub struct Signed(pub Session);

impl Signed {
    /// Checks a form's CSRF token against the session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), PageError> {
        if token_matches(presented, &self.0.csrf) {
            Ok(())
        } else {
            Err(PageError::Forbidden("表单已过期，请刷新页面后重试"))
        }
    }

    pub fn require_admin(&self) -> Result<(), PageError> {
        if self.0.user.is_admin() { Ok(()) } else { Err(PageError::Forbidden("只有管理员可以这样做")) }
    }
}

/// The session token in a request's cookies.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE && !value.is_empty()).then(|| value.to_string())
    })
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, PageError> {
        let next = parts.uri.path_and_query().map_or("/".to_string(), |p| p.as_str().to_string());
        let Some(token) = session_token(&parts.headers) else { return Err(PageError::SignIn { next }) };
        match app.store.session(&sha256_hex(&token), xiansuo_domain::now()).await? {
            Some(session) => Ok(Signed(session)),
            None => Err(PageError::SignIn { next }),
        }
    }
}

/// The session cookie: HttpOnly (no script reads it), SameSite=Lax (no cross-site form posts
/// carry it), for the whole site.
pub fn session_cookie(token: &str, max_age_secs: i64) -> HeaderValue {
    let value = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("xiansuo_session=; Path=/; Max-Age=0"))
}

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

async fn asset(axum::extract::State(app): axum::extract::State<AppState>, Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "tags.css" => {
            let css = view::tag_css(&app.tags);
            return ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], css)
                .into_response();
        }
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => return PageError::NotFound.into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// A rendered page.
pub fn page(html: String) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

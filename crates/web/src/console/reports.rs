//! The console's export (the inbox's filter, the columns ticked) and the admins' export log.

use axum::extract::{Query, RawQuery, State};
use axum::response::{IntoResponse, Response};
use xiansuo_store::NewExport;

use super::pages::InboxQuery;
use super::view::{self, Me};
use super::{PageError, Signed, page};
use crate::AppState;
use crate::export::{Format, Job, parse_columns, respond};

/// `GET /export?format=csv|xlsx&column=…&column=…&<inbox filters>`: what the inbox shows,
/// with the viewer's visibility, as a file.
pub async fn export(
    State(app): State<AppState>,
    signed: Signed,
    Query(q): Query<InboxQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let user = &signed.0.user;
    let mut format = None;
    let mut columns: Vec<String> = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "format" => format = Some(v.into_owned()),
            "column" => columns.push(v.into_owned()),
            "columns" => columns.extend(v.split(',').map(str::to_string)),
            _ => {}
        }
    }
    let format = match format.as_deref() {
        None | Some("") => Format::Csv,
        Some(f) => Format::parse(f).ok_or_else(|| PageError::BadRequest(format!("没有“{f}”这种导出格式")))?,
    };
    let columns = parse_columns(Some(&columns.join(","))).map_err(PageError::BadRequest)?;
    let query = q.lead_query(user, 1, 1)?;
    let filter = serde_json::Value::Object(
        q.filter_pairs().into_iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v))).collect(),
    );
    let record = NewExport {
        at: xiansuo_domain::now(),
        user_id: Some(user.id),
        actor: user.name.clone(),
        via: "console".into(),
        format: format.as_str().into(),
        columns: columns.iter().map(|c| c.key.to_string()).collect(),
        filter,
        rows: 0,
        completed: false,
    };
    tracing::info!(user = %user.name, format = format.as_str(), "export");
    respond(app.store.clone(), Job { query, columns, format, record }).await.map_err(|e| match e {
        crate::ApiError::Store(e) => PageError::Store(e),
        other => PageError::Internal(other.to_string()),
    })
}

#[derive(serde::Deserialize)]
pub struct ExportsQuery {
    page: Option<u32>,
}

const EXPORTS_PER_PAGE: u32 = 50;

/// `GET /admin/exports`: the export log.
pub async fn exports(
    State(app): State<AppState>,
    signed: Signed,
    Query(q): Query<ExportsQuery>,
) -> Result<Response, PageError> {
    signed.require_admin()?;
    let page_no = q.page.unwrap_or(1).max(1);
    let list = app.store.list_exports(page_no, EXPORTS_PER_PAGE).await?;
    let rows = list
        .items
        .iter()
        .map(|e| view::ExportRow {
            id: e.id,
            at: view::full_time(e.export.at),
            actor: e.export.actor.clone(),
            via: e.export.via.clone(),
            format: e.export.format.clone(),
            rows: e.export.rows,
            completed: e.export.completed,
            filter: e.export.filter.to_string(),
            columns: e.export.columns.join(", "),
        })
        .collect();
    let url = |p: u32| format!("/admin/exports?page={p}");
    let html = view::render(&view::ExportsPage {
        me: Me::of(&signed.0.user, &signed.0.csrf),
        rows,
        total: list.total,
        page: page_no,
        prev_url: (page_no > 1).then(|| url(page_no - 1)),
        next_url: (u64::from(page_no) * u64::from(EXPORTS_PER_PAGE) < list.total).then(|| url(page_no + 1)),
    });
    Ok(page(html).into_response())
}

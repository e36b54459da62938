//! Exports of a lead filter to CSV (UTF-8 with a BOM, so Excel reads Chinese) and XLSX, with
//! Chinese headers and a choice of columns. Leads are read batch by batch (keyset paging), so a
//! million leads export with flat memory: CSV is streamed as it is written; XLSX is written in
//! rust_xlsxwriter's constant-memory mode to a temporary file, which is then streamed.
//!
//! Formula injection: a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return
//! gets a `'` in front, so that Excel shows it as text instead of evaluating it.
//!
//! Used by `GET /api/v1/leads/export`, the console's export button and `xiansuo export`; every
//! export is recorded in the export log.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write as _};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use xiansuo_domain::{CHINA_TIME, FIELDS, FieldKind, Instant, Lead};
use xiansuo_store::{LeadCursor, LeadQuery, NewExport, Store, StoreError};

/// Leads read per batch.
pub const BATCH: u32 = 500;
/// Data rows per XLSX sheet (the format's limit is 1,048,576 rows, header included).
pub const SHEET_ROWS: u64 = 1_000_000;

/// Characters an XLSX cell holds at most; longer texts are cut (with `…`).
const XLSX_CELL_CHARS: usize = 32_767;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// Columns that are not card fields: (key, header).
const LEAD_COLUMNS: &[(&str, &str)] = &[
    ("id", "线索ID"),
    ("source", "来源"),
    ("status", "状态"),
    ("status_reason", "无效原因"),
    ("owner", "负责人"),
    ("received_at", "收到时间"),
    ("updated_at", "更新时间"),
    ("push_count", "推送次数"),
    ("message_count", "消息数"),
    ("visitor_message_count", "访客消息数"),
    ("chat_ids", "会话ID列表"),
    ("landing", "落地页（不含参数）"),
    ("found_in_chat", "聊天中找到的联系方式"),
    ("extra", "其他字段"),
];

/// The columns of an export that names none.
pub const DEFAULT_COLUMNS: &[&str] = &[
    "id",
    "received_at",
    "status",
    "owner",
    "name",
    "mobile",
    "tel",
    "weixin",
    "qq",
    "email",
    "province",
    "city",
    "search_engine",
    "search_host",
    "keyword",
    "bidding_word",
    "promotion_id",
    "landing",
    "site_name",
    "device_type",
    "subject_name",
    "school_name",
    "ntag_name",
    "user_real_name",
    "note",
    "visitor_message_count",
];

/// Every column key an export may name, with its header.
pub fn all_columns() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = LEAD_COLUMNS.to_vec();
    out.extend(FIELDS.iter().map(|f| (f.key, f.label)));
    out
}

/// A chosen column: its key and its Chinese header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub key: &'static str,
    pub header: &'static str,
}

/// The columns of a `columns=a,b,c` list (the defaults when absent or empty), or which key is
/// unknown.
pub fn parse_columns(spec: Option<&str>) -> Result<Vec<Column>, String> {
    let known = all_columns();
    let keys: Vec<&str> = match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_COLUMNS.to_vec(),
        Some(s) => s.split(',').map(str::trim).filter(|k| !k.is_empty()).collect(),
    };
    let mut out: Vec<Column> = Vec::with_capacity(keys.len());
    for k in keys {
        let (key, header) = known.iter().find(|(key, _)| *key == k).copied().ok_or_else(|| {
            format!(
                "columns: \"{k}\" is not a column; use lead keys ({}) or canonical card keys such as mobile, keyword",
                LEAD_COLUMNS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            )
        })?;
        if !out.iter().any(|c| c.key == key) {
            out.push(Column { key, header });
        }
    }
    Ok(out)
}

/// Makes a cell safe to open in a spreadsheet: a leading `=`, `+`, `-`, `@`, tab or carriage
/// return gets a `'` in front (OWASP's advice against formula injection).
pub fn neutralize(value: String) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value }
}

fn time(t: Instant) -> String {
    t.with_timezone(&CHINA_TIME).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A lead's value in a column, as text, neutralized.
pub fn cell(lead: &Lead, key: &str, owners: &HashMap<i64, String>) -> String {
    let value = match key {
        "id" => lead.id.to_string(),
        "source" => lead.source.clone(),
        "status" => lead.status.label().to_string(),
        "status_reason" => lead.status_reason.clone().unwrap_or_default(),
        "owner" => lead.owner_id.map(|o| owners.get(&o).cloned().unwrap_or_else(|| o.to_string())).unwrap_or_default(),
        "received_at" => time(lead.received_at),
        "updated_at" => time(lead.updated_at),
        "push_count" => lead.push_count.to_string(),
        "message_count" => lead.message_count.to_string(),
        "visitor_message_count" => lead.visitor_message_count.to_string(),
        "chat_ids" => lead.chat_ids.join(" "),
        "landing" => lead
            .fields
            .get("first_url")
            .map(|u| xiansuo_store::reports::landing_page(u).to_string())
            .unwrap_or_default(),
        "found_in_chat" => lead.found_in_chat.join(" "),
        "extra" => {
            if lead.extra.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&lead.extra).unwrap_or_default()
            }
        }
        k => match xiansuo_domain::field(k).map(|f| f.kind) {
            Some(FieldKind::Time) => lead.times.get(k).map(|t| time(*t)).unwrap_or_default(),
            _ => lead.fields.get(k).cloned().unwrap_or_default(),
        },
    };
    neutralize(value)
}

/// Appends one CSV record (RFC 4180: fields quoted when they hold a comma, quote or line break;
/// CRLF line ends).
pub fn csv_record(out: &mut Vec<u8>, cells: impl IntoIterator<Item = impl AsRef<str>>) {
    for (i, c) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let c = c.as_ref();
        if c.contains([',', '"', '\n', '\r']) || c.starts_with(' ') || c.ends_with(' ') {
            out.push(b'"');
            out.extend_from_slice(c.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(c.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The UTF-8 byte order mark: Excel reads a CSV as UTF-8 only with it.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What an export is, for the export log and the file name.
#[derive(Debug, Clone)]
pub struct Job {
    pub query: LeadQuery,
    pub columns: Vec<Column>,
    pub format: Format,
    /// The export log entry, its row count and completion filled in at the end.
    pub record: NewExport,
}

/// User names by id, for the owner column.
pub async fn owner_names(store: &dyn Store) -> Result<HashMap<i64, String>, StoreError> {
    Ok(store.users().await?.into_iter().map(|u| (u.id, u.name)).collect())
}

/// Reads the filter batch by batch and hands each batch to `each`; returns the lead count.
pub async fn for_each_batch(
    store: &dyn Store,
    query: &LeadQuery,
    mut each: impl FnMut(&[Lead]) -> Result<(), String>,
) -> Result<u64, String> {
    let mut after: Option<LeadCursor> = None;
    let mut rows = 0u64;
    loop {
        let batch = store.lead_batch(query, after, BATCH).await.map_err(|e| format!("reading leads: {e}"))?;
        let Some(last) = batch.last() else { break };
        after = Some(LeadCursor { received_at: last.received_at, id: last.id });
        rows += batch.len() as u64;
        each(&batch)?;
        if batch.len() < BATCH as usize {
            break;
        }
    }
    Ok(rows)
}

/// Writes the whole export as CSV to `out` (the command line's file); returns the rows.
pub async fn write_csv(
    store: &dyn Store,
    job: &Job,
    owners: &HashMap<i64, String>,
    out: &mut impl std::io::Write,
) -> Result<u64, String> {
    let mut buf = BOM.to_vec();
    csv_record(&mut buf, job.columns.iter().map(|c| c.header));
    let io = |e: std::io::Error| format!("writing the file: {e}");
    out.write_all(&buf).map_err(io)?;
    for_each_batch(store, &job.query, |leads| {
        buf.clear();
        for lead in leads {
            csv_record(&mut buf, job.columns.iter().map(|c| cell(lead, c.key, owners)));
        }
        out.write_all(&buf).map_err(io)
    })
    .await
}

/// Writes the whole export as XLSX into `file` (rust_xlsxwriter's constant-memory mode: rows go
/// to temporary files as they are written). Blocking: call it off the async threads, with a
/// runtime handle for the store's reads.
pub fn write_xlsx(
    store: &dyn Store,
    runtime: &tokio::runtime::Handle,
    job: &Job,
    owners: &HashMap<i64, String>,
    file: &mut std::fs::File,
) -> Result<u64, String> {
    use rust_xlsxwriter::{Format as CellFormat, Workbook, Worksheet};
    let xlsx = |e: rust_xlsxwriter::XlsxError| format!("writing the XLSX file: {e}");
    let mut workbook = Workbook::new();
    let bold = CellFormat::new().set_bold();
    let new_sheet = |workbook: &mut Workbook, n: usize| -> Result<(), String> {
        let sheet: &mut Worksheet = workbook.add_worksheet_with_constant_memory();
        sheet.set_name(if n == 1 { "线索".to_string() } else { format!("线索{n}") }).map_err(xlsx)?;
        for (i, c) in job.columns.iter().enumerate() {
            let col = u16::try_from(i).map_err(|_| "too many columns for XLSX".to_string())?;
            sheet.write_string_with_format(0, col, c.header, &bold).map_err(xlsx)?;
            sheet.set_column_width(col, 16).map_err(xlsx)?;
        }
        sheet.set_freeze_panes(1, 0).map_err(xlsx)?;
        Ok(())
    };
    let mut sheets = 1;
    new_sheet(&mut workbook, sheets)?;
    let mut row_in_sheet: u32 = 0;
    let rows = runtime.block_on(for_each_batch(store, &job.query, |leads| {
        for lead in leads {
            if u64::from(row_in_sheet) == SHEET_ROWS {
                sheets += 1;
                new_sheet(&mut workbook, sheets)?;
                row_in_sheet = 0;
            }
            row_in_sheet += 1;
            let sheet = workbook.worksheet_from_index(sheets - 1).map_err(xlsx)?;
            for (i, c) in job.columns.iter().enumerate() {
                let mut value = cell(lead, c.key, owners);
                if value.chars().count() > XLSX_CELL_CHARS {
                    // The format's limit per cell.
                    value = value.chars().take(XLSX_CELL_CHARS - 1).chain(['…']).collect();
                }
                if !value.is_empty() {
                    sheet.write_string(row_in_sheet, i as u16, value).map_err(xlsx)?;
                }
            }
        }
        Ok(())
    }))?;
    workbook.save_to_writer(&mut *file).map_err(xlsx)?;
    file.flush().map_err(|e| format!("writing the XLSX file: {e}"))?;
    Ok(rows)
}

/// The download's file name: `线索-20261124-2205.csv`, percent-encoded for the header.
fn disposition(format: Format) -> HeaderValue {
    let stamp = xiansuo_domain::now().with_timezone(&CHINA_TIME).format("%Y%m%d-%H%M");
    let ascii = format!("leads-{stamp}.{}", format.as_str());
    let value =
        format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''%E7%BA%BF%E7%B4%A2-{stamp}.{}", format.as_str());
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn download(format: Format, body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CONTENT_DISPOSITION, disposition(format));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn record(store: &dyn Store, mut export: NewExport, rows: u64, completed: bool) {
    export.rows = i64::try_from(rows).unwrap_or(i64::MAX);
    export.completed = completed;
    if let Err(e) = store.record_export(export).await {
        tracing::error!(error = %e, "could not record an export in the export log");
    }
}

/// Answers a download of the export. CSV streams as it is read (the export is recorded before
/// its last bytes go out, or when the client goes away); XLSX is built first, recorded, then
/// streamed from its temporary file.
pub async fn respond(store: Arc<dyn Store>, job: Job) -> Result<Response, crate::ApiError> {
    let owners = owner_names(store.as_ref()).await?;
    match job.format {
        Format::Csv => Ok(download(Format::Csv, csv_body(store, job, owners))),
        Format::Xlsx => {
            let runtime = tokio::runtime::Handle::current();
            let for_writer = Arc::clone(&store);
            let job_for_writer = job.clone();
            let built = tokio::task::spawn_blocking(move || -> Result<(std::fs::File, u64), String> {
                let mut file = tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
                let rows = write_xlsx(for_writer.as_ref(), &runtime, &job_for_writer, &owners, &mut file)?;
                file.seek(SeekFrom::Start(0)).map_err(|e| format!("reading the XLSX file back: {e}"))?;
                Ok((file, rows))
            })
            .await
            .map_err(|e| crate::ApiError::Store(StoreError::Unavailable(format!("the XLSX export failed: {e}"))))?;
            let (file, rows) = built.map_err(|e| crate::ApiError::Store(StoreError::Unavailable(e)))?;
            record(store.as_ref(), job.record, rows, true).await;
            Ok(download(Format::Xlsx, file_body(file)))
        }
    }
}

/// A file's bytes as a body, read in chunks as the client takes them.
fn file_body(file: std::fs::File) -> Body {
    let file = tokio::fs::File::from_std(file);
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Body::from_stream(stream)
}

/// The CSV as a stream: a task reads batches and encodes them into a small bounded channel, so
/// at most a few batches are in memory however large the export.
fn csv_body(store: Arc<dyn Store>, job: Job, owners: HashMap<i64, String>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut head = BOM.to_vec();
        csv_record(&mut head, job.columns.iter().map(|c| c.header));
        // Each chunk is sent once the next is ready, so the last can wait for the export log.
        let mut pending = Bytes::from(head);
        let mut after: Option<LeadCursor> = None;
        let mut rows = 0u64;
        loop {
            let batch = match store.lead_batch(&job.query, after, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "export: reading leads failed");
                    record(store.as_ref(), job.record, rows, false).await;
                    let _ = tx.send(Err(std::io::Error::other(format!("reading leads failed: {e}")))).await;
                    return;
                }
            };
            let done = batch.len() < BATCH as usize;
            if let Some(last) = batch.last() {
                after = Some(LeadCursor { received_at: last.received_at, id: last.id });
                let mut buf = Vec::with_capacity(batch.len() * 256);
                for lead in &batch {
                    csv_record(&mut buf, job.columns.iter().map(|c| cell(lead, c.key, &owners)));
                }
                rows += batch.len() as u64;
                let ready = std::mem::replace(&mut pending, Bytes::from(buf));
                if tx.send(Ok(ready)).await.is_err() {
                    // The client went away.
                    record(store.as_ref(), job.record, rows - batch.len() as u64, false).await;
                    return;
                }
            }
            if done {
                break;
            }
        }
        record(store.as_ref(), job.record, rows, true).await;
        let _ = tx.send(Ok(pending)).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralized() {
        for bad in ["=1+1", "+86 138", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralize(bad.to_string()), format!("'{bad}"));
        }
        assert_eq!(neutralize("张三=1".to_string()), "张三=1");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut out = Vec::new();
        csv_record(&mut out, ["a", "b,c", "say \"hi\"", "line\nbreak", ""]);
        assert_eq!(String::from_utf8(out).unwrap_or_default(), "a,\"b,c\",\"say \"\"hi\"\"\",\"line\nbreak\",\r\n");
    }

    #[test]
    fn columns_default_and_unknown() {
        assert_eq!(parse_columns(None).map(|c| c.len()).ok(), Some(DEFAULT_COLUMNS.len()));
        let c = parse_columns(Some("id, mobile,mobile")).unwrap_or_default();
        assert_eq!(c.iter().map(|c| c.header).collect::<Vec<_>>(), ["线索ID", "手机"]);
        assert!(parse_columns(Some("id,nope")).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP: `GET /api/v1/leads/export` and `GET /api/v1/exports`

/// `format`, `columns`, and the lead list's filters.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ExportParams {
    format: Option<String>,
    columns: Option<String>,
    #[serde(flatten)]
    filter: crate::api::LeadParams,
}

/// The API's principal as the export log names it.
fn who(principal: &crate::auth::Principal) -> (Option<i64>, String) {
    match principal {
        crate::auth::Principal::AdminToken => (None, "admin token".to_string()),
        crate::auth::Principal::User(u) => (Some(u.id), u.name.clone()),
    }
}

/// An export of the lead list's filter; an agent's holds only the leads they may see.
pub async fn api_export(
    axum::extract::State(app): axum::extract::State<crate::AppState>,
    axum::extract::Extension(principal): axum::extract::Extension<crate::auth::Principal>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    crate::api::ApiQuery(p): crate::api::ApiQuery<ExportParams>,
) -> Result<Response, crate::ApiError> {
    use crate::ApiError;
    crate::api::reject_unknown(raw.as_deref(), &[&["format", "columns"], crate::api::LEAD_PARAMS])?;
    let format = match p.format.as_deref() {
        None => Format::Csv,
        Some(f) => Format::parse(f.trim()).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "format: \"{f}\" is not a format; use csv or xlsx, or leave the parameter out for csv"
            ))
        })?,
    };
    if let Some(spec) = &p.columns
        && spec.split(',').any(|k| k.is_empty() || k.trim() != k)
    {
        return Err(ApiError::BadRequest(format!(
            "columns: \"{spec}\" is not a comma-separated list of column keys (no spaces, no empty keys); leave the parameter out for the default columns"
        )));
    }
    let columns = parse_columns(p.columns.as_deref()).map_err(ApiError::BadRequest)?;
    let filter = p.filter.filter_json();
    let query = crate::api::lead_query(p.filter, &principal)?;
    let (user_id, actor) = who(&principal);
    let record = NewExport {
        at: xiansuo_domain::now(),
        user_id,
        actor,
        via: "api".into(),
        format: format.as_str().into(),
        columns: columns.iter().map(|c| c.key.to_string()).collect(),
        filter,
        rows: 0,
        completed: false,
    };
    respond(Arc::clone(&app.store), Job { query, columns, format, record }).await
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ExportLogParams {
    page: Option<String>,
    per_page: Option<String>,
}

/// An export log entry as the API shows it.
pub fn entry_json(e: &xiansuo_store::ExportEntry) -> serde_json::Value {
    let x = &e.export;
    serde_json::json!({
        "id": e.id,
        "at": crate::repr::time(x.at),
        "user_id": x.user_id,
        "actor": x.actor,
        "via": x.via,
        "format": x.format,
        "columns": x.columns,
        "filter": x.filter,
        "rows": x.rows,
        "completed": x.completed,
    })
}

/// The export log, newest first (admins).
pub async fn api_exports(
    axum::extract::State(app): axum::extract::State<crate::AppState>,
    axum::extract::Extension(principal): axum::extract::Extension<crate::auth::Principal>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    crate::api::ApiQuery(p): crate::api::ApiQuery<ExportLogParams>,
) -> Result<axum::Json<serde_json::Value>, crate::ApiError> {
    principal.require_admin()?;
    crate::api::reject_unknown(raw.as_deref(), &[&["page", "per_page"]])?;
    let page = crate::api::page_number(p.page)?;
    let per_page = crate::api::per_page_number(p.per_page)?;
    let list = app.store.list_exports(page, per_page).await?;
    Ok(axum::Json(serde_json::json!({
        "total": list.total,
        "total_exact": list.total_exact,
        "page": list.page,
        "per_page": list.per_page,
        "items": list.items.iter().map(entry_json).collect::<Vec<_>>(),
    })))
}

/// `xiansuo export`: the lead filter of API-style parameters (name, value), for the whole
/// database (the command line sees every lead), and those parameters for the export log.
pub fn cli_query(params: &[(&str, String)]) -> Result<(LeadQuery, serde_json::Value), String> {
    let object: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone()))).collect();
    let p: crate::api::LeadParams =
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| format!("the filter: {e}"))?;
    let filter = p.filter_json();
    let query = crate::api::lead_query(p, &crate::auth::Principal::AdminToken).map_err(|e| e.to_string())?;
    Ok((query, filter))
}

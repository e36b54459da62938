//! The ceiling: the least an HTTP receiver of these pushes can do on this machine. It reads the
//! body, parses it with serde_json, and answers a small JSON; no storage, no decoding rules.
//! It runs as `xiansuo-bench ceiling-server`, a process of its own with the same kind of runtime
//! as the service (tokio multi-thread, one worker per CPU), so the load generator treats both alike.

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};

async fn push(body: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => {
            let cards = value.as_array().map_or(1, Vec::len);
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                format!(r#"{{"code":0,"msg":"ok","outcome":"accepted","accepted":{cards}}}"#),
            )
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            serde_json::json!({ "code": 400, "msg": e.to_string() }).to_string(),
        ),
    }
}

pub fn serve() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let app = Router::new()
            .route("/push/{source}", post(push))
            .route("/healthz", get(|| async { "{\"status\":\"ok\"}" }))
            .layer(axum::extract::DefaultBodyLimit::max(2 * 1024 * 1024));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("cannot listen: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("ceiling listening on http://{addr}");
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

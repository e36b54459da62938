//! `xiansuo serve`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;
use xiansuo_config::Config;

/// `RUST_LOG` (default `info`), but never the PostgreSQL driver's debug lines: they print every
/// query's parameters (tokens, phone numbers, passwords' hashes).
fn log_filter() -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match "tokio_postgres=info".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    }
}

pub fn run(config_file: Option<&Path>) -> Result<ExitCode, String> {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        // Mobile numbers are masked in every log line, whoever writes it.
        .with_writer(|| xiansuo_web::security::MaskingWriter(std::io::stderr()))
        // Colours only on a terminal, not in a log file or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config::load(config_file, |k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    super::runtime()?.block_on(serve(config))
}

async fn serve(config: Config) -> Result<ExitCode, String> {
    let prepared = xiansuo_web::startup::prepare(&config).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (listen / XIANSUO_LISTEN): {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    let host = if addr.ip().is_unspecified() { "<this-host>".to_string() } else { addr.ip().to_string() };
    let base = format!("http://{host}:{}", addr.port());

    // Printed on standard output (not the log) so the first start shows what to do next.
    let mut out = String::new();
    out.push_str(&format!("Xiansuo {} listening on {base}\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!("Database: {}\n", config.database_url));
    for source in &prepared.sources {
        out.push_str(&format!(
            "Push URL for source \"{}\" (paste it into the vendor's back office):\n  {base}/push/{}?token={}\n",
            source.name, source.name, source.token
        ));
    }
    out.push_str(&format!("Console: {base}/\n"));
    if !config.sinks.is_empty() {
        let sinks: Vec<String> = config.sinks.iter().map(|s| format!("{} ({})", s.name, s.kind.as_str())).collect();
        out.push_str(&format!("Outbound events to: {}\n", sinks.join(", ")));
    }
    if let Some((name, password)) = &prepared.initial_admin {
        out.push_str(&format!(
            "First start: sign in as \"{name}\" with the password {password} (shown once; add users and reset passwords under 用户)\n"
        ));
    }
    out.push_str(&format!(
        "API: curl -H 'Authorization: Bearer {}' {base}/api/v1/leads\nAPI description: {base}/api/openapi.json\n",
        prepared.state.admin_token
    ));
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    drop(stdout);

    xiansuo_web::startup::index_older_leads(prepared.state.store.clone(), config.scoring.clone())
        .await
        .map_err(|e| e.to_string())?;
    // Issue #6: the outbox's delivery worker (when sinks are configured).
    xiansuo_workers::start(prepared.state.store.clone(), &config, prepared.state.new_leads.subscribe())?;
    if let Some(spool) = &prepared.state.spool {
        if spool.waiting() > 0 {
            tracing::info!(waiting = spool.waiting(), "pushes wait in the spool; storing them");
        }
        spool.clone().start(prepared.state.clone());
    }
    // Issue #8: pushes queued in a burst (or before a restart) get their leads.
    xiansuo_web::applier::start(prepared.state.clone());
    let app = xiansuo_web::router(prepared.state);
    // The peer's address reaches handlers (sign-in limits per client).
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("the server stopped: {e}"))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM: stop accepting, finish the requests in flight (each answered only after
/// its commit), then exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

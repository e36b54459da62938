//! Start-up: open the store the configuration names, resolve tokens (configured, or generated
//! once and kept in the database), and build the application state.

use std::collections::HashMap;
use std::sync::Arc;

use xiansuo_config::{Config, DatabaseUrl};
use xiansuo_store::postgres::PostgresStore;
use xiansuo_store::sqlite::SqliteStore;
use xiansuo_store::{Store, StoreError};

use crate::{AppState, Source};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot generate a token: {0}")]
    Random(String),
    /// The configuration names something the database does not hold (a user in a rule).
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Spool(String),
}

/// The state to serve, and the sources with their resolved tokens (to print the push URLs).
#[derive(Clone)]
pub struct Prepared {
    pub state: AppState,
    /// The admin created on this first start (name, one-time password), when there were no users.
    pub initial_admin: Option<(String, String)>,
    /// Sources in name order, with their resolved tokens.
    pub sources: Vec<Source>,
}

/// 128 random bits as 32 hex characters.
pub fn generate_token() -> Result<String, StartError> {
    crate::security::random_hex(16).map_err(StartError::Random)
}

/// Opens (creating and migrating as needed) the store a database URL names, with the pool and
/// queue bounds of a configuration.
pub async fn open_store(url: &DatabaseUrl, config: &Config) -> Result<Arc<dyn Store>, StartError> {
    let store: Arc<dyn Store> = match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open(path, config.write_queue)?),
        DatabaseUrl::Postgres(url) => {
            Arc::new(PostgresStore::open(url, config.pool_size, config.postgres_writers, config.write_queue).await?)
        }
    };
    store.set_scoring(config.scoring.clone());
    Ok(store)
}

/// For the commands that store leads (`serve`, `demo`, `import`): a database with no lead yet
/// needs no indexing of older leads, and says so now, so that leads `demo` or `import` store
/// before the first `serve` (each indexed as it is written) are not all indexed again in the
/// background by that first start. Other commands leave the database as they found it (`copy`
/// needs an empty target; the setting is copied with the rest).
pub async fn mark_new_database(store: &dyn Store) -> Result<(), StartError> {
    if store.lead_ids(0, 1).await?.is_empty() {
        store.setting_or_insert(crate::reindex::STARTED_SETTING, "new database").await?;
    }
    Ok(())
}

/// On the first start after the upgrade that introduced the duplicate index, indexes and
/// rescores the leads stored before it, in the background (pushes go first).
pub async fn index_older_leads(store: Arc<dyn Store>, scoring: xiansuo_domain::Scoring) -> Result<(), StartError> {
    let marker = generate_token()?;
    if store.setting_or_insert(crate::reindex::STARTED_SETTING, &marker).await? != marker {
        return Ok(());
    }
    tokio::spawn(async move {
        match crate::reindex::reindex_all(store.as_ref(), &scoring, |_| {}).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(leads = n, "indexed the contacts and scores of leads stored before this release"),
            Err(e) => tracing::error!(error = %e, "indexing older leads stopped; run `xiansuo reindex` to finish"),
        }
    });
    Ok(())
}

/// Resolves a token: the configured one, else the one generated on an earlier start, else a new
/// one (kept, so it stays the same across restarts).
async fn resolve_token(store: &dyn Store, configured: Option<&str>, key: &str) -> Result<String, StartError> {
    match configured {
        Some(t) => Ok(t.to_string()),
        None => Ok(store.setting_or_insert(key, &generate_token()?).await?),
    }
}

/// With no users at all, creates `admin` with a generated password (returned to be printed).
async fn create_first_admin(store: &dyn Store) -> Result<Option<(String, String)>, StartError> {
    if !store.users().await?.is_empty() {
        return Ok(None);
    }
    let password = crate::security::generate_password().map_err(StartError::Random)?;
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || crate::security::hash_password(&password))
            .await
            .map_err(|e| StartError::Random(e.to_string()))?
            .map_err(StartError::Random)?
    };
    match store.create_user("admin", xiansuo_domain::Role::Admin, &hash).await {
        Ok(_) => Ok(Some(("admin".to_string(), password))),
        // Another instance on the same database made it first.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Issue #6: every user the rules and the owner map name must exist (disabled ones are skipped
/// when assigning, but a typo is refused here). `to_be_created`: a user this start is about to
/// create (the first admin), checked before it is, so that a refused start creates nothing.
pub async fn check_routing_users(
    store: &dyn Store,
    config: &Config,
    to_be_created: Option<&str>,
) -> Result<(), StartError> {
    let mut missing = Vec::new();
    for (name, place) in config.routing.user_names() {
        if Some(name.as_str()) == to_be_created {
            continue;
        }
        if store.user_by_name(&name).await?.is_none() && !missing.iter().any(|(n, _): &(String, String)| *n == name) {
            missing.push((name, place));
        }
    }
    if let Some((name, place)) = missing.first() {
        let all: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
        return Err(StartError::Config(format!(
            "{place} names the user \"{name}\", who does not exist (unknown users: {}): add them first, e.g. `xiansuo user add {name} --role agent`, or fix the configuration",
            all.join(", ")
        )));
    }
    Ok(())
}

/// Builds the application state for a configuration.
pub async fn prepare(config: &Config) -> Result<Prepared, StartError> {
    let store = open_store(&config.database_url, config).await?;
    mark_new_database(store.as_ref()).await?;
    let admin_token = resolve_token(store.as_ref(), config.admin_token.as_deref(), "admin_token").await?;
    let mut sources = Vec::new();
    for source in config.sources.values() {
        let token_key = crate::access::token_setting(&source.name);
        let token = resolve_token(store.as_ref(), source.token.as_deref(), &token_key).await?;
        let tokens = match &source.token {
            Some(_) => std::iter::once(token.clone()).chain(source.previous_tokens.iter().cloned()).collect(),
            None => crate::access::generated_tokens(store.as_ref(), &source.name).await?,
        };
        let access = crate::access::SourceAccess::new(
            &source.name,
            source.token.is_some(),
            tokens,
            source.allow_ips.clone(),
            source.rate_limit,
        );
        sources.push(Source {
            name: source.name.clone(),
            token,
            rules: source.rules.clone(),
            access: Arc::new(access),
            kind: crate::sources::SourceKind::new(source.kind, source.mapped.clone(), source.secret.clone()),
        });
    }
    // Issue #6: the rules' users are checked before anything is created; then the writer
    // applies the routing (before the first push is served).
    let first_start = store.users().await?.is_empty();
    check_routing_users(store.as_ref(), config, first_start.then_some("admin")).await?;
    let initial_admin = create_first_admin(store.as_ref()).await?;
    store.set_routing(config.routing.clone());
    let by_name: HashMap<String, Source> = sources.iter().map(|s| (s.name.clone(), s.clone())).collect();
    let spool = match &config.spool_dir {
        Some(dir) => Some(Arc::new(crate::spool::Spool::open(dir).map_err(StartError::Spool)?)),
        None => None,
    };
    let state = AppState {
        spool,
        store,
        tags: Arc::new(config.tags.clone()),
        sources: Arc::new(by_name),
        admin_token: Arc::from(admin_token.as_str()),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        max_body_bytes: config.max_body_bytes,
        new_leads: tokio::sync::broadcast::channel(1024).0,
        login_limiter: Arc::default(),
        password_checks: Arc::new(tokio::sync::Semaphore::new(2)),
        applier: Arc::default(),
    };
    // Issue #8: only a serving process queues pushes (it runs the applier; `demo` and `import`
    // build every lead at once).
    state.store.queueing().set_above(config.queue_pushes_above);
    Ok(Prepared { state, sources, initial_admin })
}

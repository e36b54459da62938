//! Command-line interface.

mod copy;
mod demo;
mod export;
mod import;
mod rules;
mod send;
// Issue #11: `xiansuo source test`.
mod serve;
mod source;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Xiansuo (线索): receives the lead cards a live-chat vendor pushes, keeps every one, and serves
/// them to a sales team.
#[derive(Debug, Parser)]
#[command(name = "xiansuo", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Give a source a new generated push token; the old one keeps working until `retire`.
    ///
    /// Running services accept the new token at once and show nothing different: give the vendor
    /// the new push URL, then retire the old token. (A token set in the configuration is rotated
    /// there, with previous_tokens.)
    Rotate { source: String },
    /// Stop accepting the token a rotation replaced.
    Retire { source: String },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user. Prints a generated password unless --password-stdin gives one.
    Add {
        /// The sign-in name (no spaces).
        name: String,
        /// admin: everything; agent: their own leads and the unassigned pool.
        #[arg(long, value_parser = ["admin", "agent"])]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (generated and printed, or from --password-stdin); ends the user's
    /// sessions.
    Reset {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the service: the push endpoint, the API and the database (created on first start).
    ///
    /// Without --config it listens on 127.0.0.1:8080 with an SQLite database under
    /// ./xiansuo-data/ and one source, `easyliao`, whose token is generated on first start.
    /// Every key of the file can be set by an environment variable (XIANSUO_LISTEN,
    /// XIANSUO_DATABASE_URL, XIANSUO_ADMIN_TOKEN, XIANSUO_PUSH_TOKEN, XIANSUO_MAX_BODY_BYTES,
    /// XIANSUO_WRITE_QUEUE, XIANSUO_POOL_SIZE, XIANSUO_PUBLIC_URL, XIANSUO_DELIVERY_TIMEOUT_MS,
    /// XIANSUO_DELIVERY_MAX_ATTEMPTS, XIANSUO_DELIVERY_BACKOFF_MS), which wins over the file. Log level: RUST_LOG (default info).
    Serve {
        /// TOML configuration file (see README.md, "Configuration").
        #[arg(long, short, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Create the database or upgrade its schema to this release's, then exit.
    ///
    /// `serve` does the same at every start; this applies the migrations explicitly (before
    /// starting several instances against one PostgreSQL database, say).
    Migrate {
        /// TOML configuration file; only database_url is used (XIANSUO_DATABASE_URL wins).
        #[arg(long, short, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Index every lead's contacts for the duplicate search and rescore it with the configured
    /// [score] weights.
    ///
    /// New pushes are indexed and scored as they arrive; run this after changing [score] or
    /// [tags.ID] score points, to apply them to the leads stored before. Safe while the service
    /// runs (pushes go first) and safe to repeat.
    Reindex {
        /// TOML configuration file: database_url, [score] and [tags] are used.
        #[arg(long, short, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Rotate a source's generated push token without downtime.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        /// TOML configuration file: database_url and the sources are used.
        #[arg(long, short, global = true, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Manage console users.
    User {
        #[command(subcommand)]
        command: UserCommand,
        /// TOML configuration file; only database_url is used (XIANSUO_DATABASE_URL wins).
        #[arg(long, short, global = true, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Copy an installation to another database (SQLite to PostgreSQL, say), then verify it.
    ///
    /// Every table is copied with its ids (leads, messages, chats, the push log, settings with
    /// the generated tokens). The target must be empty; its schema is created first. Stop the
    /// service during the copy. Example:
    /// xiansuo copy --from sqlite://./xiansuo-data/xiansuo.db --to postgres://xiansuo@db/xiansuo
    Copy {
        /// The database to read (sqlite://PATH or postgres://…).
        #[arg(long)]
        from: String,
        /// The empty database to write (sqlite://PATH or postgres://…).
        #[arg(long)]
        to: String,
    },
    /// Post card files to a running installation, to test it: each FILE is one request body.
    ///
    /// Example: xiansuo send card.json --url http://127.0.0.1:8080/push/easyliao --token T
    Send {
        /// Files to post ("-" reads standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The push URL, http://HOST:PORT/push/SOURCE.
        #[arg(long)]
        url: String,
        /// The source's push token (sent as X-Push-Token).
        #[arg(long, env = "XIANSUO_PUSH_TOKEN", hide_env_values = true)]
        token: String,
        /// Content-Type to send (default: application/json for .json files, otherwise
        /// application/x-www-form-urlencoded when the file looks like key=value pairs).
        #[arg(long)]
        content_type: Option<String>,
    },
    /// Sources (issue #11).
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Assignment rules (issue #6).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Export the leads of a filter to a CSV (UTF-8 with BOM) or XLSX file, read from the
    /// database directly; recorded in the export log.
    ///
    /// Filters are the API's (see README.md, "Export"). Example:
    /// xiansuo export --format xlsx --out leads.xlsx --from 2026-11-01 --search-engine 百度
    Export {
        /// csv or xlsx.
        #[arg(long, default_value = "csv")]
        format: String,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Comma-separated column keys (default: the usual set; see README.md).
        #[arg(long)]
        columns: Option<String>,
        #[command(flatten)]
        filters: Box<export::Filters>,
        /// TOML configuration file; only database_url is used (XIANSUO_DATABASE_URL wins).
        #[arg(long, short, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Load cards from a file through the push endpoint's decoder, recorded like pushes.
    ///
    /// FILE is JSON (one card, an array, or {"data": [...]}), NDJSON (one body per line) or CSV
    /// with a header row (Chinese field labels, canonical keys and vendor keys are recognized;
    /// --mapping overrides). Prints accepted, ignored and rejected cards with their line; exits
    /// 1 when a card was rejected. Example: xiansuo import leads.csv --mapping columns.toml
    Import {
        /// The file to load.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The configured source the cards are recorded under (needed when there are several).
        #[arg(long)]
        source: Option<String>,
        /// CSV only: a TOML table (or JSON object) of "header" = "canonical key"; "" drops a column.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
        /// TOML configuration file: database_url and the sources' rules (XIANSUO_* win).
        #[arg(long, short, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Fill the configured database with realistic generated leads, to try the console and the
    /// reports: names, cities, keywords, landing pages and transcripts, spread over the last six
    /// months, claimed and worked by a few generated agents (printed with their passwords).
    ///
    /// The same --seed gives the same leads; running it again adds nothing twice.
    Demo {
        /// How many leads.
        #[arg(long, default_value_t = 1000)]
        leads: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// TOML configuration file: database_url and the source (XIANSUO_* win).
        #[arg(long, short, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum SourceCommand {
    /// Print what a body would become under a configured source (the card, the messages, which
    /// keys went to extra, the error if any); stores nothing. Example:
    /// xiansuo source test form form-body.json --config xiansuo.toml
    Test {
        /// The configured source.
        #[arg(value_name = "SOURCE")]
        source: String,
        /// A body as the sender posts it ("-" reads standard input).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The body's Content-Type (default: sniffed, as the push endpoint does).
        #[arg(long)]
        content_type: Option<String>,
        /// A request header ("Name: value"), to check a signature; repeatable.
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// The request's query string, for vendors that sign in it (七鱼).
        #[arg(long)]
        query: Option<String>,
        /// TOML configuration file with the sources (XIANSUO_* variables apply too).
        #[arg(long, short, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Show which rule each card of a push body would hit and who would get the lead; stores
    /// nothing. Example: xiansuo rules test card.json --config xiansuo.toml
    Test {
        /// A push body as the vendor sends it ("-" reads standard input).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The source the body is pushed to.
        #[arg(long, default_value = "easyliao")]
        source: String,
        /// The body's Content-Type (default: sniffed, as the push endpoint does).
        #[arg(long)]
        content_type: Option<String>,
        /// When the lead arrives, for rules with hours: "YYYY-MM-DD HH:MM:SS" China time (default: now).
        #[arg(long)]
        at: Option<String>,
        /// TOML configuration file with the rules (XIANSUO_* variables apply too).
        #[arg(long, short, env = "XIANSUO_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Serve { config } => serve::run(config.as_deref()),
        Command::Migrate { config } => migrate(config.as_deref()),
        Command::Reindex { config } => reindex(config.as_deref()),
        Command::Copy { from, to } => copy::run(&from, &to),
        Command::User { command, config } => user::run(command, config.as_deref()),
        Command::Token { command, config } => token::run(command, config.as_deref()),
        Command::Send { files, url, token, content_type } => send::run(&files, &url, &token, content_type.as_deref()),
        Command::Source { command: SourceCommand::Test { source, file, content_type, headers, query, config } } => {
            source::run(source::TestArgs { source, file, content_type, headers, query, config })
        }
        Command::Rules { command: RulesCommand::Test { file, source, content_type, at, config } } => {
            rules::run(rules::TestArgs { file, source, content_type, at, config })
        }
        Command::Export { format, out, columns, filters, config } => {
            export::run(&format, &out, columns.as_deref(), &filters, config.as_deref())
        }
        Command::Import { file, source, mapping, config } => {
            import::run(&file, source.as_deref(), mapping.as_deref(), config.as_deref())
        }
        Command::Demo { leads, seed, config } => demo::run(leads, seed, config.as_deref()),
        Command::Version => {
            println!("xiansuo {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configuration a file (and the environment) gives.
fn load_config(config_file: Option<&std::path::Path>) -> Result<xiansuo_config::Config, String> {
    xiansuo_config::Config::load(config_file, |k| std::env::var(k).ok()).map_err(|e| e.to_string())
}

/// A configured source by name, or an error naming the sources there are.
fn configured_source<'a>(
    config: &'a xiansuo_config::Config,
    name: &str,
) -> Result<&'a xiansuo_config::SourceConfig, String> {
    config.sources.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
        format!("no source \"{name}\" in the configuration (sources: {})", known.join(", "))
    })
}

/// The store a configuration file (and the environment) names.
async fn configured_store(
    config_file: Option<&std::path::Path>,
) -> Result<(xiansuo_config::Config, std::sync::Arc<dyn xiansuo_store::Store>), String> {
    open_configured(load_config(config_file)?).await
}

/// The same store, writing in the order writes are submitted: one PostgreSQL writer (SQLite
/// always has one), so a file's rows reach the database in the file's order.
async fn configured_store_in_order(
    config_file: Option<&std::path::Path>,
) -> Result<(xiansuo_config::Config, std::sync::Arc<dyn xiansuo_store::Store>), String> {
    let mut config = load_config(config_file)?;
    config.postgres_writers = 1;
    open_configured(config).await
}

async fn open_configured(
    config: xiansuo_config::Config,
) -> Result<(xiansuo_config::Config, std::sync::Arc<dyn xiansuo_store::Store>), String> {
    let store = xiansuo_web::startup::open_store(&config.database_url, &config).await.map_err(|e| e.to_string())?;
    Ok((config, store))
}

fn migrate(config_file: Option<&std::path::Path>) -> Result<ExitCode, String> {
    runtime()?.block_on(async {
        let (config, store) = configured_store(config_file).await?;
        let version = store.schema_version().await.map_err(|e| e.to_string())?;
        println!("{}: schema version {version}", config.database_url);
        Ok(ExitCode::SUCCESS)
    })
}

fn reindex(config_file: Option<&std::path::Path>) -> Result<ExitCode, String> {
    runtime()?.block_on(async {
        let (config, store) = configured_store(config_file).await?;
        let done = xiansuo_web::reindex::reindex_all(store.as_ref(), &config.scoring, |n| {
            eprint!("\rindexed {n} leads");
        })
        .await
        .map_err(|e| format!("reindex stopped (run it again to finish): {e}"))?;
        eprintln!();
        println!("{}: indexed and scored {done} leads", config.database_url);
        Ok(ExitCode::SUCCESS)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

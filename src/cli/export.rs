//! `xiansuo export --format csv|xlsx --out FILE [filters]`: the leads of a filter, read from
//! the database directly (like `xiansuo copy`), written as the API's export writes them.

use std::process::ExitCode;

use xiansuo_store::NewExport;
use xiansuo_web::export::{Format, Job, cli_query, owner_names, parse_columns, write_csv, write_xlsx};

/// The lead filters, named as the API's parameters.
#[derive(Debug, clap::Args)]
pub struct Filters {
    /// Substring of name, mobile, tel, weixin, qq, email, visitor id, keyword, note or city.
    #[arg(long)]
    q: Option<String>,
    /// new, contacted, interested, won or invalid.
    #[arg(long)]
    status: Option<String>,
    /// none (the unassigned pool) or a user id.
    #[arg(long)]
    owner: Option<String>,
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    province: Option<String>,
    #[arg(long)]
    city: Option<String>,
    #[arg(long)]
    search_engine: Option<String>,
    /// The vendor's summary tag id.
    #[arg(long)]
    ntag_id: Option<String>,
    /// The vendor's owner id.
    #[arg(long)]
    user_id: Option<String>,
    #[arg(long)]
    keyword: Option<String>,
    #[arg(long)]
    bidding_word: Option<String>,
    #[arg(long)]
    promotion_id: Option<String>,
    #[arg(long)]
    site_name: Option<String>,
    #[arg(long)]
    device_type: Option<String>,
    #[arg(long)]
    subject_name: Option<String>,
    #[arg(long)]
    school_name: Option<String>,
    #[arg(long)]
    search_host: Option<String>,
    /// A landing page (first_url without its query string).
    #[arg(long)]
    landing: Option<String>,
    /// Received at or after: YYYY-MM-DD, YYYY-MM-DD HH:MM:SS (China time) or RFC 3339.
    #[arg(long)]
    from: Option<String>,
    /// Received before (a date includes that day).
    #[arg(long)]
    to: Option<String>,
    /// received_at (oldest first); newest first otherwise.
    #[arg(long)]
    sort: Option<String>,
}

impl Filters {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("q", &self.q),
            ("status", &self.status),
            ("owner", &self.owner),
            ("source", &self.source),
            ("province", &self.province),
            ("city", &self.city),
            ("search_engine", &self.search_engine),
            ("ntag_id", &self.ntag_id),
            ("user_id", &self.user_id),
            ("keyword", &self.keyword),
            ("bidding_word", &self.bidding_word),
            ("promotion_id", &self.promotion_id),
            ("site_name", &self.site_name),
            ("device_type", &self.device_type),
            ("subject_name", &self.subject_name),
            ("school_name", &self.school_name),
            ("search_host", &self.search_host),
            ("landing", &self.landing),
            ("from", &self.from),
            ("to", &self.to),
            ("sort", &self.sort),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

pub fn run(
    format: &str,
    out: &std::path::Path,
    columns: Option<&str>,
    filters: &Filters,
    config_file: Option<&std::path::Path>,
) -> Result<ExitCode, String> {
    let format = Format::parse(format).ok_or_else(|| format!("--format: \"{format}\" is not csv or xlsx"))?;
    let columns = parse_columns(columns).map_err(|e| format!("--{e}"))?;
    let (query, filter) = cli_query(&filters.pairs())?;
    let runtime = super::runtime()?;
    let (_, store) = runtime.block_on(super::configured_store(config_file))?;
    let owners = runtime.block_on(owner_names(store.as_ref())).map_err(|e| e.to_string())?;
    let keys = columns.iter().map(|c| c.key.to_string()).collect();
    let job = Job {
        query,
        columns,
        format,
        record: NewExport {
            at: xiansuo_domain::now(),
            user_id: None,
            actor: "cli".into(),
            via: "cli".into(),
            format: format.as_str().into(),
            columns: keys,
            filter,
            rows: 0,
            completed: false,
        },
    };
    let mut file = std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let rows = match format {
        Format::Csv => {
            let mut writer = std::io::BufWriter::new(&mut file);
            let rows = runtime.block_on(write_csv(store.as_ref(), &job, &owners, &mut writer))?;
            std::io::Write::flush(&mut writer).map_err(|e| format!("writing {}: {e}", out.display()))?;
            rows
        }
        Format::Xlsx => write_xlsx(store.as_ref(), runtime.handle(), &job, &owners, &mut file)?,
    };
    file.sync_all().map_err(|e| format!("writing {}: {e}", out.display()))?;
    let mut record = job.record;
    record.rows = i64::try_from(rows).unwrap_or(i64::MAX);
    record.completed = true;
    runtime.block_on(store.record_export(record)).map_err(|e| format!("recording the export: {e}"))?;
    eprintln!("exported {rows} leads to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

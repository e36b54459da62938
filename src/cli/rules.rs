//! `xiansuo rules test FILE` (issue #6): which assignment rule each card of a push body would
//! hit, and who would get the lead. Decodes like the push endpoint; stores nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xiansuo_domain::routing::{OWNER_MAP_RULE, Target};

pub struct TestArgs {
    pub file: PathBuf,
    pub source: String,
    pub content_type: Option<String>,
    pub at: Option<String>,
    pub config: Option<PathBuf>,
}

pub fn run(args: TestArgs) -> Result<ExitCode, String> {
    let config = super::load_config(args.config.as_deref())?;
    let source = super::configured_source(&config, &args.source)?;
    let body = read(&args.file)?;
    let at = match &args.at {
        None => xiansuo_domain::now(),
        Some(t) => xiansuo_push::parse_time_bound(t, false)
            .ok_or_else(|| format!("--at \"{t}\": use YYYY-MM-DD HH:MM:SS (China time) or RFC 3339"))?,
    };
    let decoded = xiansuo_push::decode_push(&body, args.content_type.as_deref(), &source.rules)
        .map_err(|e| format!("{}: the body cannot be decoded: {e}", args.file.display()))?;
    let routing = &config.routing;
    if routing.rules.is_empty() && routing.owner_map.is_empty() {
        println!("The configuration has no [[rules]] and no [owner_map]: every new lead goes to the unassigned pool.");
    }
    super::runtime()?.block_on(async {
        // The database tells who is enabled, whose turn it is and who has the fewest open leads.
        let store = match xiansuo_web::startup::open_store(&config.database_url, &config).await {
            Ok(s) => Some(s),
            Err(e) => {
                println!("(the database {} cannot be opened: {e}; showing rules only)", config.database_url);
                None
            }
        };
        for (i, decoded) in decoded.cards.iter().enumerate() {
            let card = &decoded.card;
            let name = card.get("name").unwrap_or("");
            let place: Vec<&str> = ["province", "city"].iter().filter_map(|k| card.get(k)).collect();
            println!(
                "card {i}: visitor {} {name} [{}] keyword \"{}\" search engine \"{}\" tag \"{}\"",
                card.visitor_static_id().unwrap_or("?"),
                place.join(" "),
                card.get("keyword").unwrap_or(""),
                card.get("search_engine").unwrap_or(""),
                card.get("ntag_name").or_else(|| card.get("ntag_id")).unwrap_or("")
            );
            if decoded.ignored {
                println!("  ignored: its type is not in accept_types (no lead)");
                continue;
            }
            let decisions = routing.decisions(&args.source, card, at);
            if decisions.is_empty() {
                println!("  no rule matches: the lead stays in the unassigned pool");
                continue;
            }
            for d in &decisions {
                let why = if d.rule == OWNER_MAP_RULE {
                    format!("owner_map (vendor owner \"{}\")", card.get("user_id").unwrap_or(""))
                } else {
                    format!("rule \"{}\"", d.rule)
                };
                let target = match &d.target {
                    Target::User(u) => format!("user {u}"),
                    other => other.to_string(),
                };
                println!("  matches {why} → {target}");
            }
            if let Some(store) = &store {
                match store.preview_assignment(&decisions).await {
                    Ok(Some(p)) => println!("  would be assigned to {} (by {})", p.user_name, p.rule),
                    Ok(None) => println!("  no matching rule's user is enabled: the lead would stay in the pool"),
                    Err(e) => println!("  (cannot read the users: {e})"),
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut body).map_err(|e| format!("standard input: {e}"))?;
        return Ok(body);
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

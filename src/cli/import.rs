//! `xiansuo import FILE [--source NAME] [--mapping FILE]`: loads cards from a JSON file (one
//! card, an array, or `{"data": [...]}`), NDJSON (one body per line) or a CSV with a header row,
//! each card through the push endpoint's decoder (`decode_push`) and recorded like a push (in the
//! push log, with its outcome), then prints what became of every row.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::StreamExt;
use xiansuo_push::json::Json;
use xiansuo_push::{SourceRules, decode_push, keys, normalize_key};
use xiansuo_store::{NewPush, PushResult, Store, StoreError};

/// Cards stored at once: pushes in flight share commits (group commit).
const IN_FLIGHT: usize = 64;

/// One card of the file and where it was.
struct Item {
    /// `line 7`, `item 3`: how the summary names it.
    place: String,
    order: usize,
    body: Vec<u8>,
    /// A row the file's own format could not read (a CSV quoting error): rejected as it is.
    unreadable: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Ndjson,
    Csv,
}

fn kind_of(path: &Path, text: &str) -> Kind {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Kind::Csv,
        Some("ndjson" | "jsonl") => Kind::Ndjson,
        Some("json") => Kind::Json,
        _ => match text.trim_start().chars().next() {
            Some('[') => Kind::Json,
            // One document, or one per line.
            Some('{') if xiansuo_push::json::parse(text).is_ok() => Kind::Json,
            Some('{') => Kind::Ndjson,
            _ => Kind::Csv,
        },
    }
}

/// UTF-8 (a BOM dropped), or GBK as Excel saves CSV on Chinese Windows.
fn text_of(bytes: Vec<u8>) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").map(<[u8]>::to_vec).unwrap_or(bytes);
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => encoding_rs::GBK.decode(e.as_bytes()).0.into_owned(),
    }
}

fn json_items(text: &str) -> Vec<Item> {
    let one = |place: String, order, body: Vec<u8>| Item { place, order, body, unreadable: None };
    let Ok(document) = xiansuo_push::json::parse(text) else {
        // Not JSON: the decoder says where and why.
        return vec![one("the file".into(), 0, text.as_bytes().to_vec())];
    };
    let cards = match document {
        Json::Array(items) => items,
        Json::Object(members) => {
            let wrapped = members
                .iter()
                .rev()
                .find(|(k, v)| keys::is_wrapper_key(&normalize_key(k)) && matches!(v, Json::Array(_)))
                .map(|(_, v)| v.clone());
            match wrapped {
                Some(Json::Array(items)) => items,
                _ => vec![Json::Object(members)],
            }
        }
        other => vec![other],
    };
    let single = cards.len() == 1;
    cards
        .into_iter()
        .enumerate()
        .map(|(i, card)| {
            let place = if single { "the card".to_string() } else { format!("item {i}") };
            one(place, i, card.to_json_text().into_bytes())
        })
        .collect()
}

fn ndjson_items(text: &str) -> Vec<Item> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Item {
            place: format!("line {}", i + 1),
            order: i,
            body: line.as_bytes().to_vec(),
            unreadable: None,
        })
        .collect()
}

/// A CSV column's meaning: a canonical key (or `messages`), or `None` to leave it out.
type Mapping = HashMap<String, Option<String>>;

/// The key a header stands for: the mapping file's, else a field's Chinese label, else the
/// header itself (the decoder knows canonical keys, vendor keys and their spellings).
fn column_key(header: &str, mapping: &Mapping) -> Option<String> {
    let h = header.trim();
    if let Some(target) = mapping.get(h).or_else(|| mapping.get(&normalize_key(h))) {
        return target.clone();
    }
    if matches!(h, "聊天记录" | "对话记录") {
        return Some("messages".into());
    }
    match xiansuo_domain::FIELDS.iter().find(|f| f.label == h) {
        Some(f) => Some(f.key.to_string()),
        None => Some(h.to_string()),
    }
}

fn csv_items(text: &str, mapping: &Mapping) -> Result<Vec<Item>, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| format!("the CSV header row: {e}"))?.clone();
    let keys: Vec<Option<String>> = headers.iter().map(|h| column_key(h, mapping)).collect();
    let mut items = Vec::new();
    let mut record = csv::StringRecord::new();
    for i in 0.. {
        let read = reader.read_record(&mut record);
        // The line the row starts on (a quoted field may hold line breaks): the reader's
        // position is the start of the record it read last.
        let start = (reader.position().byte() as usize).min(text.len());
        let line = text.as_bytes()[..start].iter().filter(|b| **b == b'\n').count() + 1;
        match read {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let unreadable = Some(format!("the CSV row cannot be read: {e}"));
                items.push(Item { place: format!("line {line}"), order: i, body: Vec::new(), unreadable });
                continue;
            }
        }
        if record.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let members: Vec<(String, Json)> = keys
            .iter()
            .zip(record.iter())
            .filter_map(|(k, v)| Some((k.clone()?, Json::String(v.to_string()))))
            .filter(|(_, v)| !matches!(v, Json::String(s) if s.trim().is_empty()))
            .collect();
        let body = Json::Object(members).to_json_text().into_bytes();
        items.push(Item { place: format!("line {line}"), order: i, body, unreadable: None });
    }
    Ok(items)
}

/// A mapping file: a JSON object or a TOML table of `"header" = "canonical key"` (`""` leaves
/// the column out).
fn read_mapping(path: &Path) -> Result<Mapping, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--mapping {}: {e}", path.display()))?;
    let pairs: Vec<(String, String)> = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        let map: std::collections::BTreeMap<String, String> = serde_json::from_str(&text)
            .map_err(|e| format!("--mapping {}: not a JSON object of strings: {e}", path.display()))?;
        map.into_iter().collect()
    } else {
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| format!("--mapping {}: not TOML: {e}", path.display()))?;
        table
            .into_iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => Ok((k, s)),
                other => Err(format!("--mapping {}: \"{k}\" maps to {other}, not a key in quotes", path.display())),
            })
            .collect::<Result<_, _>>()?
    };
    let mut mapping = Mapping::new();
    for (header, key) in pairs {
        let key = key.trim().to_string();
        let target = if key.is_empty() {
            None
        } else if key == "messages" || xiansuo_domain::field(&key).is_some() {
            Some(key)
        } else {
            return Err(format!(
                "--mapping {}: \"{header}\" maps to \"{key}\", which is not a canonical key (such as mobile, name, keyword, messages; see README.md, \"Lead fields\"); use \"\" to leave the column out",
                path.display()
            ));
        };
        mapping.insert(header.trim().to_string(), target);
    }
    Ok(mapping)
}

#[derive(Debug)]
enum Outcome {
    Accepted { created: usize, updated: usize },
    Ignored,
    Rejected(String),
}

async fn store_item(store: &dyn Store, source: &str, rules: &SourceRules, item: &Item) -> Result<Outcome, String> {
    let content_type = Some("application/json".to_string());
    let decoded = match &item.unreadable {
        Some(error) => Err(error.clone()),
        None => decode_push(&item.body, content_type.as_deref(), rules).map_err(|e| e.to_string()),
    };
    let (result, outcome) = match decoded {
        Ok(decoded) if decoded.accepted() == 0 => {
            (PushResult::Cards { cards: Vec::new(), ignored: decoded.ignored() }, Outcome::Ignored)
        }
        Ok(decoded) => {
            let ignored = decoded.ignored();
            let cards = decoded.cards.into_iter().filter(|c| !c.ignored).map(|c| c.card).collect();
            (PushResult::Cards { cards, ignored }, Outcome::Accepted { created: 0, updated: 0 })
        }
        Err(e) => {
            let error = e.replace('\0', "\u{FFFD}");
            (PushResult::Rejected { error: error.clone() }, Outcome::Rejected(error))
        }
    };
    let push = |result| NewPush {
        source: source.to_string(),
        received_at: xiansuo_domain::now(),
        content_type: content_type.clone(),
        body: item.body.clone(),
        result,
    };
    loop {
        match store.record_push(push(result.clone())).await {
            Ok(recorded) => {
                return Ok(match outcome {
                    Outcome::Accepted { .. } => {
                        let created = recorded.leads.iter().filter(|l| l.created).count();
                        Outcome::Accepted { created, updated: recorded.leads.len() - created }
                    }
                    other => other,
                });
            }
            // The writer's queue is full: wait for it.
            Err(StoreError::Overloaded) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(StoreError::Invalid(reason)) => {
                let error = format!("the database refused the card: {reason}");
                store
                    .record_push(push(PushResult::Rejected { error: error.clone() }))
                    .await
                    .map_err(|e| format!("{}: {e}", item.place))?;
                return Ok(Outcome::Rejected(error));
            }
            Err(e) => return Err(format!("{}: {e}", item.place)),
        }
    }
}

pub fn run(
    file: &Path,
    source: Option<&str>,
    mapping: Option<&Path>,
    config_file: Option<&Path>,
) -> Result<ExitCode, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mapping = match mapping {
        Some(p) => read_mapping(p)?,
        None => Mapping::new(),
    };
    let text = text_of(bytes);
    let kind = kind_of(file, &text);
    let items = match kind {
        Kind::Json => json_items(&text),
        Kind::Ndjson => ndjson_items(&text),
        Kind::Csv => csv_items(&text, &mapping)?,
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let (config, store) = super::configured_store(config_file).await?;
        let name = match source {
            Some(s) => s.to_string(),
            None if config.sources.len() == 1 => config.sources.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(format!(
                    "several sources are configured ({}): say which with --source",
                    config.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        };
        let rules = config
            .sources
            .get(&name)
            .map(|s| s.rules.clone())
            .ok_or_else(|| format!("--source: no source named \"{name}\" is configured"))?;
        let bar = indicatif::ProgressBar::new(items.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} cards {elapsed_precise} (eta {eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let (store, rules, name): (Arc<dyn Store>, Arc<SourceRules>, Arc<str>) =
            (store, Arc::new(rules), Arc::from(name.as_str()));
        let mut results: Vec<(usize, String, Outcome)> = futures_util::stream::iter(items)
            .map(|item| {
                let (store, rules, name, bar) = (Arc::clone(&store), Arc::clone(&rules), Arc::clone(&name), bar.clone());
                async move {
                    let outcome = store_item(store.as_ref(), &name, &rules, &item).await;
                    bar.inc(1);
                    outcome.map(|o| (item.order, item.place, o))
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, String>>()?;
        bar.finish_and_clear();
        results.sort_by_key(|(order, _, _)| *order);

        let (mut accepted, mut created, mut updated, mut ignored) = (0, 0, 0, 0);
        let mut rejected = Vec::new();
        for (_, place, outcome) in results {
            match outcome {
                Outcome::Accepted { created: c, updated: u } => {
                    accepted += 1;
                    created += c;
                    updated += u;
                }
                Outcome::Ignored => ignored += 1,
                Outcome::Rejected(reason) => rejected.push((place, reason)),
            }
        }
        let what = match kind {
            Kind::Json => "JSON",
            Kind::Ndjson => "NDJSON",
            Kind::Csv => "CSV",
        };
        println!(
            "{}: {what}, source {name}: accepted {accepted} ({created} new leads, {updated} updated), ignored {ignored}, rejected {}",
            file.display(),
            rejected.len()
        );
        for (place, reason) in &rejected {
            println!("  rejected {place}: {reason}");
        }
        Ok(if rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}

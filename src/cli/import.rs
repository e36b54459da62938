//! `xiansuo import FILE [--source NAME] [--mapping FILE]`: loads cards from a JSON file (one
//! card, an array, or `{"data": [...]}`), NDJSON (one body per line) or a CSV with a header row,
//! each through the named source's decoder (its kind: EasyLiao, Tawk.to, 七鱼, 美洽, or its mapped
//! description; signatures are not checked, the file comes from an admin) and recorded like a
//! push (in the push log, with its outcome), then prints what became of every row.
//!
//! The file is streamed: NDJSON line by line, CSV record by record, a JSON array element by
//! element (each element's text kept as it is in the file), so memory stays flat whatever its
//! size. A reader thread feeds a bounded channel; [`IN_FLIGHT`] cards are stored at once.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::StreamExt;
use xiansuo_push::json::Json;
use xiansuo_push::vendors::{Kind as SourceKind, Request, Vendor};
use xiansuo_push::{DecodeError, DecodedPush, SourceRules, decode_push, keys, normalize_key};
use xiansuo_store::{NewPush, PushResult, Store, StoreError, VendorPush};

/// Cards stored at once: pushes in flight share commits (group commit).
const IN_FLIGHT: usize = 64;

/// Cards read ahead of the store: with [`IN_FLIGHT`], what the import holds in memory.
const READ_AHEAD: usize = 256;

/// How much of the file's start tells its encoding.
const SNIFF: usize = 64 * 1024;

/// One card of the file and where it was.
struct Item {
    /// `line 7`, `item 3`: how the summary names it.
    place: String,
    order: usize,
    body: Vec<u8>,
    /// A row the file's own format could not read (a CSV quoting error): rejected as it is.
    unreadable: Option<String>,
}

impl Item {
    fn new(place: String, order: usize, body: Vec<u8>) -> Item {
        Item { place, order, body, unreadable: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Ndjson,
    Csv,
}

/// The file as UTF-8 text, streamed: a UTF-8 BOM dropped; a file whose start is not UTF-8 is
/// read as GBK (as Excel saves CSV on Chinese Windows). The progress bar follows the bytes read.
fn open_text(path: &Path, bar: &indicatif::ProgressBar) -> Result<Box<dyn BufRead + Send>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut reader = BufReader::with_capacity(SNIFF, bar.wrap_read(file));
    let start = reader.fill_buf().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if start.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
        return Ok(Box::new(reader));
    }
    // A character cut at the end of the sniffed bytes is not an error.
    let gbk = std::str::from_utf8(start).is_err_and(|e| e.error_len().is_some());
    Ok(if gbk { Box::new(BufReader::new(Gbk::new(reader))) } else { Box::new(reader) })
}

/// GBK bytes read as UTF-8.
struct Gbk<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: BufRead> Gbk<R> {
    fn new(inner: R) -> Gbk<R> {
        Gbk {
            inner,
            decoder: encoding_rs::GBK.new_decoder_without_bom_handling(),
            out: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for Gbk<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            let input = self.inner.fill_buf()?;
            let last = input.is_empty();
            let room = self.decoder.max_utf8_buffer_length(input.len()).unwrap_or(input.len() * 3 + 16);
            self.out.clear();
            self.out.resize(room.max(16), 0);
            self.pos = 0;
            let (_, read, written, _) = self.decoder.decode_to_utf8(input, &mut self.out, last);
            self.inner.consume(read);
            self.out.truncate(written);
            self.done = last;
        }
        let n = (self.out.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The file's format: by its extension, else by its start (`[`: JSON; `{`: one document, or
/// NDJSON when its first line is a whole document and another line follows; else CSV).
fn format_of(path: &Path) -> Result<Format, String> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => return Ok(Format::Csv),
        Some("ndjson" | "jsonl") => return Ok(Format::Ndjson),
        Some("json") => return Ok(Format::Json),
        _ => {}
    }
    let mut reader = open_text(path, &indicatif::ProgressBar::hidden())?;
    let mut lines = Vec::new();
    let mut line = Vec::new();
    while lines.len() < 2 {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        if !line.trim_ascii().is_empty() {
            lines.push(String::from_utf8_lossy(line.trim_ascii()).into_owned());
        }
    }
    Ok(match lines.first().and_then(|l| l.chars().next()) {
        Some('[') => Format::Json,
        Some('{') if lines.len() == 2 && xiansuo_push::json::parse(&lines[0]).is_ok() => Format::Ndjson,
        Some('{') => Format::Json,
        _ => Format::Csv,
    })
}

/// Sends each item to the store's side; `false` once nobody listens (the import stopped).
type Emit<'a> = dyn FnMut(Item) -> bool + 'a;

fn ndjson_items(reader: &mut dyn BufRead, emit: &mut Emit<'_>) -> Result<(), String> {
    let mut line = Vec::new();
    for i in 0.. {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(|e| format!("reading line {}: {e}", i + 1))? == 0 {
            break;
        }
        let text = line.trim_ascii();
        if !text.is_empty() && !emit(Item::new(format!("line {}", i + 1), i, text.to_vec())) {
            break;
        }
    }
    Ok(())
}

/// The bytes of a JSON text, one at a time (a small reader of values, so that a document too
/// large to hold is read element by element).
struct Scan<'a> {
    reader: &'a mut dyn BufRead,
    /// Bytes read so far (for messages).
    at: u64,
}

impl Scan<'_> {
    fn peek(&mut self) -> Result<Option<u8>, String> {
        let buf = self.reader.fill_buf().map_err(|e| format!("cannot read the file: {e}"))?;
        Ok(buf.first().copied())
    }

    fn bump(&mut self) -> Result<Option<u8>, String> {
        let b = self.peek()?;
        if b.is_some() {
            self.reader.consume(1);
            self.at += 1;
        }
        Ok(b)
    }

    /// The next byte that is not white space, not consumed.
    fn skip_ws(&mut self) -> Result<Option<u8>, String> {
        while let Some(b) = self.peek()? {
            if !b.is_ascii_whitespace() {
                return Ok(Some(b));
            }
            self.bump()?;
        }
        Ok(None)
    }

    /// Copies one value as it is written (a string, an object or array with everything in it,
    /// or a bare word or number) into `out`.
    fn value(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        while let Some(b) = self.peek()? {
            if !in_string && depth == 0 && !out.is_empty() && matches!(b, b',' | b']' | b'}') {
                return Ok(());
            }
            if !in_string && depth == 0 && !out.is_empty() && b.is_ascii_whitespace() {
                return Ok(());
            }
            self.bump()?;
            out.push(b);
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => {
                        in_string = false;
                        if depth == 0 {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        if in_string || depth > 0 {
            return Err(format!("the JSON ends inside a value (byte {})", self.at));
        }
        Ok(())
    }
}

/// A JSON document's cards: the elements of a top-level array, or of the array under a wrapper
/// key (`data`…) of a top-level object, else the document itself; each element's text as it is.
fn json_items(reader: &mut dyn BufRead, emit: &mut Emit<'_>) -> Result<(), String> {
    let mut scan = Scan { reader, at: 0 };
    match scan.skip_ws()? {
        Some(b'[') => {
            scan.bump()?;
            array_items(&mut scan, emit)
        }
        Some(b'{') => {
            scan.bump()?;
            // The object, kept while no wrapper array is found (then it is the card).
            let mut whole = b"{".to_vec();
            let mut streamed = false;
            loop {
                match scan.skip_ws()? {
                    Some(b'}') => {
                        scan.bump()?;
                        whole.push(b'}');
                        break;
                    }
                    Some(b',') => {
                        scan.bump()?;
                        whole.push(b',');
                        continue;
                    }
                    Some(_) => {}
                    None => return Err(format!("the JSON ends inside the document (byte {})", scan.at)),
                }
                let mut key = Vec::new();
                scan.value(&mut key)?;
                if scan.skip_ws()? != Some(b':') {
                    return Err(format!("a member's name is not followed by ':' (byte {})", scan.at));
                }
                scan.bump()?;
                let name = std::str::from_utf8(&key).ok().and_then(|k| xiansuo_push::json::parse(k).ok());
                let wrapper = matches!(&name, Some(Json::String(k)) if keys::is_wrapper_key(&normalize_key(k)));
                if !streamed && wrapper && scan.skip_ws()? == Some(b'[') {
                    scan.bump()?;
                    array_items(&mut scan, emit)?;
                    streamed = true;
                    continue;
                }
                let mut value = Vec::new();
                scan.value(&mut value)?;
                if !streamed {
                    whole.extend_from_slice(&key);
                    whole.push(b':');
                    whole.extend_from_slice(&value);
                }
            }
            if !streamed {
                emit(Item::new("the card".into(), 0, whole));
            }
            Ok(())
        }
        Some(_) => {
            let mut value = Vec::new();
            scan.value(&mut value)?;
            emit(Item::new("the file".into(), 0, value));
            Ok(())
        }
        None => Ok(()),
    }
}

/// The elements of an array whose `[` was read. One is held back, so that an array of one card
/// names it "the card", as a single document.
fn array_items(scan: &mut Scan, emit: &mut Emit<'_>) -> Result<(), String> {
    let mut held: Option<Vec<u8>> = None;
    let mut count = 0usize;
    loop {
        match scan.skip_ws()? {
            Some(b']') => {
                scan.bump()?;
                break;
            }
            Some(b',') => {
                scan.bump()?;
                continue;
            }
            Some(_) => {}
            None => return Err(format!("the JSON ends inside an array, after item {count} (byte {})", scan.at)),
        }
        let mut value = Vec::new();
        scan.value(&mut value)?;
        if let Some(previous) = held.replace(value)
            && !emit(Item::new(format!("item {}", count - 1), count - 1, previous))
        {
            return Ok(());
        }
        count += 1;
    }
    if let Some(last) = held {
        let place = if count == 1 { "the card".to_string() } else { format!("item {}", count - 1) };
        emit(Item::new(place, count - 1, last));
    }
    Ok(())
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

/// A CSV's rows as JSON objects of (column's key, value): `raw_headers` keeps the header as
/// written (a mapped source's paths name the columns), else [`column_key`] reads it.
fn csv_items(
    reader: &mut dyn BufRead,
    mapping: &Mapping,
    raw_headers: bool,
    emit: &mut Emit<'_>,
) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = reader.headers().map_err(|e| format!("the CSV header row: {e}"))?.clone();
    let keys: Vec<Option<String>> =
        headers.iter().map(|h| if raw_headers { Some(h.trim().to_string()) } else { column_key(h, mapping) }).collect();
    let mut record = csv::StringRecord::new();
    // The reader counts lines without the breaks inside quoted fields: they are added back, so
    // that a row is named by the line it starts on in the file.
    let mut breaks_in_fields = 0u64;
    for i in 0.. {
        let read = reader.read_record(&mut record);
        let item = match read {
            Ok(true) => {
                let line = record.position().map_or_else(|| reader.position().line(), |p| p.line()) + breaks_in_fields;
                breaks_in_fields +=
                    record.iter().map(|f| f.bytes().filter(|b| *b == b'\n').count() as u64).sum::<u64>();
                if record.iter().all(|v| v.trim().is_empty()) {
                    continue;
                }
                let members: Vec<(String, Json)> = keys
                    .iter()
                    .zip(record.iter())
                    .filter_map(|(k, v)| Some((k.clone()?, Json::String(v.to_string()))))
                    .filter(|(_, v)| !matches!(v, Json::String(s) if s.trim().is_empty()))
                    .collect();
                Item::new(format!("line {line}"), i, Json::Object(members).to_json_text().into_bytes())
            }
            Ok(false) => break,
            Err(e) => Item {
                place: format!("line {}", reader.position().line() + breaks_in_fields),
                order: i,
                body: Vec::new(),
                unreadable: Some(format!("the CSV row cannot be read: {e}")),
            },
        };
        if !emit(item) {
            break;
        }
    }
    Ok(())
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

/// How rows are decoded: the source's decoder, its rules, and its name.
struct Decoding {
    decoder: Arc<dyn Vendor>,
    rules: SourceRules,
    source: String,
}

impl Decoding {
    /// A row: the source's decoder; a CSV row of canonical columns: EasyLiao's (a vendor's
    /// webhook layout has no table form), unless the source is mapped.
    fn decode(
        &self,
        body: &[u8],
        csv: bool,
    ) -> (Result<DecodedPush, DecodeError>, Option<xiansuo_domain::VisitorEvent>) {
        let content_type = Some("application/json");
        if csv && self.decoder.kind() != SourceKind::Mapped {
            return (decode_push(body, content_type, &self.rules), None);
        }
        let request = Request { body, content_type, headers: &[], query: &[], now: xiansuo_domain::now() };
        let decoded = self.decoder.decode(&request, &self.rules);
        let event = match &decoded {
            Ok(d) if d.accepted() == 0 => self.decoder.visitor_event(&request),
            _ => None,
        };
        (decoded, event)
    }
}

async fn store_item(store: &dyn Store, how: &Decoding, csv: bool, item: &Item) -> Result<Outcome, String> {
    let content_type = Some("application/json".to_string());
    let (decoded, event) = match &item.unreadable {
        Some(error) => (Err(error.clone()), None),
        None => {
            let (decoded, event) = how.decode(&item.body, csv);
            (decoded.map_err(|e| e.to_string()), event)
        }
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
        source: how.source.clone(),
        received_at: xiansuo_domain::now(),
        content_type: content_type.clone(),
        body: item.body.clone(),
        query: None,
        result,
    };
    // An event without lead data of a known visitor goes into its lead's timeline, as when
    // pushed. (Event ids are not kept: a file imported twice is recorded twice, as any file.)
    let vendor = VendorPush { event_id: None, events: event.into_iter().collect() };
    loop {
        match store.record_vendor_push(push(result.clone()), vendor.clone()).await {
            Ok(stored) => {
                let recorded = stored.recorded;
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

/// What became of the rows so far.
#[derive(Default)]
struct Tally {
    accepted: usize,
    created: usize,
    updated: usize,
    ignored: usize,
    /// (order, place, reason), sorted at the end.
    rejected: Vec<(usize, String, String)>,
}

impl Tally {
    fn add(&mut self, order: usize, place: String, outcome: Outcome) {
        match outcome {
            Outcome::Accepted { created, updated } => {
                self.accepted += 1;
                self.created += created;
                self.updated += updated;
            }
            Outcome::Ignored => self.ignored += 1,
            Outcome::Rejected(reason) => self.rejected.push((order, place, reason)),
        }
    }

    fn rows(&self) -> usize {
        self.accepted + self.ignored + self.rejected.len()
    }
}

pub fn run(
    file: &Path,
    source: Option<&str>,
    mapping: Option<&Path>,
    config_file: Option<&Path>,
) -> Result<ExitCode, String> {
    let size = std::fs::metadata(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?.len();
    let mapping = match mapping {
        Some(p) => Some(read_mapping(p)?),
        None => None,
    };
    let format = format_of(file)?;
    let runtime = super::runtime()?;
    runtime.block_on(async {
        // In order: a vendor's events (start, messages, end) and a visitor's later cards are
        // stored after the earlier ones, as when they were pushed.
        let (config, store) = super::configured_store_in_order(config_file).await?;
        xiansuo_web::startup::mark_new_database(store.as_ref()).await.map_err(|e| e.to_string())?;
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
        let configured =
            config.sources.get(&name).ok_or_else(|| format!("--source: no source named \"{name}\" is configured"))?;
        let how = Arc::new(Decoding {
            decoder: configured.kind.vendor(configured.mapped.clone()),
            rules: configured.rules.clone(),
            source: name.clone(),
        });
        let kind = configured.kind;
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {msg} {elapsed_precise} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );

        // The reader thread: the file, item by item, into a bounded channel.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(READ_AHEAD);
        let path = file.to_path_buf();
        let reader_bar = bar.clone();
        let raw_headers = kind == SourceKind::Mapped && mapping.is_none();
        let mapping = mapping.unwrap_or_default();
        let reader = std::thread::spawn(move || -> Result<(), String> {
            let mut text = open_text(&path, &reader_bar)?;
            let mut emit = |item: Item| tx.blocking_send(item).is_ok();
            match format {
                // A document that breaks off (or is not JSON) is one rejected row, after the
                // cards read before the break.
                Format::Json => {
                    if let Err(reason) = json_items(&mut text, &mut emit) {
                        let unreadable = Some(format!("the file is not valid JSON: {reason}"));
                        emit(Item { place: "the file".into(), order: usize::MAX, body: Vec::new(), unreadable });
                    }
                    Ok(())
                }
                Format::Ndjson => ndjson_items(&mut text, &mut emit),
                Format::Csv => csv_items(&mut text, &mapping, raw_headers, &mut emit),
            }
        });

        let items = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let csv = format == Format::Csv;
        let mut stored = items
            .map(|item| {
                let (store, how): (Arc<dyn Store>, _) = (Arc::clone(&store), Arc::clone(&how));
                async move {
                    let outcome = store_item(store.as_ref(), &how, csv, &item).await;
                    outcome.map(|o| (item.order, item.place, o))
                }
            })
            .buffer_unordered(IN_FLIGHT);
        let mut tally = Tally::default();
        let mut failed = None;
        while let Some(result) = stored.next().await {
            match result {
                Ok((order, place, outcome)) => {
                    tally.add(order, place, outcome);
                    bar.set_message(format!("{} cards", tally.rows()));
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // Stops the reader if it is still going (its channel closes).
        drop(stored);
        let read = reader.join().map_err(|_| "the file's reader stopped unexpectedly".to_string())?;
        bar.finish_and_clear();
        if let Some(e) = failed {
            return Err(e);
        }
        read.map_err(|e| format!("{}: {e}", file.display()))?;
        tally.rejected.sort_by_key(|(order, _, _)| *order);

        let what = match format {
            Format::Json => "JSON",
            Format::Ndjson => "NDJSON",
            Format::Csv => "CSV",
        };
        let Tally { accepted, created, updated, ignored, rejected } = tally;
        println!(
            "{}: {what}, source {name} ({}): accepted {accepted} ({created} new leads, {updated} updated), ignored {ignored}, rejected {}",
            file.display(),
            kind.as_str(),
            rejected.len()
        );
        for (_, place, reason) in &rejected {
            println!("  rejected {place}: {reason}");
        }
        Ok(if rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}

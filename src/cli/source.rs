//! `xiansuo source test SOURCE FILE` (issue #11): what a body would become under a configured
//! source — the card, the messages, which keys went to `extra`, the error if any — without
//! storing anything, so that a source (a mapped one above all) can be set up by trial.

use std::path::PathBuf;
use std::process::ExitCode;

use xiansuo_push::vendors::Request;

pub struct TestArgs {
    pub source: String,
    pub file: PathBuf,
    pub content_type: Option<String>,
    /// `Name: value` headers, to check a signature as the vendor would send it.
    pub headers: Vec<String>,
    /// The query string as the vendor would send it (`a=1&b=2`).
    pub query: Option<String>,
    pub config: Option<PathBuf>,
}

pub fn run(args: TestArgs) -> Result<ExitCode, String> {
    let config = super::load_config(args.config.as_deref())?;
    let source = super::configured_source(&config, &args.source)?;
    let body = if args.file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        b
    } else {
        std::fs::read(&args.file).map_err(|e| format!("cannot read {}: {e}", args.file.display()))?
    };
    let mut headers = Vec::new();
    for h in &args.headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| format!("--header \"{h}\": write it as \"Name: value\""))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(args.query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
    let vendor = source.kind.vendor(source.mapped.clone());
    let request = Request {
        body: &body,
        content_type: args.content_type.as_deref(),
        headers: &headers,
        query: &query,
        now: xiansuo_domain::now(),
    };
    println!("source \"{}\" (kind {})", source.name, source.kind.as_str());
    if vendor.signs() {
        match (&source.secret, headers.is_empty() && query.is_empty()) {
            (_, true) => println!("signature: not checked (give the request's --header and --query to check it)"),
            (None, _) => println!("signature: the source has no secret"),
            (Some(secret), _) => match vendor.verify(&request, secret) {
                Ok(()) => println!("signature: valid"),
                Err(e) => println!("signature: REFUSED (401): {e}"),
            },
        }
    }
    if let Some(id) = vendor.event_id(&request) {
        println!("vendor event id: {id}");
    }
    let decoded = match vendor.decode(&request, &source.rules) {
        Ok(d) => d,
        Err(e) => {
            println!("error: {e}");
            println!("(the push would be kept in the push log as rejected; nothing was stored)");
            return Ok(ExitCode::from(1));
        }
    };
    for (i, c) in decoded.cards.iter().enumerate() {
        let card = &c.card;
        if c.ignored {
            let what = card.extra.get("event").map(String::as_str).unwrap_or("its type is not in accept_types");
            println!("card {i}: ignored ({what}): kept in the push log, no lead");
            continue;
        }
        println!("card {i}:");
        for (k, v) in &card.fields {
            println!("  {k} = {v}");
        }
        for (k, t) in &card.times {
            println!("  {k} = {}", xiansuo_store::outbox::china_time(*t));
        }
        for (k, v) in &card.found_in_chat {
            println!("  {k} = {v}   (found in the chat)");
        }
        if !card.extra.is_empty() {
            println!("  extra (mapped to no canonical key):");
            for (k, v) in &card.extra {
                println!("    {k} = {v}");
            }
        }
        println!("  messages: {}", card.messages.len());
        for m in &card.messages {
            let at = m.create_time.map(xiansuo_store::outbox::china_time).unwrap_or_default();
            let who = match m.sender {
                xiansuo_domain::Sender::Visitor => "visitor",
                xiansuo_domain::Sender::Staff => "staff",
            };
            println!("    [{}] {who} {} {at}: {}", m.recorder_id, m.from_id.as_deref().unwrap_or(""), m.message);
        }
        for w in &c.warnings {
            println!("  warning: {w}");
        }
    }
    match vendor.success() {
        Some(a) => println!("answer on success: {} {} {:?}", a.status, a.content_type, a.body),
        None => println!("answer on success: 200 with the push endpoint's JSON"),
    }
    println!("(nothing was stored)");
    Ok(ExitCode::SUCCESS)
}

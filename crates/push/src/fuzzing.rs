//! How fuzz inputs become decoder calls, shared by the fuzz target (`fuzz/`), the test that
//! replays its corpus (`tests/corpus.rs`) and the property tests, so a crashing input reproduces
//! as a test.

use crate::SourceRules;

/// The first byte of an input picks one of these.
pub const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/json;charset=utf-8"),
    Some("text/plain"),
    Some("text/html;charset=UTF-8"),
    Some("application/x-www-form-urlencoded"),
    Some("multipart/form-data; boundary=XyZ"),
    Some("multipart/form-data"),
    Some("application/json; charset=GBK"),
    Some("text/plain; charset=utf-16"),
    Some("application/json; charset=nonsense"),
];

/// Splits a fuzz input into a Content-Type and a body.
pub fn split_input(data: &[u8]) -> (Option<&'static str>, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (CONTENT_TYPES[usize::from(*first) % CONTENT_TYPES.len()], rest),
        None => (None, data),
    }
}

/// A source with a type filter and renames, so those paths are fuzzed too.
pub fn rules() -> SourceRules {
    let field_map =
        [("客户手机".to_string(), "mobile".to_string()), ("访客编号".to_string(), "visitor_static_id".to_string())];
    SourceRules::new(vec!["转线索".to_string()], field_map).unwrap_or_default()
}

//! A tolerant JSON reader for vendor bodies.
//!
//! Why not `serde_json::Value`: the vendor's bodies need three things it cannot give
//! (design-notes.md): objects keep every (key, value) pair in arrival order, duplicates included,
//! so "last non-empty wins" can be applied; numbers keep their exact digits (18-digit message
//! ids must not pass through `f64`); and raw control characters inside strings (a note typed
//! over two lines, templated into the body by the vendor) are read as if they were escaped.
//! Everything else is strict JSON, and every error says where it is and what was expected.

use std::fmt;

/// Nesting deeper than this is refused: no vendor sends it, and it bounds the stack.
pub const MAX_DEPTH: usize = 64;

/// A JSON value with objects as ordered pairs and numbers as their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number exactly as written.
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Every member in arrival order, duplicate keys included.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// A short name of the value's type for messages ("an object", "a number").
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// Compact JSON text of the value (numbers as they arrived).
    pub fn to_json_text(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_json_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Where and why a body is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for JsonError {}

/// Line and column (1-based, columns in characters) of a byte offset in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, column)
}

/// Parses one JSON value that fills the whole text (surrounding white space allowed).
pub fn parse(text: &str) -> Result<Json, JsonError> {
    let mut parser = Parser { text, bytes: text.as_bytes(), pos: 0 };
    parser.skip_ws();
    let value = parser.value(0)?;
    parser.skip_ws();
    if parser.pos < parser.bytes.len() {
        return Err(parser.error_here("unexpected text after the end of the JSON value"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error_at(&self, offset: usize, message: String) -> JsonError {
        let (line, column) = line_column(self.text, offset);
        JsonError { line, column, message }
    }

    /// An error at the current position, naming what was found there.
    fn error_here(&self, expected: &str) -> JsonError {
        self.error_at(self.pos, format!("{expected}, found {}", self.found()))
    }

    fn found(&self) -> String {
        let Some(c) = self.text[self.pos..].chars().next() else {
            return "the end of the body".to_string();
        };
        match c {
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2018}' | '\u{2019}' | '\u{FF02}' => {
                format!("`{c}` (U+{:04X}, a typographic quote: JSON needs the plain ASCII quote \")", c as u32)
            }
            '\u{FF0C}' => "`，` (a full-width comma: JSON needs the ASCII comma ,)".to_string(),
            '\u{FF1A}' => "`：` (a full-width colon: JSON needs the ASCII colon :)".to_string(),
            c if c.is_control() => format!("the control character U+{:04X}", c as u32),
            c => format!("`{c}`"),
        }
    }

    /// Skips white space between tokens: JSON's four, and also the no-break space (U+00A0),
    /// the ideographic space (U+3000) and the byte-order mark, which bodies pasted from
    /// documents and chat tools carry (the vendor's own example has a U+00A0 after a colon).
    fn skip_ws(&mut self) {
        loop {
            let rest = &self.bytes[self.pos..];
            match rest.first() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                Some(0xC2) if rest.starts_with("\u{A0}".as_bytes()) => self.pos += 2,
                Some(0xE3) if rest.starts_with("\u{3000}".as_bytes()) => self.pos += 3,
                Some(0xEF) if rest.starts_with("\u{FEFF}".as_bytes()) => self.pos += 3,
                _ => break,
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error_at(self.pos, format!("nesting deeper than {MAX_DEPTH} levels is not accepted")));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            _ => Err(self.error_here("expected a JSON value (an object, array, string, number, true, false or null)")),
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error_here(&format!("expected `{word}`")))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        self.pos += 1; // '{'
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error_here("expected a key in double quotes"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.error_here(&format!("expected `:` after the key \"{key}\"")));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    members.push((key, value));
                }
                Some(b'}') => {
                    self.pos += 1;
                    members.push((key, value));
                    return Ok(Json::Object(members));
                }
                _ => {
                    return Err(self.error_here(&format!("expected `,` or `}}` after the value of \"{key}\"")));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, JsonError> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => {
                    return Err(
                        self.error_here(&format!("expected `,` or `]` after item {} of the array", items.len()))
                    );
                }
            }
        }
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error_here("expected a digit in the number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_here("expected a digit after the decimal point"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error_here("expected a digit in the exponent"));
            }
            self.digits();
        }
        Ok(Json::Number(self.text[start..self.pos].to_string()))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    /// Reads a string starting at its opening quote. Raw control characters are kept as the
    /// characters they are (tolerated: see the module documentation).
    fn string(&mut self) -> Result<String, JsonError> {
        let open = self.pos;
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote or backslash in one go.
            let run_start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                _ => {
                    return Err(self.error_at(
                        open,
                        "this string is never closed: expected a closing `\"` before the end of the body".to_string(),
                    ));
                }
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let Some(b) = self.peek() else {
            return Err(self.error_here("expected an escape character after `\\`"));
        };
        self.pos += 1;
        match b {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let first = self.hex4()?;
                let c = if (0xD800..0xDC00).contains(&first) {
                    // A high surrogate: a low one should follow as `\uXXXX`.
                    if self.bytes[self.pos..].starts_with(b"\\u") {
                        let save = self.pos;
                        self.pos += 2;
                        let second = self.hex4()?;
                        if (0xDC00..0xE000).contains(&second) {
                            char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
                        } else {
                            self.pos = save;
                            None
                        }
                    } else {
                        None
                    }
                } else {
                    char::from_u32(first)
                };
                // A lone surrogate cannot be kept in text: it becomes U+FFFD.
                out.push(c.unwrap_or('\u{FFFD}'));
            }
            _ => {
                self.pos -= 1;
                return Err(self.error_here("expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX after `\\`"));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.bytes.get(self.pos..self.pos + 4);
        let value = digits
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok());
        match value {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(self.error_here("expected four hexadecimal digits after `\\u`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, Json)]) -> Json {
        Json::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let v = parse(r#"{"a":"1","a":"","b":2}"#).unwrap();
        assert_eq!(
            v,
            obj(&[("a", Json::String("1".into())), ("a", Json::String("".into())), ("b", Json::Number("2".into()))])
        );
    }

    #[test]
    fn keeps_exact_digits_of_long_numbers() {
        let v = parse(r#"[433328278485408768, 12345678901234567890123, -1.5e10]"#).unwrap();
        assert_eq!(
            v,
            Json::Array(vec![
                Json::Number("433328278485408768".into()),
                Json::Number("12345678901234567890123".into()),
                Json::Number("-1.5e10".into()),
            ])
        );
    }

    #[test]
    fn reads_escapes_and_escaped_slashes() {
        let v = parse(r#""http:\/\/m.xxx.com\/zt \u4e2d\ud83d\ude00\n""#).unwrap();
        assert_eq!(v, Json::String("http://m.xxx.com/zt 中😀\n".into()));
    }

    #[test]
    fn tolerates_raw_control_characters_in_strings() {
        let v = parse("{\"note\":\"first line\nsecond\tline\"}").unwrap();
        assert_eq!(v, obj(&[("note", Json::String("first line\nsecond\tline".into()))]));
    }

    #[test]
    fn tolerates_pasted_spaces_between_tokens() {
        let v = parse("{\"a\":\u{A0}\"1\",\u{3000}\"b\":2}").unwrap();
        assert_eq!(v, obj(&[("a", Json::String("1".into())), ("b", Json::Number("2".into()))]));
    }

    #[test]
    fn lone_surrogate_becomes_replacement_character() {
        assert_eq!(parse(r#""\ud800x""#).unwrap(), Json::String("\u{FFFD}x".into()));
    }

    #[test]
    fn typographic_quote_error_names_line_column_and_fix() {
        let err = parse("{\n\n“visitorStaticId”: \"1\"}").unwrap_err();
        assert_eq!((err.line, err.column), (3, 1));
        assert!(err.message.contains("expected a key in double quotes"), "{}", err.message);
        assert!(err.message.contains("typographic quote"), "{}", err.message);
    }

    #[test]
    fn missing_comma_error_names_the_previous_key() {
        let err = parse("{\"a\":\"\"\n\"b\":1}").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.contains("expected `,` or `}` after the value of \"a\""), "{}", err.message);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let err = parse("{\"名字\":\"张三\" x}").unwrap_err();
        assert_eq!((err.line, err.column), (1, 12));
    }

    #[test]
    fn unterminated_string_points_at_its_start() {
        let err = parse("{\"a\":\"abc").unwrap_err();
        assert_eq!((err.line, err.column), (1, 6));
        assert!(err.message.contains("never closed"));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        let err = parse(&deep).unwrap_err();
        assert!(err.message.contains("nesting deeper"));
    }

    #[test]
    fn rejects_trailing_text_and_bad_numbers() {
        assert!(parse("{} x").is_err());
        assert!(parse("01").is_err());
        assert!(parse("1.").is_err());
        assert!(parse("-").is_err());
        assert!(parse("tru").is_err());
        assert!(parse("").unwrap_err().message.contains("the end of the body"));
    }

    #[test]
    fn json_text_round_trips() {
        let text = r#"{"a":[1,"x\"y",null,true,{"b":-2.5}],"a":"\n"}"#;
        let v = parse(text).unwrap();
        assert_eq!(parse(&v.to_json_text()).unwrap(), v);
    }
}

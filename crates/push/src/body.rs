//! From request bytes to one JSON document: content types, charsets, sniffing, forms.

use std::convert::Infallible;

use crate::DecodeError;
use crate::json::{self, Json};

/// The media type and charset of a Content-Type header.
struct ContentType {
    mime: String,
    charset: Option<String>,
}

fn content_type(header: Option<&str>) -> ContentType {
    let header = header.unwrap_or("");
    let mut parts = header.split(';');
    let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("charset")).then(|| v.trim().trim_matches('"').to_ascii_lowercase())
    });
    ContentType { mime, charset }
}

/// Reads the body into a JSON document: an object or array from a JSON body, or an object of
/// string fields from a url-encoded or multipart form.
pub fn read_document(body: &[u8], content_type_header: Option<&str>) -> Result<Json, DecodeError> {
    let ct = content_type(content_type_header);
    if ct.mime == "multipart/form-data" {
        return read_multipart(body, content_type_header.unwrap_or(""));
    }
    let unmarked = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let first = unmarked.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first.is_none() {
        return Err(DecodeError::EmptyBody);
    }
    let looks_like_json = matches!(first, Some(b'{' | b'['));
    // A form field name never starts with `{` or `[`: such a body is JSON sent under the form
    // type (curl -d does that), and is read as JSON.
    if ct.mime == "application/x-www-form-urlencoded" && !looks_like_json {
        return Ok(read_form(body));
    }
    // Anything else is sniffed: the vendor's tools send JSON as text/plain or text/html too.
    let text = decode_text(body, ct.charset.as_deref())?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(DecodeError::EmptyBody);
    }
    // push-spec.md: any type other than form or multipart is sniffed, application/json included
    // (the vendor's HTTP client labels a body application/json;charset=utf-8 unless told
    // otherwise, its httpForm bodies too): `{` or `[` first is JSON, anything else is tried as a
    // form. A body without `=` is no form either; it is read as JSON, for an error that says
    // where it breaks.
    if !trimmed.starts_with(['{', '[']) && trimmed.contains('=') {
        return Ok(read_form(body));
    }
    json::parse(&text).map_err(DecodeError::InvalidJson)
}

/// Body bytes as text in the declared charset (UTF-8 when none is declared), without a BOM.
fn decode_text(body: &[u8], charset: Option<&str>) -> Result<String, DecodeError> {
    match charset {
        Some(label) if !matches!(label, "utf-8" | "utf8") => {
            let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
                DecodeError::BadEncoding(format!(
                    "the Content-Type names the charset \"{label}\", which this service does not know: send UTF-8"
                ))
            })?;
            let (text, _, had_errors) = encoding.decode(body);
            if had_errors {
                return Err(DecodeError::BadEncoding(format!(
                    "the body is not valid {} text: check the charset in the Content-Type",
                    encoding.name()
                )));
            }
            Ok(text.into_owned())
        }
        _ => {
            let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
            match std::str::from_utf8(body) {
                Ok(text) => Ok(text.to_string()),
                Err(e) => {
                    let valid = &body[..e.valid_up_to()];
                    // The prefix is valid UTF-8 by construction.
                    let prefix = String::from_utf8_lossy(valid);
                    let (line, column) = json::line_column(&prefix, prefix.len());
                    Err(DecodeError::BadEncoding(format!(
                        "the body is not valid UTF-8 at line {line}, column {column} (byte {}): send UTF-8, or name the charset in the Content-Type (e.g. charset=GBK)",
                        e.valid_up_to()
                    )))
                }
            }
        }
    }
}

/// A url-encoded form (`key=value&…`, `+` for a space, as Java's URLEncoder writes it) as an
/// object of string members in arrival order.
fn read_form(body: &[u8]) -> Json {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    Json::Object(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Json::String(v.into_owned()))).collect())
}

fn read_multipart(body: &[u8], content_type_header: &str) -> Result<Json, DecodeError> {
    let boundary = multer::parse_boundary(content_type_header)
        .map_err(|e| DecodeError::BadForm(format!("multipart/form-data without a usable boundary: {e}")))?;
    let chunk = bytes::Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(chunk) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    // The whole body is already in memory, so every future here completes at its first poll.
    futures_executor::block_on(async move {
        let mut members = Vec::new();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| DecodeError::BadForm(format!("malformed multipart/form-data: {e}")))?
        {
            let name = field.name().unwrap_or("").to_string();
            let text = field
                .text()
                .await
                .map_err(|e| DecodeError::BadForm(format!("malformed multipart/form-data field \"{name}\": {e}")))?;
            members.push((name, Json::String(text)));
        }
        Ok(Json::Object(members))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_json_under_any_content_type() {
        for ct in [None, Some("text/plain"), Some("text/html;charset=UTF-8"), Some("application/json;charset=utf-8")] {
            let doc = read_document(br#" {"a":"1"}"#, ct).unwrap();
            assert_eq!(doc, Json::Object(vec![("a".into(), Json::String("1".into()))]), "{ct:?}");
        }
    }

    #[test]
    fn sniffs_forms_without_content_type() {
        let doc = read_document(b"name=%E5%BC%A0+%E4%B8%89&mobile=138", None).unwrap();
        assert_eq!(
            doc,
            Json::Object(vec![
                ("name".into(), Json::String("张 三".into())),
                ("mobile".into(), Json::String("138".into()))
            ])
        );
    }

    #[test]
    fn reads_declared_charsets() {
        let (gbk, _, _) = encoding_rs::GBK.encode(r#"{"name":"张三"}"#);
        let doc = read_document(&gbk, Some("application/json; charset=GBK")).unwrap();
        assert_eq!(doc, Json::Object(vec![("name".into(), Json::String("张三".into()))]));
    }

    #[test]
    fn invalid_utf8_names_its_position() {
        let err = read_document(b"{\n\"a\":\"\xff\"}", Some("application/json")).unwrap_err();
        assert!(err.to_string().contains("line 2, column 6"), "{err}");
    }

    #[test]
    fn json_under_the_form_type_is_read_as_json() {
        let err = read_document(b"{\"a\":1", Some("application/x-www-form-urlencoded")).unwrap_err();
        assert!(matches!(err, DecodeError::InvalidJson(_)), "{err:?}");
        let doc = read_document(b"a=%7B", Some("application/x-www-form-urlencoded")).unwrap();
        assert_eq!(doc, Json::Object(vec![("a".into(), Json::String("{".into()))]));
    }

    #[test]
    fn strips_a_bom() {
        assert!(read_document(b"\xEF\xBB\xBF{}", None).is_ok());
    }

    #[test]
    fn empty_body_is_an_error() {
        assert!(matches!(read_document(b"  \n", None), Err(DecodeError::EmptyBody)));
        let form = Some("application/x-www-form-urlencoded");
        assert!(matches!(read_document(b"", form), Err(DecodeError::EmptyBody)));
    }

    #[test]
    fn reads_multipart_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"visitorStaticId\"\r\n\r\nv1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n李四\r\n--XyZ--\r\n";
        let doc = read_document(body.as_bytes(), Some("multipart/form-data; boundary=XyZ")).unwrap();
        assert_eq!(
            doc,
            Json::Object(vec![
                ("visitorStaticId".into(), Json::String("v1".into())),
                ("name".into(), Json::String("李四".into()))
            ])
        );
    }

    #[test]
    fn broken_multipart_is_a_form_error() {
        let err = read_document(b"garbage", Some("multipart/form-data; boundary=XyZ")).unwrap_err();
        assert!(matches!(err, DecodeError::BadForm(_)), "{err:?}");
    }
}

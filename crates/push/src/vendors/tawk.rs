//! Tawk.to webhooks (developer.tawk.to/webhooks; facts in other-sources.md).
//!
//! - `X-Tawk-Signature`: lowercase hex HMAC-SHA1 of the raw body, keyed with the webhook's secret.
//! - `X-Hook-Event-Id`: the same on every retry of one event.
//! - Any 2xx within 30 s is success; otherwise Tawk retries for up to 12 hours, so a request
//!   whose envelope `time` is more than 13 hours old (or 5 minutes ahead) is stale.
//! - `chat:transcript_created` carries the lead: `chat {id, visitor {name, email, city,
//!   country}, messages [{sender {t, n}, type, msg, time}]}`, `property {id, name}`, `referrer`.
//!   `chat:start`, `chat:end`, `ticket:create` and any other event carry no transcript: kept in
//!   the push log as ignored, no lead.
//! - Identity: the chat id (the payload has no stable visitor id); e-mail and the phones typed in
//!   the chat link repeat visitors as possible duplicates.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use xiansuo_domain::VisitorEvent;

use super::{
    Answer, Kind, Request, SignatureError, Vendor, canonical_card, document, hex, member, no_lead, same, text,
};
use crate::json::{self, Json};
use crate::{DecodeError, DecodedPush, SourceRules};

pub const SIGNATURE_HEADER: &str = "x-tawk-signature";
pub const EVENT_ID_HEADER: &str = "x-hook-event-id";

/// How old a request's `time` may be: Tawk retries for 12 hours.
const MAX_AGE_HOURS: i64 = 13;

pub struct Tawk;

impl Vendor for Tawk {
    fn kind(&self) -> Kind {
        Kind::Tawk
    }

    fn signs(&self) -> bool {
        true
    }

    fn verify(&self, request: &Request, secret: &str) -> Result<(), SignatureError> {
        let given = request.header(SIGNATURE_HEADER).ok_or(SignatureError::Missing("X-Tawk-Signature"))?;
        let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes())
            .map_err(|_| SignatureError::Mismatch("X-Tawk-Signature"))?;
        mac.update(request.body);
        let expected = hex(&mac.finalize().into_bytes());
        if !same(&given.to_ascii_lowercase(), &expected) {
            return Err(SignatureError::Mismatch("X-Tawk-Signature"));
        }
        // The signature holds: the envelope's time can be trusted.
        let at =
            std::str::from_utf8(request.body).ok().and_then(|t| json::parse(t).ok()).and_then(|doc| text(&doc, "time"));
        if let Some(at) = at {
            let stale = match chrono::DateTime::parse_from_rfc3339(at.trim()) {
                Ok(t) => {
                    let age = request.now.signed_duration_since(t);
                    age > chrono::Duration::hours(MAX_AGE_HOURS) || age < -chrono::Duration::minutes(5)
                }
                Err(_) => false,
            };
            if stale {
                return Err(SignatureError::Stale { at, limit: "13 hours (Tawk.to retries for 12)" });
            }
        }
        Ok(())
    }

    fn event_id(&self, request: &Request) -> Option<String> {
        request.header(EVENT_ID_HEADER).filter(|v| !v.is_empty()).map(str::to_string)
    }

    fn decode(&self, request: &Request, rules: &SourceRules) -> Result<DecodedPush, DecodeError> {
        if request.body.iter().all(u8::is_ascii_whitespace) {
            return Err(DecodeError::EmptyBody);
        }
        let text_body = std::str::from_utf8(request.body).map_err(|e| {
            DecodeError::BadEncoding(format!(
                "a Tawk.to webhook is UTF-8 JSON, but byte {} is not UTF-8",
                e.valid_up_to()
            ))
        })?;
        let doc = json::parse(text_body).map_err(DecodeError::InvalidJson)?;
        let event = text(&doc, "event").ok_or_else(|| {
            DecodeError::NotCards("a Tawk.to webhook names its event in \"event\" (chat:start, chat:transcript_created…), and this body has none".into())
        })?;
        if event != "chat:transcript_created" {
            return Ok(no_lead(&event));
        }
        let chat = member(&doc, "chat").cloned().unwrap_or(Json::Null);
        let chat_id = text(&chat, "id").or_else(|| text(&doc, "chatId")).ok_or_else(|| {
            DecodeError::NotCards("chat:transcript_created without chat.id: the chat id is the lead's identity".into())
        })?;
        let visitor = member(&chat, "visitor").or_else(|| member(&doc, "visitor")).cloned().unwrap_or(Json::Null);
        let property = member(&doc, "property").cloned().unwrap_or(Json::Null);
        let s = |v: String| Json::String(v);
        let mut members: Vec<(String, Json)> = vec![
            ("visitor_static_id".into(), s(chat_id.clone())),
            ("company_id".into(), s(text(&property, "id").unwrap_or_else(|| "tawk".into()))),
            ("chat_id".into(), s(chat_id.clone())),
            ("card_type".into(), s(event.clone())),
        ];
        for (from, to) in [("name", "name"), ("email", "email"), ("city", "city"), ("country", "country")] {
            if let Some(v) = text(&visitor, from) {
                members.push((to.into(), s(v)));
            }
        }
        if let Some(v) = text(&property, "id") {
            members.push(("site_id".into(), s(v)));
        }
        if let Some(v) = text(&property, "name") {
            members.push(("site_name".into(), s(v)));
        }
        if let Some(v) = text(&doc, "referrer").or_else(|| text(&chat, "referrer")) {
            members.push(("chat_url".into(), s(v)));
        }
        if let Some(v) = text(&doc, "time") {
            members.push(("create_time".into(), s(v)));
        }
        let messages = match member(&chat, "messages") {
            Some(Json::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        let mut transcript = Vec::with_capacity(messages.len());
        for m in &messages {
            let sender = member(m, "sender").cloned().unwrap_or(Json::Null);
            // "v" is the visitor; agents ("a"), the system ("s") and bots are not.
            let visitor_wrote = text(&sender, "t").as_deref() == Some("v");
            let mut msg = vec![
                ("chat_id".to_string(), s(chat_id.clone())),
                ("sender_type".to_string(), s(if visitor_wrote { "1" } else { "0" }.into())),
                (
                    "from_id".to_string(),
                    s(if visitor_wrote {
                        chat_id.clone()
                    } else {
                        text(&sender, "n").unwrap_or_else(|| "tawk".into())
                    }),
                ),
            ];
            if let Some(t) = text(m, "msg") {
                msg.push(("message".into(), s(t)));
            }
            if let Some(t) = text(m, "type") {
                msg.push(("type".into(), s(t)));
            }
            if let Some(t) = text(m, "time") {
                msg.push(("create_time".into(), s(t)));
            }
            transcript.push(Json::Object(msg));
        }
        members.push(("messages".into(), Json::Array(transcript)));
        Ok(DecodedPush { cards: vec![canonical_card(members, rules)?] })
    }

    fn success(&self) -> Option<Answer> {
        // Any 2xx will do; the push endpoint's JSON answer is one.
        None
    }

    /// `chat:start`, `chat:end` and other events naming a chat: the chat id is the lead's
    /// identity (a transcript that came before makes the lead known).
    fn visitor_event(&self, request: &Request) -> Option<VisitorEvent> {
        let doc = document(request)?;
        let event = text(&doc, "event")?;
        if event == "chat:transcript_created" {
            return None;
        }
        let chat = member(&doc, "chat").cloned().unwrap_or(Json::Null);
        let chat_id = text(&doc, "chatId").or_else(|| text(&chat, "id"))?;
        let property = member(&doc, "property").cloned().unwrap_or(Json::Null);
        let what = match event.as_str() {
            "chat:start" => "会话开始".to_string(),
            "chat:end" => "会话结束".to_string(),
            "ticket:create" => "提交了工单".to_string(),
            other => format!("事件 {other}"),
        };
        Some(VisitorEvent {
            company_id: text(&property, "id").unwrap_or_else(|| "tawk".into()),
            visitor_id: chat_id,
            vendor: Kind::Tawk.as_str().into(),
            event,
            text: what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(body: &'a [u8], headers: &'a [(String, String)]) -> Request<'a> {
        Request { body, content_type: Some("application/json"), headers, query: &[], now: chrono::Utc::now() }
    }

    #[test]
    fn the_signature_is_hex_hmac_sha1_of_the_body() {
        // RFC 2202, HMAC-SHA1 test case 2: an independently published value.
        let body = b"what do ya want for nothing?";
        let headers = |sig: &str| vec![(SIGNATURE_HEADER.to_string(), sig.to_string())];
        let good = headers("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(Tawk.verify(&request(body, &good), "Jefe"), Ok(()));
        let upper = headers("EFFCDF6AE5EB2FA2D27416D5F184DF9C259A7C79");
        assert_eq!(Tawk.verify(&request(body, &upper), "Jefe"), Ok(()));
        assert_eq!(Tawk.verify(&request(body, &good), "jefe"), Err(SignatureError::Mismatch("X-Tawk-Signature")));
        assert_eq!(Tawk.verify(&request(body, &[]), "Jefe"), Err(SignatureError::Missing("X-Tawk-Signature")));
    }

    #[test]
    fn a_transcript_becomes_a_card_with_its_messages() {
        let body = br#"{"event":"chat:transcript_created","time":"2026-11-24T10:00:00.000Z","property":{"id":"p1","name":"Shop"},
            "chat":{"id":"c-77","visitor":{"name":"Ann","email":"ann@example.com","city":"Austin","country":"US"},
            "messages":[{"sender":{"t":"v","n":"Ann"},"type":"msg","msg":"hi, call me 13912345678","time":"2026-11-24T09:58:00.000Z"},
                        {"sender":{"t":"a","n":"Bob"},"type":"msg","msg":"sure","time":"2026-11-24T09:59:00.000Z"}]}}"#;
        let decoded = Tawk.decode(&request(body, &[]), &SourceRules::default()).unwrap();
        let card = &decoded.cards[0].card;
        assert_eq!(card.visitor_static_id(), Some("c-77"));
        assert_eq!(card.get("email"), Some("ann@example.com"));
        assert_eq!(card.get("site_name"), Some("Shop"));
        assert_eq!(card.messages.len(), 2);
        assert_eq!(card.messages[0].sender, xiansuo_domain::Sender::Visitor);
        assert_eq!(card.messages[1].sender, xiansuo_domain::Sender::Staff);
        assert_eq!(card.get("mobile"), None);
        assert_eq!(card.found_in_chat.get("mobile").map(String::as_str), Some("13912345678"));
        let start = Tawk.decode(&request(br#"{"event":"chat:start","chatId":"c-77"}"#, &[]), &SourceRules::default());
        assert_eq!(start.unwrap().ignored(), 1);
    }

    #[test]
    fn events_without_a_transcript_name_their_chat() {
        let body = br#"{"event":"chat:end","chatId":"c-77","property":{"id":"p1"}}"#;
        let e = Tawk.visitor_event(&request(body, &[])).unwrap();
        assert_eq!((e.company_id.as_str(), e.visitor_id.as_str(), e.text.as_str()), ("p1", "c-77", "会话结束"));
        let transcript = br#"{"event":"chat:transcript_created","chat":{"id":"c-77"}}"#;
        assert_eq!(Tawk.visitor_event(&request(transcript, &[])), None);
        assert_eq!(Tawk.visitor_event(&request(br#"{"event":"ticket:create"}"#, &[])), None);
    }
}

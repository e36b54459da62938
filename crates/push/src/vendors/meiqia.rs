//! 美洽 (Meiqia) webhooks (meiqia.com/help/article/webhooks/; facts in other-sources.md).
//!
//! - Header `Meiqia-Signature` (the vendor's own example says `Meiqia-Sign`: both are read) =
//!   lowercase hex SHA1 of `body + secret` (a plain hash, not HMAC).
//! - Envelope: `id` (the request's id, the same on a resend), `event`, `enterprise_token`,
//!   `created_at` (epoch seconds), then a `client` or `conversation` object. The retry policy is
//!   not public: a `created_at` more than 24 hours old (or 5 minutes ahead) is stale.
//! - `client.created` / `client.updated` carry the lead: the client's `id` is the identity and
//!   its attributes `name`, `tel`, `weixin`, `qq`, `email` (at the top of the object or under
//!   `attrs`) fill the contact fields. A `conversation` that names its client (`client_id`, or
//!   a `client` object) updates that client's lead with the conversation's `messages`, if any
//!   (`id`, `content`, `from` = client/agent, `created_at`): the full layout is not public.
//!   Other events carry no lead data: kept in the push log as ignored.
//! - `enterprise_token` is a credential: it is never copied into the lead.

use sha1::{Digest, Sha1};

use super::{Answer, Kind, Request, SignatureError, Vendor, canonical_card, hex, member, no_lead, same, text};
use crate::json::{self, Json};
use crate::{DecodeError, DecodedPush, SourceRules};

const MAX_AGE_SECONDS: i64 = 24 * 3600;

pub struct Meiqia;

impl Vendor for Meiqia {
    fn kind(&self) -> Kind {
        Kind::Meiqia
    }

    fn signs(&self) -> bool {
        true
    }

    fn verify(&self, request: &Request, secret: &str) -> Result<(), SignatureError> {
        let given = request
            .header("meiqia-signature")
            .or_else(|| request.header("meiqia-sign"))
            .ok_or(SignatureError::Missing("Meiqia-Signature"))?;
        let mut sha = Sha1::new();
        sha.update(request.body);
        sha.update(secret.as_bytes());
        if !same(&given.to_ascii_lowercase(), &hex(&sha.finalize())) {
            return Err(SignatureError::Mismatch("Meiqia-Signature"));
        }
        let doc = std::str::from_utf8(request.body).ok().and_then(|t| json::parse(t).ok());
        if let Some(at) = doc.as_ref().and_then(|d| text(d, "created_at")) {
            let age = at.parse::<i64>().map(|s| request.now.timestamp() - s);
            if age.is_ok_and(|a| !(-300..=MAX_AGE_SECONDS).contains(&a)) {
                return Err(SignatureError::Stale { at, limit: "24 hours" });
            }
        }
        Ok(())
    }

    fn event_id(&self, request: &Request) -> Option<String> {
        let doc = std::str::from_utf8(request.body).ok().and_then(|t| json::parse(t).ok())?;
        text(&doc, "id")
    }

    fn decode(&self, request: &Request, rules: &SourceRules) -> Result<DecodedPush, DecodeError> {
        if request.body.iter().all(u8::is_ascii_whitespace) {
            return Err(DecodeError::EmptyBody);
        }
        let body = std::str::from_utf8(request.body).map_err(|e| {
            DecodeError::BadEncoding(format!(
                "a Meiqia webhook is UTF-8 JSON, but byte {} is not UTF-8",
                e.valid_up_to()
            ))
        })?;
        let doc = json::parse(body).map_err(DecodeError::InvalidJson)?;
        let event = text(&doc, "event").unwrap_or_default();
        let s = Json::String;
        let enterprise = text(&doc, "enterprise_id").unwrap_or_else(|| "meiqia".into());
        let (client, conversation) = match event.split('.').next() {
            Some("client") => (member(&doc, "client").cloned(), None),
            Some("conversation") => {
                let conv = member(&doc, "conversation").cloned().unwrap_or(Json::Null);
                (member(&conv, "client").cloned(), Some(conv))
            }
            _ => (None, None),
        };
        let client = client.unwrap_or(Json::Null);
        let client_id = text(&client, "id").or_else(|| conversation.as_ref().and_then(|c| text(c, "client_id")));
        let Some(client_id) = client_id else { return Ok(no_lead(if event.is_empty() { "meiqia" } else { &event })) };
        let chat = conversation.as_ref().and_then(|c| text(c, "id")).unwrap_or_else(|| client_id.clone());
        let mut members: Vec<(String, Json)> = vec![
            ("visitor_static_id".into(), s(client_id.clone())),
            ("company_id".into(), s(enterprise)),
            ("chat_id".into(), s(chat.clone())),
        ];
        let attrs = member(&client, "attrs").cloned().unwrap_or(Json::Null);
        for key in ["name", "tel", "weixin", "qq", "email", "address", "comment"] {
            let to = match key {
                "address" => "area",
                "comment" => "note",
                other => other,
            };
            if let Some(v) = text(&client, key).or_else(|| text(&attrs, key)) {
                members.push((to.into(), s(v)));
            }
        }
        let mut transcript = Vec::new();
        if let Some(Json::Array(messages)) = conversation.as_ref().and_then(|c| member(c, "messages")) {
            for m in messages {
                let from_client = matches!(text(m, "from").as_deref(), Some("client" | "visitor"));
                let mut msg = vec![
                    ("chat_id".to_string(), s(chat.clone())),
                    ("sender_type".to_string(), s(if from_client { "1" } else { "0" }.into())),
                    (
                        "from_id".to_string(),
                        s(if from_client {
                            client_id.clone()
                        } else {
                            text(m, "agent_id").unwrap_or_else(|| "meiqia".into())
                        }),
                    ),
                ];
                for (from, to) in [
                    ("id", "recorder_id"),
                    ("content", "message"),
                    ("content_type", "type"),
                    ("created_at", "create_time"),
                ] {
                    if let Some(v) = text(m, from) {
                        msg.push((to.to_string(), s(v)));
                    }
                }
                transcript.push(Json::Object(msg));
            }
        }
        if !transcript.is_empty() {
            members.push(("messages".into(), Json::Array(transcript)));
        }
        Ok(DecodedPush { cards: vec![canonical_card(members, rules)?] })
    }

    fn success(&self) -> Option<Answer> {
        None
    }
}

//! 网易七鱼 (NetEase Qiyu) message and session pushes (qiyukf.com message-interface documentation;
//! facts in other-sources.md).
//!
//! - POST JSON with the query `eventType` (`MSG`, `SESSION_START`, `SESSION_END`,
//!   `EVA_INVITATION`), `time` (ms) and `checksum` = lowercase hex SHA1 of
//!   `appSecret + md5(body) as lowercase hex + time`; a checksum older than 5 minutes (or 5
//!   minutes ahead) is stale.
//! - Success is an empty body (within 10 s); anything else is resent.
//! - `MSG` (`uid`, `content`, `msgType`, `msgId`, `staffId`, `staffName`, `timeStamp`) is a
//!   message of the visitor `uid`: it creates or updates the lead of `uid`, the message
//!   identified by `msgId` (a resent message adds nothing).
//! - The session data pushed at a session's end (`fromPage`, `fromTitle`, `fromIp`, `fromType`,
//!   `foreignId`, `category`, `startTime`, `endTime`, …; its full list is not public) fills where
//!   the visitor came from. `SESSION_START`, `SESSION_END` without it and `EVA_INVITATION` carry
//!   no lead data: kept in the push log as ignored.

use md5::Md5;
use sha1::{Digest, Sha1};

use xiansuo_domain::VisitorEvent;

use super::{Answer, Kind, Request, SignatureError, Vendor, canonical_card, document, hex, no_lead, same, text};
use crate::json::{self, Json};
use crate::{DecodeError, DecodedPush, SourceRules};

/// How far a checksum's `time` may be from now.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

pub struct Qiyu;

impl Vendor for Qiyu {
    fn kind(&self) -> Kind {
        Kind::Qiyu
    }

    fn signs(&self) -> bool {
        true
    }

    fn verify(&self, request: &Request, secret: &str) -> Result<(), SignatureError> {
        let given = request.query("checksum").ok_or(SignatureError::Missing("checksum (query)"))?;
        let time = request.query("time").ok_or(SignatureError::Missing("time (query)"))?;
        let body_md5 = hex(&Md5::digest(request.body));
        let mut sha = Sha1::new();
        sha.update(secret.as_bytes());
        sha.update(body_md5.as_bytes());
        sha.update(time.as_bytes());
        let expected = hex(&sha.finalize());
        if !same(&given.to_ascii_lowercase(), &expected) {
            return Err(SignatureError::Mismatch("checksum"));
        }
        let fresh =
            time.parse::<i64>().ok().is_some_and(|ms| (request.now.timestamp_millis() - ms).abs() <= MAX_SKEW_MS);
        if !fresh {
            return Err(SignatureError::Stale { at: time.to_string(), limit: "5 minutes" });
        }
        Ok(())
    }

    fn event_id(&self, request: &Request) -> Option<String> {
        let doc = std::str::from_utf8(request.body).ok().and_then(|t| json::parse(t).ok())?;
        // A message by its msgId; a session event by its type and session (the session data
        // pushed at the end is told apart from the plain SESSION_END).
        text(&doc, "msgId").or_else(|| {
            let session = text(&doc, "sessionId")?;
            let data = if text(&doc, "fromPage").is_some() || text(&doc, "fromIp").is_some() { ":data" } else { "" };
            Some(format!("{}:{session}{data}", request.query("eventType").unwrap_or("")))
        })
    }

    fn decode(&self, request: &Request, rules: &SourceRules) -> Result<DecodedPush, DecodeError> {
        if request.body.iter().all(u8::is_ascii_whitespace) {
            return Err(DecodeError::EmptyBody);
        }
        let body = std::str::from_utf8(request.body).map_err(|e| {
            DecodeError::BadEncoding(format!("a Qiyu push is UTF-8 JSON, but byte {} is not UTF-8", e.valid_up_to()))
        })?;
        let doc = json::parse(body).map_err(DecodeError::InvalidJson)?;
        let Classified { event, is_msg, session_data } = classify(&doc, request);
        let s = Json::String;
        let uid = text(&doc, "uid");
        if is_msg {
            let uid = uid.ok_or_else(|| {
                DecodeError::NotCards("a Qiyu MSG push without uid: the visitor's uid is the lead's identity".into())
            })?;
            let chat = text(&doc, "sessionId").unwrap_or_else(|| uid.clone());
            let mut msg = vec![
                ("chat_id".to_string(), s(chat.clone())),
                // The message interface delivers what visitors write.
                ("sender_type".to_string(), s("1".into())),
                ("from_id".to_string(), s(uid.clone())),
            ];
            for (from, to) in
                [("msgId", "recorder_id"), ("content", "message"), ("msgType", "type"), ("timeStamp", "create_time")]
            {
                if let Some(v) = text(&doc, from) {
                    msg.push((to.to_string(), s(v)));
                }
            }
            let mut members = identity(&uid, &chat, request);
            for (from, to) in [("staffId", "user_id"), ("staffName", "user_real_name")] {
                if let Some(v) = text(&doc, from) {
                    members.push((to.into(), s(v)));
                }
            }
            members.push(("messages".into(), Json::Array(vec![Json::Object(msg)])));
            return Ok(DecodedPush { cards: vec![canonical_card(members, rules)?] });
        }
        if session_data && let Some(uid) = uid {
            let chat = text(&doc, "sessionId").unwrap_or_else(|| uid.clone());
            let mut members = identity(&uid, &chat, request);
            for (from, to) in [
                ("fromPage", "first_url"),
                ("fromIp", "ip"),
                ("fromType", "device_type"),
                ("startTime", "create_time"),
                ("staffId", "user_id"),
                ("staffName", "user_real_name"),
            ] {
                if let Some(v) = text(&doc, from) {
                    members.push((to.into(), s(v)));
                }
            }
            // Everything else of the session data (fromTitle, foreignId, category, endTime, the
            // rating…) is kept in `extra` under its own name.
            if let Json::Object(all) = &doc {
                for (k, v) in all {
                    let mapped =
                        ["uid", "sessionId", "fromPage", "fromIp", "fromType", "startTime", "staffId", "staffName"];
                    if !mapped.contains(&k.as_str()) {
                        members.push((format!("qiyu_{k}"), v.clone()));
                    }
                }
            }
            return Ok(DecodedPush { cards: vec![canonical_card(members, rules)?] });
        }
        Ok(no_lead(if event.is_empty() { "qiyu" } else { &event }))
    }

    fn success(&self) -> Option<Answer> {
        Some(Answer { status: 200, content_type: "text/plain; charset=utf-8".into(), body: String::new() })
    }

    /// `SESSION_START`, `SESSION_END` without the session data, `EVA_INVITATION` and other
    /// events naming a `uid`: the visitor's id is the lead's identity. A rating in the body
    /// (`evaluation`, or `satisfaction`: the field list is not public) is said as one.
    fn visitor_event(&self, request: &Request) -> Option<VisitorEvent> {
        let doc = document(request)?;
        let Classified { event, is_msg, session_data } = classify(&doc, request);
        let uid = text(&doc, "uid")?;
        if is_msg || session_data {
            return None;
        }
        let staff = text(&doc, "staffName").map(|n| format!("（客服 {n}）")).unwrap_or_default();
        let rating = text(&doc, "evaluation").or_else(|| text(&doc, "satisfaction"));
        let what = match (event.as_str(), rating) {
            (_, Some(r)) if r.trim().parse::<f64>().is_ok() => format!("访客评价 {} 星", r.trim()),
            (_, Some(r)) => format!("访客评价「{}」", r.trim()),
            ("SESSION_START", None) => format!("会话开始{staff}"),
            ("SESSION_END", None) => match text(&doc, "closeReason") {
                Some(reason) => format!("会话结束{staff}，结束原因 {reason}"),
                None => format!("会话结束{staff}"),
            },
            ("EVA_INVITATION", None) => format!("邀请访客评价{staff}"),
            ("", None) => "事件".to_string(),
            (other, None) => format!("事件 {other}"),
        };
        Some(VisitorEvent {
            company_id: request.query("appKey").unwrap_or("qiyu").to_string(),
            visitor_id: uid,
            vendor: Kind::Qiyu.as_str().into(),
            event: if event.is_empty() { "qiyu".into() } else { event },
            text: what,
        })
    }
}

/// What a push is: its event type (the query's, else the body's), whether it is a message, and
/// whether it carries the session data pushed at a session's end.
struct Classified {
    event: String,
    is_msg: bool,
    session_data: bool,
}

fn classify(doc: &Json, request: &Request) -> Classified {
    let event = request.query("eventType").map(str::to_string).or_else(|| text(doc, "eventType")).unwrap_or_default();
    let session_data =
        ["fromPage", "fromIp", "fromType", "foreignId", "fromTitle"].iter().any(|k| text(doc, k).is_some());
    // A replayed push has no query any more: a body with a msgId and content is a message.
    let is_msg = event == "MSG" || (event.is_empty() && text(doc, "msgId").is_some() && text(doc, "content").is_some());
    Classified { event, is_msg, session_data }
}

/// The canonical identity of a Qiyu visitor: `uid`, the app (the query's `appKey` when the
/// push URL carries it, else "qiyu") and the session.
fn identity(uid: &str, chat: &str, request: &Request) -> Vec<(String, Json)> {
    vec![
        ("visitor_static_id".into(), Json::String(uid.to_string())),
        ("company_id".into(), Json::String(request.query("appKey").unwrap_or("qiyu").to_string())),
        ("chat_id".into(), Json::String(chat.to_string())),
    ]
}
